"""An S3 endpoint for tests: moto's server on 127.0.0.1, reached the way the compose stack reaches MinIO."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def moto_s3(monkeypatch: Any, *buckets: str) -> Iterator[tuple[str, Any]]:
    """Start moto's S3 server on a free port with ``buckets``; yield ``(endpoint, boto3 client)``.

    As in docker-compose.yaml, the ``aws_default`` connection holds the credentials and the endpoint comes from
    ``AWS_ENDPOINT_URL``, which boto3 reads by itself and pyarrow only through mlops-ops.
    """
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        # moto keeps one in-memory S3 per process, shared by every server and mock_aws of it: start empty, so
        # objects an earlier test of this process left in a bucket of the same name are not found here.
        urllib.request.urlopen(
            urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10
        )
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            region_name="us-east-1",
        )
        for bucket in buckets:
            client.create_bucket(Bucket=bucket)
        connection = {
            "conn_type": "aws",
            "login": "test",
            "password": "test",
            "extra": {"region_name": "us-east-1"},
        }
        monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(connection))
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        yield endpoint, client
    finally:
        server.stop()
