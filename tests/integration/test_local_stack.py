"""`make up` / `make down` (``python -m mlops_dev up`` / ``down``): the Airflow and MLflow UIs on the embedded state,
started in the background, stopped by their PID file. Real servers on free ports, in a home of their own.
MLflow asks for a login; what the accounts may do is tested in ``test_mlflow_auth.py``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from mlops_dev.processes import process_group_alive
from tests.airflow_rest import free_port

pytestmark = pytest.mark.integration

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# The development commands run from the repository root, as `make up` runs them (mlops_dev is not installed).
MLOPS_DEV = [sys.executable, "-m", "mlops_dev"]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def _assert_mlflow_asks_for_a_login(mlflow_url: str, mlops_home: Path, printed: str) -> None:
    import base64
    import stat
    import urllib.error

    search = f"{mlflow_url}/api/2.0/mlflow/registered-models/search"
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        urllib.request.urlopen(search, timeout=10)
    assert anonymous.value.code == 401
    password_file = mlops_home / "mlflow-auth" / "viewer.password"
    assert f"user `viewer` (read-only), password in {password_file}" in printed
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    token = base64.b64encode(f"viewer:{password_file.read_text().strip()}".encode()).decode()
    request = urllib.request.Request(search, headers={"Authorization": f"Basic {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def test_up_starts_both_uis_in_the_background_and_down_stops_them_by_pid(tmp_path):
    ports = {"airflow": free_port(), "mlflow": free_port()}
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW", "MLFLOW_TRACKING_URI", "MLOPS_DATA_ROOT"))
    }
    env.update(
        AIRFLOW_HOME=str(tmp_path / "airflow"),
        MLOPS_HOME=str(tmp_path / "mlops"),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    up = [*MLOPS_DEV, "up", "--project", str(PROJECT_ROOT)]
    up += ["--airflow-port", str(ports["airflow"]), "--mlflow-port", str(ports["mlflow"])]
    pid_file = tmp_path / "airflow" / "mlops-ops-up.pid"
    try:
        started = subprocess.run(up, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert started.returncode == 0, started.stderr
        assert "user `admin`" in started.stdout
        pids = json.loads(pid_file.read_text())
        assert set(pids) == {"airflow", "mlflow"}
        assert all(process_group_alive(pid) for pid in pids.values())
        assert _answers(f"http://127.0.0.1:{ports['airflow']}/api/v2/version")
        assert _answers(f"http://127.0.0.1:{ports['mlflow']}/health")
        _assert_mlflow_asks_for_a_login(
            f"http://127.0.0.1:{ports['mlflow']}", tmp_path / "mlops", started.stdout
        )

        again = subprocess.run(up, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert again.returncode == 1 and "already running" in again.stderr
    finally:
        down = subprocess.run(
            [*MLOPS_DEV, "down", "--project", str(PROJECT_ROOT)],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert down.returncode == 0, down.stderr
    assert down.stdout.strip() == "Stopped airflow, mlflow."
    assert not any(process_group_alive(pid) for pid in pids.values())
    assert not pid_file.exists()
    assert not _answers(f"http://127.0.0.1:{ports['airflow']}/api/v2/version")

    nothing = subprocess.run(
        [*MLOPS_DEV, "down", "--project", str(PROJECT_ROOT)],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert nothing.stdout.strip() == "Nothing was running."
