"""The embedded Airflow of ``make up`` for end-to-end tests, in a home of its own on free ports.

Shared by the real-scheduler and fault-injection tests (``airflow standalone`` alone, :func:`airflow_standalone`)
and the browser tests (``make up``'s local stack: ``airflow standalone`` and the MLflow UI).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.airflow_rest import Airflow, free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
#: About 30 s on an idle machine; at load average 10 on the shared 2-core machine the scheduler, triggerer and
#: dag-processor took 1 min 48 s to start and the API server longer: 120 s timed out there.
STARTUP_SECONDS = 240
ADMIN_PASSWORD = "admin-e2e"


def standalone_environment(home: Path, port: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of the embedded deployment in ``home``, its API server on ``port``, user ``admin``.

    The database is migrated and ``airflow_settings.yaml`` applied (pools, connections, variables).

    :param extra: variables set on top (a ``PYTHONPATH`` given here goes before the project's); the test
        session's own ``MLOPS_DATA_ROOT``, ``MLFLOW_TRACKING_URI`` and unit-test mode are not passed on, but
        these may set them.
    """
    from mlops_dev.embedded import embedded_environment

    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({"admin": ADMIN_PASSWORD}))
    extra = dict(extra or {})
    embedded = embedded_environment(PROJECT_ROOT)
    if "PYTHONPATH" in extra:
        embedded["PYTHONPATH"] = os.pathsep.join([extra.pop("PYTHONPATH"), embedded["PYTHONPATH"]])
    inherited = dict(os.environ)
    for variable in ("MLOPS_DATA_ROOT", "MLFLOW_TRACKING_URI", "AIRFLOW__CORE__UNIT_TEST_MODE"):
        inherited.pop(variable, None)
    environment = {
        **inherited,
        **embedded,
        "AIRFLOW_HOME": str(home / "airflow"),
        "MLOPS_HOME": str(home / "mlops"),
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        # Parsed once at start (wait_until_ready waits for it); no test edits a DAG file afterwards. Airflow's
        # default re-parses every file every 30 s: ~5% of a core per running deployment, on a CPU-bound suite.
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "900",
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        **extra,
    }
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], env=environment, check=True, capture_output=True
    )
    subprocess.run(
        [str(VENV_BIN / "mlops-ops"), "settings", "apply", str(PROJECT_ROOT / "airflow_settings.yaml")],
        env=environment,
        check=True,
        capture_output=True,
    )
    return environment


def wait_until_ready(client: Airflow, dag_ids: set[str]) -> None:
    """Wait until every component is healthy, log in as ``admin`` and wait until ``dag_ids`` are parsed."""
    client.wait_for(
        lambda: all(
            part["status"] == "healthy" for part in client.request("GET", "/api/v2/monitor/health").values()
        ),
        STARTUP_SECONDS,
        "airflow standalone to be healthy",
    )
    client.login("admin", ADMIN_PASSWORD)
    client.wait_for(
        lambda: dag_ids <= {d["dag_id"] for d in client.request("GET", "/api/v2/dags?limit=100")["dags"]},
        STARTUP_SECONDS,
        "the dag-processor to parse dags/",
    )


@contextmanager
def airflow_standalone(
    home: Path, dag_ids: set[str], extra_environment: dict[str, str] | None = None
) -> Iterator[tuple[Airflow, dict[str, str]]]:
    """Start ``airflow standalone`` on :func:`standalone_environment`; stop it (its whole process group) on exit.

    :param home: folder for the Airflow home, the mlops home and the log ``standalone.log``.
    :param dag_ids: DAGs that must be parsed before the client is handed out.
    :param extra_environment: variables for every Airflow component (see :func:`standalone_environment`).
    :return: a logged-in client and the environment Airflow runs with.
    """
    port = free_port()
    environment = standalone_environment(home, port, extra_environment)
    log = (home / "standalone.log").open("w")
    process = subprocess.Popen(
        [str(VENV_BIN / "airflow"), "standalone"],
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so every component it starts is stopped with it
    )
    client = Airflow(f"http://127.0.0.1:{port}")
    try:
        wait_until_ready(client, dag_ids)
        yield client, environment
    finally:
        for sig, grace in ((signal.SIGINT, 20), (signal.SIGKILL, 5)):
            try:
                os.killpg(process.pid, sig)
                process.wait(timeout=grace)
                break
            except (ProcessLookupError, subprocess.TimeoutExpired):
                continue
        log.close()
