"""MLflow behind its basic-auth app, started with ``make up``'s command line
(:func:`mlops_dev.local_stack.mlflow_server_argv`) on SQLite with a file artifact root: nobody gets in
anonymously, people (``viewer``) read but cannot move an alias or touch a version, and Airflow's service
account writes through :class:`~mlops_ops.hooks.mlflow.MlflowHook`. One server for the module (~10-25 s).
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest

from mlops_dev.local_stack import mlflow_server_argv
from mlops_dev.mlflow_auth import (
    FOLDER_NAME,
    Account,
    MlflowAuth,
    MlflowAuthError,
    ensure_viewer,
    prepare_mlflow_auth,
)
from mlops_dev.processes import start_process
from tests.airflow_rest import free_port

pytestmark = pytest.mark.integration

VENV_BIN = Path(sys.executable).parent
MODEL = "auth_probe"
CONN_ID = "mlflow_auth_probe"
STARTUP_SECONDS = 180


def _request(
    url: str, path: str, account: Account | None = None, method: str = "GET", payload: dict | None = None
) -> tuple[int, str]:
    headers = {"Content-Type": "application/json"}
    if account is not None:
        token = base64.b64encode(f"{account.username}:{account.password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(f"{url}{path}", data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> tuple[str, MlflowAuth]:
    home = tmp_path_factory.mktemp("mlflow-auth")
    auth = prepare_mlflow_auth(home / FOLDER_NAME)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MLFLOW_TRACKING_", "MLFLOW_AUTH_", "AIRFLOW_CONN_"))
    }
    process = start_process(
        "mlflow",
        mlflow_server_argv(
            str(VENV_BIN / "mlflow"),
            port=port,
            backend_store_uri=f"sqlite:///{home}/mlflow.db",
            artifact_root=home / "artifacts",
            auth=auth,
        ),
        env={**environment, **auth.server_environment()},
        log_dir=home / "logs",
    )
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not _answers(url):
            assert process.running(), f"mlflow server exited:\n{process.log_tail()}"
            assert time.monotonic() < deadline, f"mlflow server did not answer:\n{process.log_tail()}"
            time.sleep(0.5)
        ensure_viewer(url, auth)
        yield url, auth
    finally:
        process.stop(grace=10)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def registered(server) -> str:
    """A model version registered and made ``champion`` by the service account through MlflowHook."""
    import mlflow
    import skops.io
    from sklearn.dummy import DummyClassifier

    from mlops_ops.hooks.mlflow import MlflowHook

    url, auth = server
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", auth.airflow_connection(url))
        # The hook exports the connection's login into this process's environment: put it back as it was.
        for variable in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
            patch.setenv(variable, "")
            patch.delenv(variable)
        hook = MlflowHook(CONN_ID)
        experiment_id = hook.get_or_create_experiment("auth-probe")
        assert hook.artifact_root.startswith("file://")  # make up's shape: artifacts written as files
        model = DummyClassifier().fit([[0.0], [1.0]], [0, 1])
        with mlflow.start_run(experiment_id=experiment_id):
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                skops_trusted_types=skops.io.get_untrusted_types(data=skops.io.dumps(model)),
            )
        version = hook.register_model(info.model_uri, MODEL, tags={"mlops.probe": "auth"}).version
        hook.set_alias(MODEL, "champion", str(version))
        assert hook.get_aliases(MODEL) == {"champion": str(version)}
        assert os.environ["MLFLOW_TRACKING_USERNAME"] == auth.service.username
    assert os.environ.get("MLFLOW_TRACKING_PASSWORD") != auth.service.password
    return str(version)


def test_anonymous_requests_are_refused_and_only_health_answers(server):
    url, _ = server
    assert _request(url, "/health")[0] == 200
    assert _request(url, "/api/2.0/mlflow/registered-models/search")[0] == 401
    assert _request(url, "/ajax-api/2.0/mlflow/registered-models/search")[0] == 401
    assert _request(url, "/")[0] == 401  # the UI itself
    wrong = Account("viewer", "not-the-password", Path("/nonexistent"))
    assert _request(url, "/api/2.0/mlflow/registered-models/search", wrong)[0] == 401


def test_the_service_account_registers_and_sets_the_alias_the_viewer_reads(server, registered):
    url, auth = server
    status, body = _request(url, f"/api/2.0/mlflow/registered-models/get?name={MODEL}", auth.viewer)
    assert status == 200, body
    aliases = json.loads(body)["registered_model"]["aliases"]
    assert aliases == [{"alias": "champion", "version": registered}]


# The MLflow UI's "Promote model" button and alias editor send the ajax-api form of the alias call.
REFUSED_TO_PEOPLE = {
    "set alias": ("POST", "/api/2.0/mlflow/registered-models/alias", {"alias": "champion"}),
    "set alias from the UI": ("POST", "/ajax-api/2.0/mlflow/registered-models/alias", {"alias": "champion"}),
    "delete alias": ("DELETE", "/api/2.0/mlflow/registered-models/alias", {"alias": "champion"}),
    "tag a version": (
        "POST",
        "/api/2.0/mlflow/model-versions/set-tag",
        {"key": "mlops.artifact_sha256", "value": "0" * 64},
    ),
    "register a version": ("POST", "/api/2.0/mlflow/model-versions/create", {"source": "file:///tmp/x"}),
    "transition a stage": (
        "POST",
        "/api/2.0/mlflow/model-versions/transition-stage",
        {"stage": "Production", "archive_existing_versions": False},
    ),
    "delete the model": ("DELETE", "/api/2.0/mlflow/registered-models/delete", {}),
    "create a user": ("POST", "/api/2.0/mlflow/users/create", {"username": "mallory", "password": "x" * 16}),
}


@pytest.mark.parametrize("action", REFUSED_TO_PEOPLE)
def test_the_viewer_cannot_change_the_registry(server, registered, action):
    url, auth = server
    method, path, payload = REFUSED_TO_PEOPLE[action]
    if "users" not in path:
        payload = {"name": MODEL, "version": registered, **payload}
    status, body = _request(url, path, auth.viewer, method, payload)
    assert status == 403, f"{action}: {status} {body}"
    status, body = _request(url, f"/api/2.0/mlflow/registered-models/get?name={MODEL}", auth.viewer)
    assert json.loads(body)["registered_model"]["aliases"] == [{"alias": "champion", "version": registered}]


def test_setting_up_the_viewer_again_keeps_it_a_reader(server):
    url, auth = server
    ensure_viewer(url, auth)
    status, body = _request(url, f"/api/2.0/mlflow/users/get?username={auth.viewer.username}", auth.service)
    assert status == 200 and json.loads(body)["user"]["is_admin"] is False
    assert _request(url, "/api/2.0/mlflow/registered-models/search", auth.viewer)[0] == 200


def test_an_admin_password_the_server_does_not_hold_is_named_with_the_folder_to_remove(server):
    url, auth = server
    stale = replace(auth, service=replace(auth.service, password="a-stale-password-0000"))
    with pytest.raises(MlflowAuthError, match=f"refuses {auth.service.username} .*Remove {auth.folder}"):
        ensure_viewer(url, stale)


def _run_reader_script(url: str, auth: MlflowAuth, username: str, password: str):
    """compose's ``mlflow-reader`` service: ``docker/create_mlflow_reader.py`` with its environment."""
    import subprocess

    script = Path(__file__).resolve().parents[2] / "docker" / "create_mlflow_reader.py"
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "MLFLOW_URL": url,
        "MLFLOW_ADMIN_USER": auth.service.username,
        "MLFLOW_ADMIN_PASSWORD": auth.service.password,
        "MLFLOW_READER_USER": username,
        "MLFLOW_READER_PASSWORD": password,
    }
    return subprocess.run(  # noqa: S603 - this interpreter, a file of the repository
        [sys.executable, str(script)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_composes_reader_account_reads_the_registry_and_changes_nothing(server, registered):
    url, auth = server
    reader = Account("stream-scorer", "a-reader-password-1", Path("/nonexistent"))
    done = _run_reader_script(url, auth, reader.username, reader.password)
    assert done.returncode == 0 and "created the read-only account stream-scorer" in done.stdout, done.stderr
    assert reader.password not in done.stdout + done.stderr
    status, body = _request(url, f"/api/2.0/mlflow/registered-models/get?name={MODEL}", reader)
    assert status == 200 and json.loads(body)["registered_model"]["aliases"][0]["version"] == registered
    method, path, payload = REFUSED_TO_PEOPLE["set alias"]
    assert _request(url, path, reader, method, {"name": MODEL, "version": registered, **payload})[0] == 403

    # Run again (every `docker compose up`) with a new password from .env: the account keeps reading with it.
    again = _run_reader_script(url, auth, reader.username, "a-new-reader-password-2")
    assert again.returncode == 0 and "password set from .env" in again.stdout, again.stderr
    assert _request(url, "/api/2.0/mlflow/registered-models/search", reader)[0] == 401
    renewed = replace(reader, password="a-new-reader-password-2")
    assert _request(url, "/api/2.0/mlflow/registered-models/search", renewed)[0] == 200
    status, body = _request(url, "/api/2.0/mlflow/users/get?username=stream-scorer", auth.service)
    assert json.loads(body)["user"]["is_admin"] is False


def test_composes_reader_script_refuses_a_short_password_or_the_admins_name(server):
    url, auth = server
    short = _run_reader_script(url, auth, "stream-scorer-2", "short")
    assert short.returncode != 0 and "at least 12 characters" in short.stderr
    admin = _run_reader_script(url, auth, auth.service.username, "a-long-enough-password")
    assert admin.returncode != 0 and "must not be the admin" in admin.stderr
