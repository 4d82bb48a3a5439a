"""The lifecycle under the real Airflow: ``airflow standalone`` (scheduler, dag-processor, triggerer, API
server), DAGs unpaused and triggered over the REST API with ``logical_date`` null, as a person or a CI system
would, not through ``dag.test()``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

PROJECT_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
STARTUP_SECONDS = 120
RUN_SECONDS = 300


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Airflow:
    """A started ``airflow standalone`` and a small REST client for it."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.token = ""

    def request(self, method: str, path: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(
            self.base_url + path,
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={
                "Content-Type": "application/json",
                **({"Authorization": f"Bearer {self.token}"} if self.token else {}),
            },
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"{}")

    def login(self, user: str, password: str) -> None:
        self.token = self.request("POST", "/auth/token", {"username": user, "password": password})[
            "access_token"
        ]

    def wait_for(self, condition, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                value = condition()
            except OSError:
                value = None
            if value:
                return value
            time.sleep(3)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")

    def runs(self, dag_id: str) -> list[dict]:
        return self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns")["dag_runs"]


@pytest.fixture(scope="module")
def airflow(tmp_path_factory):
    home = tmp_path_factory.mktemp("standalone")
    port = _free_port()
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({"admin": "admin-e2e"}))
    environment = {
        **os.environ,
        "AIRFLOW_HOME": str(home / "airflow"),
        "MLOPS_HOME": str(home / "mlops"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "2",
        "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "PYTHONPATH": str(PROJECT_ROOT),
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    for variable in ("MLOPS_DATA_ROOT", "MLFLOW_TRACKING_URI", "AIRFLOW__CORE__UNIT_TEST_MODE"):
        environment.pop(variable, None)
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], env=environment, check=True, capture_output=True
    )
    subprocess.run(
        [str(VENV_BIN / "mlops-ops"), "settings", "apply", str(PROJECT_ROOT / "airflow_settings.yaml")],
        env=environment,
        check=True,
        capture_output=True,
    )
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
        client.wait_for(
            lambda: all(
                part["status"] == "healthy"
                for part in client.request("GET", "/api/v2/monitor/health").values()
            ),
            STARTUP_SECONDS,
            "airflow standalone to be healthy",
        )
        client.login("admin", "admin-e2e")
        client.wait_for(
            lambda: (
                {"ingest_flights", "retrain"}
                <= {d["dag_id"] for d in client.request("GET", "/api/v2/dags")["dags"]}
            ),
            STARTUP_SECONDS,
            "the dag-processor to parse dags/",
        )
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


def test_rest_triggered_ingest_feeds_a_retrain_that_registers_through_the_scheduler(airflow):
    client, environment = airflow
    client.request("PATCH", "/api/v2/dags/ingest_flights", {"is_paused": False})
    ingest = client.request(
        "POST", "/api/v2/dags/ingest_flights/dagRuns", {"logical_date": None, "conf": {"through_month": 2}}
    )
    client.wait_for(
        lambda: (
            {r["dag_run_id"]: r["state"] for r in client.runs("ingest_flights")}.get(ingest["dag_run_id"])
            == "success"
        ),
        RUN_SECONDS,
        "ingest_flights to succeed",
    )

    # Unpausing starts the latest weekly run, and the asset event from ingest queues another: the first to
    # get through trains on the landed months; the other waits, deferred, for newer data.
    client.request("PATCH", "/api/v2/dags/retrain", {"is_paused": False})
    succeeded = client.wait_for(
        lambda: (
            [r for r in client.runs("retrain") if r["state"] == "success"]
            or (_fail_on_failed_runs(client) and None)
        ),
        RUN_SECONDS,
        "a retrain run to succeed",
    )[0]
    tasks = {
        t["task_id"]: t
        for t in client.request(
            "GET", f"/api/v2/dags/retrain/dagRuns/{succeeded['dag_run_id']}/taskInstances"
        )["task_instances"]
    }
    assert {task: t["state"] for task, t in tasks.items()} == dict.fromkeys(
        ("wait_for_data", "validate", "train", "evaluate_gate", "register"), "success"
    )
    assert tasks["train"]["pool"] == "gpu"
    registered = client.request(
        "GET",
        f"/api/v2/dags/retrain/dagRuns/{succeeded['dag_run_id']}/taskInstances/register/xcomEntries/return_value",
    )["value"]
    registered = json.loads(registered) if isinstance(registered, str) else registered

    import mlflow

    registry = mlflow.MlflowClient(f"sqlite:///{environment['MLOPS_HOME']}/mlflow.db")
    assert registry.get_registered_model("flight_delay").aliases == {"challenger": int(registered["version"])}
    tags = registry.get_model_version("flight_delay", registered["version"]).tags
    assert tags["mlops.airflow.run_id"] == succeeded["dag_run_id"]
    expected_reason = "new data version" if succeeded["run_type"] == "asset_triggered" else "scheduled run"
    assert tags["mlops.trigger_reason"] == expected_reason


def _fail_on_failed_runs(client: Airflow) -> bool:
    failed = [r["dag_run_id"] for r in client.runs("retrain") if r["state"] == "failed"]
    assert not failed, f"retrain runs failed: {failed}"
    return False
