"""The accounts of MLflow's basic-auth app (:mod:`mlops_dev.mlflow_auth`): generated once per installation,
kept 0600 in a 0700 folder, never in the config file or a ``repr``; and ``make up``'s server command line."""

from __future__ import annotations

import configparser
import json
import stat
from pathlib import Path

import pytest

from mlops_dev.local_stack import mlflow_server_argv
from mlops_dev.mlflow_auth import (
    AUTH_CACHE_SECONDS,
    SERVICE_ACCOUNT,
    VIEWER,
    MlflowAuthError,
    prepare_mlflow_auth,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_accounts_are_random_per_installation_private_and_stable(tmp_path):
    auth = prepare_mlflow_auth(tmp_path / "mlflow-auth")
    assert (auth.service.username, auth.viewer.username) == (SERVICE_ACCOUNT, VIEWER)
    secrets = {auth.service.password, auth.viewer.password, auth.secret_key}
    assert len(secrets) == 3 and all(len(secret) >= 32 for secret in secrets)
    assert _mode(auth.folder) == 0o700
    for path in (auth.service.password_file, auth.viewer.password_file, auth.config_file):
        assert _mode(path) == 0o600, path

    again = prepare_mlflow_auth(tmp_path / "mlflow-auth")
    assert (again.service.password, again.viewer.password, again.secret_key) == (
        auth.service.password,
        auth.viewer.password,
        auth.secret_key,
    )
    other = prepare_mlflow_auth(tmp_path / "elsewhere")
    assert other.service.password != auth.service.password


def test_no_password_is_in_the_config_file_or_a_repr(tmp_path):
    auth = prepare_mlflow_auth(tmp_path / "a", database_uri="postgresql+psycopg2://u@db/mlflow_auth")
    config = configparser.ConfigParser()
    config.read(auth.config_file)
    assert dict(config["mlflow"]) == {
        "default_permission": "READ",
        "database_uri": "postgresql+psycopg2://u@db/mlflow_auth",
        "admin_username": SERVICE_ACCOUNT,
        "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
        "auth_cache_ttl_seconds": str(AUTH_CACHE_SECONDS),
    }
    text = auth.config_file.read_text() + repr(auth)
    for secret in (auth.service.password, auth.viewer.password, auth.secret_key):
        assert secret not in text
    default = prepare_mlflow_auth(tmp_path / "b")
    assert f"database_uri = sqlite:///{tmp_path / 'b' / 'basic_auth.db'}" in default.config_file.read_text()


def test_the_server_gets_the_admin_and_airflow_gets_the_service_account(tmp_path):
    auth = prepare_mlflow_auth(tmp_path / "mlflow-auth")
    environment = auth.server_environment()
    assert environment["MLFLOW_AUTH_ADMIN_USERNAME"] == SERVICE_ACCOUNT
    assert environment["MLFLOW_AUTH_ADMIN_PASSWORD"] == auth.service.password
    assert environment["MLFLOW_AUTH_CONFIG_PATH"] == str(auth.config_file)
    assert environment["MLFLOW_FLASK_SERVER_SECRET_KEY"] == auth.secret_key
    connection = json.loads(auth.airflow_connection("http://127.0.0.1:5000"))
    assert {key: connection[key] for key in ("conn_type", "host", "login", "password")} == {
        "conn_type": "mlflow",
        "host": "http://127.0.0.1:5000",
        "login": SERVICE_ACCOUNT,
        "password": auth.service.password,
    }


def test_make_ups_mlflow_listens_on_loopback_behind_basic_auth(tmp_path):
    auth = prepare_mlflow_auth(tmp_path / "mlflow-auth")
    argv = mlflow_server_argv(
        "mlflow", port=5000, backend_store_uri="sqlite:///x.db", artifact_root=tmp_path, auth=auth
    )
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert argv[argv.index("--app-name") + 1] == "basic-auth"


def test_a_loose_secret_file_is_tightened_and_a_short_one_refused(tmp_path):
    folder = tmp_path / "mlflow-auth"
    auth = prepare_mlflow_auth(folder)
    auth.viewer.password_file.chmod(0o644)
    assert prepare_mlflow_auth(folder).viewer.password == auth.viewer.password
    assert _mode(auth.viewer.password_file) == 0o600
    auth.viewer.password_file.write_text("short\n")
    with pytest.raises(MlflowAuthError, match="viewer.password holds no usable secret"):
        prepare_mlflow_auth(folder)
