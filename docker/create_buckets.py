"""Create the stack's buckets on its S3-compatible store, once it answers (the compose stack's ``s3-buckets``).

Run by the Airflow image's own Python (its entrypoint runs ``python ...`` as given), with boto3 from the wheel's
``aws`` extra: ``python /opt/mlops-ops/docker/create_buckets.py mlflow mlops``. Endpoint and credentials come
from ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY``. A bucket that exists already
is left as it is, so the service can run on every ``docker compose up``.
"""

from __future__ import annotations

import os
import sys
import time

import boto3
from botocore.exceptions import BotoCoreError, ClientError

#: The store starts its master, volume, filer and S3 gateway one after the other: wait this long for it.
WAIT_SECONDS = 120


def create_buckets(names: list[str], wait_seconds: float = WAIT_SECONDS) -> list[str]:
    """Create each bucket of ``names`` that does not exist; return the ones created."""
    client = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            existing = {bucket["Name"] for bucket in client.list_buckets().get("Buckets", [])}
            break
        except (BotoCoreError, ClientError) as error:
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"S3 endpoint {os.environ['AWS_ENDPOINT_URL']} did not answer: {error}"
                ) from error
            time.sleep(2)
    created = []
    for name in names:
        if name not in existing:
            client.create_bucket(Bucket=name)
            created.append(name)
    return created


if __name__ == "__main__":
    made = create_buckets(sys.argv[1:])
    print(f"buckets created: {', '.join(made) or 'none (all exist)'}")
