"""MLflow's own basic-auth app on the MLflow servers mlops-ops starts (``make up``, and the native production
stack of the tests): accounts generated per installation, kept in files only their owner can read.

Two accounts, and every other account MLflow knows reads only (``default_permission = READ``):

* the **Airflow service account** (:data:`SERVICE_ACCOUNT`) is MLflow's admin and the one writer of the
  registry. It has to be an admin: MLflow grants permissions per experiment and per registered model, with no
  wildcard, so an account that only held grants could not write a model that was created before the server
  had authentication (a registry of an older installation) or restored from a backup.
* **people** (:data:`VIEWER`, and whoever the admin adds) read every experiment and model. They cannot move
  an alias (the MLflow UI's "Promote model" and alias editor answer 403), register a version or edit a tag
  of a model they did not create. MLflow lets any account create experiments and models of its own.

The admin password doubles as the bootstrap password of MLflow's auth database; MLflow ignores it once the
admin exists, so the files and the database live in one folder and go together (``make clean``).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The Airflow service account: MLflow's admin, the one writer.
SERVICE_ACCOUNT = "mlops-airflow"
#: The account for people: reads everything, writes nothing of the project's.
VIEWER = "viewer"
#: ``mlflow server --app-name`` of MLflow's basic-auth app.
APP_NAME = "basic-auth"
#: The folder of the accounts, under the embedded state (``.mlops/mlflow-auth``).
FOLDER_NAME = "mlflow-auth"
#: What MLflow accepts (12 characters at least); 32 random bytes as URL-safe text.
PASSWORD_BYTES = 32
#: How long the server keeps a successful password check (MLflow's ``auth_cache_ttl_seconds``; its default 0
#: checks the scrypt hash on every request, ~0.1 s of CPU each, which made the MLflow server the busiest process
#: of a lifecycle run). The servers started here run one worker, where a password changed or an account deleted
#: through MLflow's API takes effect at once; only a change made in the database directly waits for the TTL.
AUTH_CACHE_SECONDS = 60


class MlflowAuthError(RuntimeError):
    """The accounts cannot be set up (the auth database disagrees with the password files, a refused call)."""


@dataclass(frozen=True)
class Account:
    """A user of MLflow's basic-auth app.

    :param username: the login.
    :param password: the password (never shown in ``repr``).
    :param password_file: the file it is kept in (mode 0600).
    """

    username: str
    password: str = field(repr=False)
    password_file: Path


@dataclass(frozen=True)
class MlflowAuth:
    """The basic-auth setup of one MLflow server.

    :param folder: where the password files, the config file and (by default) the auth database are.
    :param config_file: MLflow's auth configuration (``MLFLOW_AUTH_CONFIG_PATH``).
    :param service: the Airflow service account, MLflow's admin.
    :param viewer: the read-only account for people.
    :param secret_key: Flask's secret key of the server (CSRF of the sign-up page).
    """

    folder: Path
    config_file: Path
    service: Account
    viewer: Account
    secret_key: str = field(repr=False)

    def server_arguments(self) -> list[str]:
        """The ``mlflow server`` arguments that turn authentication on."""
        return ["--app-name", APP_NAME]

    def server_environment(self) -> dict[str, str]:
        """The variables the server process needs on top of its environment."""
        return {
            "MLFLOW_AUTH_CONFIG_PATH": str(self.config_file),
            "MLFLOW_FLASK_SERVER_SECRET_KEY": self.secret_key,
            # Set both, so that an MLFLOW_AUTH_ADMIN_* left in the caller's shell cannot name another admin.
            "MLFLOW_AUTH_ADMIN_USERNAME": self.service.username,
            "MLFLOW_AUTH_ADMIN_PASSWORD": self.service.password,
            # Routes that no permission rule covers are refused (MLflow's default; kept on whatever the shell says).
            "MLFLOW_BASIC_AUTH_FAIL_CLOSED": "true",
        }

    def airflow_connection(self, tracking_uri: str) -> str:
        """An ``AIRFLOW_CONN_MLFLOW_DEFAULT`` value: the server at ``tracking_uri`` as the service account.

        :param tracking_uri: the server's URL, e.g. ``http://127.0.0.1:5000``.
        """
        return json.dumps(
            {
                "conn_type": "mlflow",
                "host": tracking_uri,
                "login": self.service.username,
                "password": self.service.password,
                "description": "the MLflow server of `make up`, as the Airflow service account",
            }
        )


def prepare_mlflow_auth(folder: Path, *, database_uri: str | None = None) -> MlflowAuth:
    """Create (on first use) or read the accounts and MLflow's auth configuration in ``folder``.

    Passwords and the secret key are random per installation, written once with mode 0600 in a 0700 folder
    and read back on every later start.

    :param folder: e.g. ``.mlops/mlflow-auth``.
    :param database_uri: where MLflow keeps its users and permissions; default ``folder/basic_auth.db``
        (SQLite).
    :return: the accounts and the files.
    """
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    service = _account(folder, SERVICE_ACCOUNT)
    viewer = _account(folder, VIEWER)
    secret_key = _secret(folder / "flask-secret-key")
    config_file = folder / "basic_auth.ini"
    database_uri = database_uri or f"sqlite:///{folder / 'basic_auth.db'}"
    # The admin password is not in this file: the server gets it in its environment (server_environment).
    _write_private(
        config_file,
        "[mlflow]\n"
        "# Written by mlops-ops (mlops_dev/mlflow_auth.py) on every start; edits are overwritten.\n"
        "# Every account reads every experiment and model; only the admin (the Airflow service account)\n"
        "# writes what it did not create itself.\n"
        "default_permission = READ\n"
        f"database_uri = {database_uri}\n"
        f"admin_username = {service.username}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        f"auth_cache_ttl_seconds = {AUTH_CACHE_SECONDS}\n",
    )
    return MlflowAuth(
        folder=folder, config_file=config_file, service=service, viewer=viewer, secret_key=secret_key
    )


def ensure_viewer(tracking_uri: str, auth: MlflowAuth, timeout: float = 30) -> None:
    """Create the read-only account on the server (or reset its password to the file's), as the admin.

    :param tracking_uri: the running server, ``http(s)://``.
    :param auth: its accounts.
    :param timeout: seconds for each request.
    :raises MlflowAuthError: when the admin is refused (its password in the auth database is not the one in
        its file) or a request fails.
    """
    viewer = auth.viewer
    status, body = _call(tracking_uri, auth.service, "GET", f"users/get?username={viewer.username}", timeout)
    if status == 401:
        raise MlflowAuthError(
            f"MLflow at {tracking_uri} refuses {auth.service.username} with the password in "
            f"{auth.service.password_file}: its auth database holds another one. Remove {auth.folder} "
            "(accounts and auth database together) and start again."
        )
    if status == 404:
        status, body = _call(
            tracking_uri,
            auth.service,
            "POST",
            "users/create",
            timeout,
            {"username": viewer.username, "password": viewer.password},
        )
    elif status == 200:
        if body.get("user", {}).get("is_admin"):
            _expect(
                _call(
                    tracking_uri,
                    auth.service,
                    "PATCH",
                    "users/update-admin",
                    timeout,
                    {"username": viewer.username, "is_admin": False},
                ),
                "demoting",
            )
        status, body = _call(
            tracking_uri,
            auth.service,
            "PATCH",
            "users/update-password",
            timeout,
            {"username": viewer.username, "password": viewer.password},
        )
    _expect((status, body), f"setting up account {viewer.username!r} on {tracking_uri}")


def _expect(answer: tuple[int, dict[str, Any]], action: str) -> None:
    status, body = answer
    if status != 200:
        raise MlflowAuthError(f"MLflow answered {status} while {action}: {body.get('message', body)}")


def _call(
    tracking_uri: str,
    account: Account,
    method: str,
    path: str,
    timeout: float,
    payload: dict[str, Any] | None = None,
) -> tuple[int, dict[str, Any]]:
    url = f"{tracking_uri.rstrip('/')}/api/2.0/mlflow/{path}"
    if not url.startswith(("http://", "https://")):
        raise MlflowAuthError(f"refusing to call {url!r}: not an http(s) URL")
    token = base64.b64encode(f"{account.username}:{account.password}".encode()).decode()
    request = urllib.request.Request(
        url,
        data=None if payload is None else json.dumps(payload).encode(),
        method=method,
        headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
    )
    try:
        # The scheme is checked just above; the URL is the server this process started.
        with urllib.request.urlopen(request, timeout=timeout) as response:  # nosec B310
            return response.status, _json(response.read())
    except urllib.error.HTTPError as err:
        return err.code, _json(err.read())
    except OSError as err:
        raise MlflowAuthError(f"MLflow at {tracking_uri} did not answer {method} {path}: {err}") from err


def _json(raw: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(raw or b"{}")
    except ValueError:
        return {"message": raw[:200].decode(errors="replace")}
    return parsed if isinstance(parsed, dict) else {"message": str(parsed)[:200]}


def _account(folder: Path, username: str) -> Account:
    password_file = folder / f"{username}.password"
    return Account(username=username, password=_secret(password_file), password_file=password_file)


def _secret(path: Path) -> str:
    """The secret in ``path``, generated (mode 0600) when the file does not exist yet."""
    value = secrets.token_urlsafe(PASSWORD_BYTES)
    try:
        # O_EXCL: two starts at once do not overwrite each other's secret; the second reads the first's.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        descriptor = None
    if descriptor is not None:
        with os.fdopen(descriptor, "w") as output:
            output.write(value + "\n")
        return value
    path.chmod(0o600)  # a copy made with a looser mode is tightened before it is used
    value = path.read_text().strip()
    if len(value) < 12:
        raise MlflowAuthError(f"{path} holds no usable secret (MLflow wants 12 characters at least)")
    return value


def _write_private(path: Path, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as output:
        output.write(text)
    path.chmod(0o600)
