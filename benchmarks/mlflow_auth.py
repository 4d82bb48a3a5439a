"""What MLflow's basic-auth app costs the server per request, with its password-check cache off and on.

One MLflow server on SQLite behind the basic-auth app, started as ``make up`` starts it
(:func:`mlops_dev.local_stack.mlflow_server_argv`), once with ``auth_cache_ttl_seconds = 0`` (MLflow's default:
the scrypt hash is checked on every request) and once with the cache mlops-ops configures
(:data:`mlops_dev.mlflow_auth.AUTH_CACHE_SECONDS`). The same authenticated reads go to each (the alias lookup
the stream scorers and tasks make most); the figure is the CPU time of the server's process group per request,
the ratio of the two medians the goal. Rounds alternate between the two servers, so machine noise hits both.
"""

from __future__ import annotations

import base64
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

GOAL_RATIO = 0.5  # the cache at least halves the server's CPU per authenticated request
REQUESTS_PER_ROUND = 40
ROUNDS = 5
MODEL = "bench_auth"


def _server(home: Path, ttl: int):
    from mlops_dev.local_stack import mlflow_server_argv
    from mlops_dev.mlflow_auth import prepare_mlflow_auth
    from mlops_dev.processes import start_process
    from tests.airflow_rest import free_port

    auth = prepare_mlflow_auth(home / "mlflow-auth")
    config = auth.config_file.read_text()
    auth.config_file.write_text(
        "\n".join(
            f"auth_cache_ttl_seconds = {ttl}" if line.startswith("auth_cache_ttl_seconds") else line
            for line in config.splitlines()
        )
        + "\n"
    )
    port = free_port()
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MLFLOW_TRACKING_", "MLFLOW_AUTH_", "AIRFLOW_CONN_"))
    }
    argv = mlflow_server_argv(
        str(Path(sys.executable).parent / "mlflow"),
        port=port,
        backend_store_uri=f"sqlite:///{home}/mlflow.db",
        artifact_root=home / "artifacts",
        auth=auth,
    )
    process = start_process(
        f"mlflow-ttl-{ttl}", argv, env={**environment, **auth.server_environment()}, log_dir=home / "logs"
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5):
                break
        except OSError:
            if not process.running() or time.monotonic() > deadline:
                process.stop(grace=5)
                raise RuntimeError(f"mlflow server did not start:\n{process.log_tail()}") from None
            time.sleep(0.5)
    return process, url, auth.service


def _call(url: str, path: str, account, payload: dict | None = None) -> None:
    token = base64.b64encode(f"{account.username}:{account.password}".encode()).decode()
    request = urllib.request.Request(
        f"{url}{path}",
        data=None if payload is None else json.dumps(payload).encode(),
        method="GET" if payload is None else "POST",
        headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


def _group_cpu_seconds(pid: int) -> float:
    import psutil

    leader = psutil.Process(pid)
    total = 0.0
    for process in [leader, *leader.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def _round(process, url: str, account) -> tuple[float, float]:
    """Server CPU seconds per request and the median latency of one round."""
    path = f"/api/2.0/mlflow/registered-models/get?name={MODEL}"
    before = _group_cpu_seconds(process.pid)
    latencies = []
    for _ in range(REQUESTS_PER_ROUND):
        started = time.perf_counter()
        _call(url, path, account)
        latencies.append(time.perf_counter() - started)
    return (_group_cpu_seconds(process.pid) - before) / REQUESTS_PER_ROUND, statistics.median(latencies)


def run() -> dict:
    with tempfile.TemporaryDirectory(prefix="mlops-bench-auth-") as work:
        servers = {}
        try:
            for ttl in (0, 60):
                servers[ttl] = _server(Path(work, f"ttl-{ttl}"), ttl)
                process, url, account = servers[ttl]
                _call(url, "/api/2.0/mlflow/registered-models/create", account, {"name": MODEL})
                _round(process, url, account)  # warm: the first requests import and compile routes
            cpu: dict[int, list[float]] = {0: [], 60: []}
            latency: dict[int, list[float]] = {0: [], 60: []}
            for _ in range(ROUNDS):
                for ttl, (process, url, account) in servers.items():
                    per_request, median_latency = _round(process, url, account)
                    cpu[ttl].append(per_request)
                    latency[ttl].append(median_latency)
        finally:
            for process, _, _ in servers.values():
                process.stop(grace=5)
    off, on = statistics.median(cpu[0]), statistics.median(cpu[60])
    ratio = round(on / off, 3) if off else None
    return {
        "benchmark": "mlflow_auth",
        "repeats": ROUNDS,
        "requests_per_round": REQUESTS_PER_ROUND,
        "cache_off": {
            "server_cpu_ms_per_request": round(off * 1000, 1),
            "latency_median_ms": round(statistics.median(latency[0]) * 1000, 1),
        },
        "cache_on": {
            "auth_cache_ttl_seconds": 60,
            "server_cpu_ms_per_request": round(on * 1000, 1),
            "latency_median_ms": round(statistics.median(latency[60]) * 1000, 1),
        },
        "checks": [
            {
                "name": "server CPU per authenticated request, cache on / off",
                "value": ratio,
                "goal": f"<= {GOAL_RATIO}",
                "ok": ratio is not None and ratio <= GOAL_RATIO,
            }
        ],
    }


def report(result: dict) -> tuple[str, bool]:
    check = result["checks"][0]
    off, on = result["cache_off"], result["cache_on"]
    return (
        f"mlflow_auth (median of {result['repeats']} rounds of {result['requests_per_round']} requests): server "
        f"CPU per request {off['server_cpu_ms_per_request']} ms with MLflow's default, "
        f"{on['server_cpu_ms_per_request']} ms with the 60 s cache = {check['value']}x (goal {check['goal']}); "
        f"latency {off['latency_median_ms']} -> {on['latency_median_ms']} ms: {'ok' if check['ok'] else 'MISSED'}",
        check["ok"],
    )
