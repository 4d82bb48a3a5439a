"""``make up`` / ``make down``: the Airflow UI (``airflow standalone``) and the MLflow UI on the embedded
state of a project, started in the background and stopped by the PID file they leave in ``.airflow/``.

MLflow runs behind its basic-auth app (:mod:`mlops_dev.mlflow_auth`): Airflow's tasks and views reach it as the
service account through an ``AIRFLOW_CONN_MLFLOW_DEFAULT`` of these processes only; people log in to the MLflow
UI as ``viewer``. ``make demo`` writes the registry the same way, through a server of its own that lives as long
as the demo (:func:`authenticated_registry`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from mlops_dev.embedded import apply_embedded_defaults
from mlops_dev.mlflow_auth import (
    FOLDER_NAME,
    MlflowAuth,
    MlflowAuthError,
    ensure_viewer,
    prepare_mlflow_auth,
)
from mlops_dev.processes import (
    ManagedProcess,
    process_group_alive,
    read_pid_file,
    start_process,
    stop_process_group,
    write_pid_file,
)

PID_FILE_NAME = "mlops-ops-up.pid"
#: ``airflow standalone`` only stops its components on SIGINT; MLflow's server takes SIGTERM.
STOP_SIGNALS = {"airflow": signal.SIGINT, "mlflow": signal.SIGTERM}


class LocalStackError(RuntimeError):
    """The local stack cannot be started (already running, a command missing, a server not answering)."""


@dataclass(frozen=True)
class LocalStack:
    """Where the started UIs are.

    :param airflow_url: the Airflow UI and REST API.
    :param mlflow_url: the MLflow UI.
    :param passwords_file: the simple auth manager's generated passwords (user ``admin``).
    :param mlflow_viewer: the MLflow UI's read-only login for people.
    :param mlflow_viewer_password_file: its password's file (mode 0600).
    :param mlflow_auth_folder: every MLflow account's password file and MLflow's auth database.
    :param logs: the folder of both servers' logs.
    :param pid_file: the PID file ``make down`` reads.
    """

    airflow_url: str
    mlflow_url: str
    passwords_file: Path
    mlflow_viewer: str
    mlflow_viewer_password_file: Path
    mlflow_auth_folder: Path
    logs: Path
    pid_file: Path


def pid_file(project: Path) -> Path:
    """The PID file of the project's local stack (``.airflow/mlops-ops-up.pid`` unless AIRFLOW_HOME is set)."""
    return Path(apply_embedded_defaults(project)["AIRFLOW_HOME"]) / PID_FILE_NAME


