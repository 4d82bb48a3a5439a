"""Create the stack's read-only MLflow account (the compose stack's ``mlflow-reader``), once MLflow answers.

The stream scorers read the registry with this account, never with the Airflow service account that writes it:
MLflow's basic-auth app gives every account but the admin READ on what it did not create
(``docker/mlflow-basic-auth.ini``). Run by the Airflow image's own Python, standard library only:
``python /opt/mlops-ops/create_mlflow_reader.py``, with ``MLFLOW_URL``, the admin's ``MLFLOW_ADMIN_USER`` /
``MLFLOW_ADMIN_PASSWORD`` and the reader's ``MLFLOW_READER_USER`` / ``MLFLOW_READER_PASSWORD``. An existing
account gets the password of the environment and loses admin rights if it had them, so the service can run on
every ``docker compose up``. Passwords are never printed.
"""

from __future__ import annotations

import base64
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request

#: MLflow starts after PostgreSQL and runs its auth migrations: wait this long for it.
WAIT_SECONDS = 180
MIN_PASSWORD_LENGTH = 12


def _call(method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    """One request to MLflow's auth REST API as the admin: ``(status, JSON body)``."""
    credentials = f"{os.environ['MLFLOW_ADMIN_USER']}:{os.environ['MLFLOW_ADMIN_PASSWORD']}"
    request = urllib.request.Request(  # noqa: S310 - MLFLOW_URL is the compose network's http://mlflow:5000
        f"{os.environ['MLFLOW_URL'].rstrip('/')}/api/2.0/mlflow/{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={
            "Authorization": "Basic " + base64.b64encode(credentials.encode()).decode(),
            "Content-Type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - see above
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, {}


def _checked(status: int, doing: str) -> None:
    if status == 401:
        raise SystemExit(f"MLflow refuses {os.environ['MLFLOW_ADMIN_USER']} while {doing}: check .env")
    if status >= 300:
        raise SystemExit(f"MLflow answered HTTP {status} while {doing}")


def ensure_reader(wait_seconds: float = WAIT_SECONDS) -> str:
    """Create the read-only account, or reset its password and admin flag; return what was done."""
    username, password = os.environ["MLFLOW_READER_USER"], os.environ["MLFLOW_READER_PASSWORD"]
    if len(password) < MIN_PASSWORD_LENGTH:
        raise SystemExit(f"MLFLOW_READER_PASSWORD must hold at least {MIN_PASSWORD_LENGTH} characters")
    if username == os.environ["MLFLOW_ADMIN_USER"]:
        raise SystemExit("MLFLOW_READER_USER must not be the admin (the Airflow service account)")
    query = "users/get?" + urllib.parse.urlencode({"username": username})
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            status, found = _call("GET", query)
            break
        except (urllib.error.URLError, OSError) as error:
            if time.monotonic() > deadline:
                raise SystemExit(f"MLflow at {os.environ['MLFLOW_URL']} did not answer: {error}") from error
            time.sleep(2)
    if status == 404:
        _checked(_call("POST", "users/create", {"username": username, "password": password})[0], "creating it")
        return f"created the read-only account {username}"
    _checked(status, "reading the account")
    if found.get("user", {}).get("is_admin"):
        _checked(
            _call("PATCH", "users/update-admin", {"username": username, "is_admin": False})[0], "demoting it"
        )
    _checked(
        _call("PATCH", "users/update-password", {"username": username, "password": password})[0],
        "setting its password",
    )
    return f"the read-only account {username} exists; password set from .env"


if __name__ == "__main__":
    print(ensure_reader())