def start_local_stack(
    project: Path, *, airflow_port: int = 8080, mlflow_port: int = 5000, timeout: float = 180
) -> LocalStack:
    """Start ``airflow standalone`` and an MLflow server on the project's embedded state, in the background.

    MLflow requires a login: Airflow uses the service account, people the read-only ``viewer`` (both generated
    on first start under ``<MLOPS_HOME>/mlflow-auth``).

    :param project: the Airflow project folder.
    :param airflow_port: the Airflow UI's port.
    :param mlflow_port: the MLflow UI's port.
    :param timeout: seconds to wait for both UIs to answer.
    :return: where the UIs are; they keep running after this process exits.
    :raises LocalStackError: when it is already running or does not come up (what was started is stopped).
    """
    environment = apply_embedded_defaults(project)
    pids = pid_file(project)
    running = [name for name, pid in read_pid_file(pids).items() if process_group_alive(pid)]
    if running:
        raise LocalStackError(
            f"already running ({', '.join(running)}; PID file {pids}): run `make down` first"
        )
    commands = {name: shutil.which(name) for name in ("airflow", "mlflow")}
    missing = [name for name, path in commands.items() if path is None]
    if missing:
        raise LocalStackError(
            f"{', '.join(missing)} not on PATH: run this from the project's environment (uv run)"
        )
    home = Path(environment["AIRFLOW_HOME"])
    mlops_home = Path(environment["MLOPS_HOME"])
    logs = home / "logs" / "up"
    (mlops_home / "artifacts").mkdir(parents=True, exist_ok=True)
    auth = prepare_mlflow_auth(mlops_home / FOLDER_NAME)
    airflow_url, mlflow_url = f"http://127.0.0.1:{airflow_port}", f"http://127.0.0.1:{mlflow_port}"
    env = {
        **os.environ,
        "AIRFLOW__API__PORT": str(airflow_port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{airflow_port}/execution/",
        # Task links and the Models view point at the MLflow UI started below.
        "MLOPS_MLFLOW_UI_URL": os.environ.get("MLOPS_MLFLOW_UI_URL") or mlflow_url,
        # Tasks and the Models view write and read the registry through the server, as the service account.
        # An environment connection wins over the metadata database's (airflow_settings.yaml's empty host) and
        # lives only as long as these processes.
        "AIRFLOW_CONN_MLFLOW_DEFAULT": auth.airflow_connection(mlflow_url),
    }
    processes: dict[str, ManagedProcess] = {}
    try:
        processes["airflow"] = start_process(
            "airflow",
            [commands["airflow"], "standalone"],
            env=env,
            log_dir=logs,
            stop_signal=STOP_SIGNALS["airflow"],
        )
        processes["mlflow"] = start_process(
            "mlflow",
            mlflow_server_argv(
                commands["mlflow"],
                port=mlflow_port,
                backend_store_uri=environment.get("MLFLOW_TRACKING_URI")
                or f"sqlite:///{mlops_home / 'mlflow.db'}",
                artifact_root=mlops_home / "artifacts",
                auth=auth,
            ),
            # The server needs no connection; it gets the admin's bootstrap password instead.
            env={
                **{key: value for key, value in env.items() if key != "AIRFLOW_CONN_MLFLOW_DEFAULT"},
                **auth.server_environment(),
            },
            log_dir=logs,
        )
        write_pid_file(pids, {name: process.pid for name, process in processes.items()})
        _wait_until_answering(
            processes, {"airflow": f"{airflow_url}/api/v2/version", "mlflow": f"{mlflow_url}/health"}, timeout
        )
        try:
            ensure_viewer(mlflow_url, auth)
        except MlflowAuthError as err:
            raise LocalStackError(str(err)) from err
    except BaseException:
        for process in processes.values():
            process.stop(grace=20)
        pids.unlink(missing_ok=True)
        raise
    return LocalStack(
        airflow_url=airflow_url,
        mlflow_url=mlflow_url,
        passwords_file=home / "simple_auth_manager_passwords.json.generated",
        mlflow_viewer=auth.viewer.username,
        mlflow_viewer_password_file=auth.viewer.password_file,
        mlflow_auth_folder=auth.folder,
        logs=logs,
        pid_file=pids,
    )


def mlflow_server_argv(
    mlflow: str, *, port: int, backend_store_uri: str, artifact_root: Path, auth: MlflowAuth
) -> list[str]:
    """The command line of ``make up``'s MLflow server: loopback only, behind MLflow's basic-auth app.

    :param mlflow: the ``mlflow`` executable.
    :param port: its port on 127.0.0.1.
    :param backend_store_uri: the tracking and registry database.
    :param artifact_root: the folder new experiments keep their artifacts in.
    :param auth: the accounts (:func:`mlops_dev.mlflow_auth.prepare_mlflow_auth`); its
        :meth:`~mlops_dev.mlflow_auth.MlflowAuth.server_environment` goes into the server's environment.
    """
    return [
        mlflow,
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        backend_store_uri,
        "--default-artifact-root",
        artifact_root.as_uri(),
        *auth.server_arguments(),
    ]


@contextlib.contextmanager
def authenticated_registry(environment: Mapping[str, str], timeout: float = 180) -> Iterator[str | None]:
    """Serve the embedded registry through an MLflow server behind basic auth while the block runs, and point
    this process's ``mlflow_default`` at it as the service account (``AIRFLOW_CONN_MLFLOW_DEFAULT``, restored
    after); yield the server's URL.

    ``make demo`` writes its registry this way, as tasks do under ``make up``. Nothing is started (``None`` is
    yielded) when the deployment already names its MLflow: an ``AIRFLOW_CONN_MLFLOW_DEFAULT`` or an http(s)
    ``MLFLOW_TRACKING_URI`` in the environment.

    :param environment: the embedded defaults (:func:`~mlops_dev.embedded.apply_embedded_defaults`).
    :param timeout: seconds to wait for the server to answer.
    :raises LocalStackError: when the server does not come up (its log's end is in the message).
    """
    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    if os.environ.get("AIRFLOW_CONN_MLFLOW_DEFAULT") or tracking_uri.startswith(("http://", "https://")):
        yield None
        return
    mlflow = shutil.which("mlflow")
    if mlflow is None:
        raise LocalStackError("mlflow not on PATH: run this from the project's environment (uv run)")
    mlops_home = Path(environment["MLOPS_HOME"])
    (mlops_home / "artifacts").mkdir(parents=True, exist_ok=True)
    auth = prepare_mlflow_auth(mlops_home / FOLDER_NAME)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    server = start_process(
        "mlflow",
        mlflow_server_argv(
            mlflow,
            port=port,
            backend_store_uri=tracking_uri or f"sqlite:///{mlops_home / 'mlflow.db'}",
            artifact_root=mlops_home / "artifacts",
            auth=auth,
        ),
        env={**os.environ, **auth.server_environment()},
        log_dir=Path(environment["AIRFLOW_HOME"]) / "logs" / "demo",
    )
    try:
        _wait_until_answering({"mlflow": server}, {"mlflow": f"{url}/health"}, timeout)
        try:
            ensure_viewer(url, auth)
        except MlflowAuthError as err:
            raise LocalStackError(str(err)) from err
        os.environ["AIRFLOW_CONN_MLFLOW_DEFAULT"] = auth.airflow_connection(url)
        yield url
    finally:
        os.environ.pop("AIRFLOW_CONN_MLFLOW_DEFAULT", None)  # it was unset before (checked above)
        server.stop(grace=20)


def stop_local_stack(project: Path, grace: float = 30) -> list[str]:
    """Stop what :func:`start_local_stack` started, by the PID file, and remove the file.

    :param project: the Airflow project folder.
    :param grace: seconds each server has to stop before it is killed.
    :return: the names of the servers that were running and are now stopped.
    """
    pids = pid_file(project)
    stopped = []
    for name, pid in read_pid_file(pids).items():
        if process_group_alive(pid) and stop_process_group(
            pid, STOP_SIGNALS.get(name, signal.SIGTERM), grace
        ):
            stopped.append(name)
    pids.unlink(missing_ok=True)
    return stopped


def _wait_until_answering(processes: dict[str, ManagedProcess], urls: dict[str, str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    waiting = dict(urls)
    while waiting:
        for name in list(waiting):
            process = processes[name]
            if not process.running():
                raise LocalStackError(
                    f"{name} exited; its log ({process.log}) ends:\n{process.log_tail(2000)}"
                )
            if not waiting[name].startswith("http://127.0.0.1:"):
                raise LocalStackError(
                    f"{name}: refusing to poll {waiting[name]!r}, which is not a local http URL"
                )
            try:
                # Only the loopback http URLs built by start_local_stack reach here (checked just above).
                with urllib.request.urlopen(waiting[name], timeout=5):  # nosec B310
                    del waiting[name]
            except OSError:
                pass
        if waiting and time.monotonic() > deadline:
            raise LocalStackError(
                f"{', '.join(waiting)} did not answer within {timeout:.0f} s (logs: {process.log.parent})"
            )
        if waiting:
            time.sleep(2)
