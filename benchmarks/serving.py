"""Latency of the prediction API on loopback: 100 requests/s with online features from Redis.

Real uvicorn servers (``python -m mlops_ops.cli serve``, own processes) serve ``flight_delay`` as the model
spec defines it (every feature of the ``flight_delay_features`` service, the spec's gradient boosting); the
online store is the local Redis (127.0.0.1:6379) under a throwaway Feast project whose keys are deleted at the
end. The load is an open-loop asyncio/httpx client in its own light process (``benchmarks.serving_load``): one
request every 10 ms whatever the answers do (so a slow server shows up as latency, not as a lower rate), at most
``MAX_IN_FLIGHT`` in flight, each with a timeout, for ``MLOPS_BENCH_SERVING_SECONDS`` (default 60) seconds.
Requests are real February 2013 flights (varied airports, aircraft, carriers and routes). Two servers, one
scoring with the model's own ``predict_proba`` and one with its compiled trees, are loaded in turn
``MLOPS_BENCH_SERVING_ROUNDS`` (default 3) times each; medians over the rounds are reported.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

from benchmarks.serving_load import MAX_IN_FLIGHT, RATE, TIMEOUT_S
from benchmarks.worker_process import run_worker

PROJECT_ROOT = Path(__file__).resolve().parent.parent
GOAL_P99_MS = 50.0
DURATION_ENV = "MLOPS_BENCH_SERVING_SECONDS"
ROUNDS_ENV = "MLOPS_BENCH_SERVING_ROUNDS"
#: uvicorn worker processes (``MLOPS_BENCH_SERVING_WORKERS``): one per core of this 2-core machine.
WORKERS = int(os.environ.get("MLOPS_BENCH_SERVING_WORKERS", "2"))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def sign_and_promote(client, trust_folder: Path, name: str, version: str, digest: str, run_id: str) -> None:
    """Sign ``version`` and record its move to ``champion`` as RegisterOperator and PromoteOperator do, under a
    trust folder of the benchmark's own (the servers get it in their environment: they serve nothing else), then
    move the alias."""
    from mlops_ops.core.model_artifacts import SIGNATURE_TAG, Registration
    from mlops_ops.hooks.trust import TRUST_HOME_ENV, TrustHook

    with mock.patch.dict(os.environ, {TRUST_HOME_ENV: str(trust_folder)}):
        trust = TrustHook()
        now = datetime.now(UTC).isoformat(timespec="seconds")
        registration = Registration(
            model_name=name,
            version=version,
            artifact_sha256=digest,
            run_id=run_id,
            data_version="bench",
            gate_passed=True,
            signed_at=now,
        )
        client.set_model_version_tag(name, version, SIGNATURE_TAG, trust.sign_registration(registration))
        trust.record_alias_move(
            model_name=name,
            alias="champion",
            to_version=version,
            move="promotion",
            actor="benchmark",
            reason="benchmark champion",
            at=now,
        )
    client.set_registered_model_alias(name, "champion", version)


def _prepare(folder: Path, project: str) -> tuple[dict, list[dict]]:
    """Land data, build and materialize the features into Redis, register a champion; return the server's
    environment additions and the request bodies."""
    import mlflow
    import yaml

    from include.flights import data, feature_sources
    from include.flights.features import prepare_features_with_store
    from mlops_dev.logged_models import log_binary_classifier, sqlite_registry
    from mlops_ops.core import features, storage
    from mlops_ops.core.modelspec import ModelSpec
    from mlops_ops.core.training import build_estimator, features_frame
    from mlops_ops.hooks.feast import open_feature_store
    from mlops_ops.hooks.trust import TRUST_HOME_ENV

    root = str(folder / "data")
    for month in (1, 2):
        data.land_month(root, month)
    feature_sources.build_sources(root)
    settings = features.FeastSettings(
        repo_path=str(PROJECT_ROOT / "include" / "flights" / "feature_repo"),
        data_root=root,
        project=project,
        online_store={"type": "redis", "connection_string": "127.0.0.1:6379,db=0"},
        registry=str(folder / "registry.db"),
    )
    store = open_feature_store(settings)
    features.apply_definitions(store, features.load_definitions(settings.repo_path, root))
    features.materialize(store, datetime(2013, 3, 1, tzinfo=UTC), timedelta(hours=6))

    # The reference model as the retrain DAG trains it (the spec's features, estimator and params), on a
    # point-in-time training set of January flights: the API then reads every feature of the service online.
    raw = feature_sources.with_route(data.flights(1).sample(5000, random_state=1))
    raw = raw[raw["arr_delay"].notna()]
    joined, _ = features.historical_features(store, raw, "flight_delay_features", "time_hour")
    joined = prepare_features_with_store(joined)
    values = yaml.safe_load((PROJECT_ROOT / "include" / "flights" / "model_spec.yaml").read_text())
    spec = ModelSpec.from_dict({key: value for key, value in values.items() if key != "feature_store"})
    inputs = features_frame(joined, spec)
    model = build_estimator(spec, spec.params, seed=spec.seed).fit(inputs, joined["delayed"].astype("int64"))
    uri, client, experiment = sqlite_registry(folder, "bench")
    logged = log_binary_classifier(model, inputs, experiment, "flight_delay")
    digest = storage.directory_sha256(
        mlflow.artifacts.download_artifacts(logged.model_uri, dst_path=str(folder / "m"))
    )
    version = logged.version
    trust_environment = {TRUST_HOME_ENV: str(folder / "trust")}
    sign_and_promote(client, folder / "trust", "flight_delay", version, digest, logged.run_id)

    february = data.flights(2).sample(1000, random_state=2)
    requests = [
        {
            "carrier": row.carrier,
            "origin": row.origin,
            "dest": row.dest,
            **({"tailnum": row.tailnum} if isinstance(row.tailnum, str) else {}),
            "flight": int(row.flight),
            "scheduled_departure": f"{row.year}-{row.month:02d}-{row.day:02d}T"
            f"{row.sched_dep_time // 100:02d}:{row.sched_dep_time % 100:02d}:00",
            "sched_arr_time": int(row.sched_arr_time) % 2400,
            "distance": float(row.distance),
        }
        for row in february.itertuples()
    ]
    environment = {
        **trust_environment,
        "AIRFLOW_CONN_MLFLOW_BENCH": json.dumps({"conn_type": "mlflow", "host": uri}),
        "AIRFLOW_CONN_FEAST_BENCH": json.dumps(
            {
                "conn_type": "feast",
                "host": settings.repo_path,
                "extra": {
                    "project": project,
                    "data_root": root,
                    "registry": settings.registry,
                    "online_store": dict(settings.online_store),
                },
            }
        ),
    }
    return environment, requests


@contextlib.contextmanager
def _server(folder: Path, environment: dict, requests: list[dict], compile_trees: bool):
    """A running API (with or without ``--no-compile-trees``), ready and warmed up: yields its URL and scorer."""
    import httpx

    from include.flights.serving import SERVE_ARGUMENTS

    port = _free_port()
    log = folder / f"server-compiled-{compile_trees}.log"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlops_ops.cli",
            "serve",
            *SERVE_ARGUMENTS,
            "--port",
            str(port),
            "--workers",
            str(WORKERS),
            *([] if compile_trees else ["--no-compile-trees"]),
            "--mlflow-conn-id",
            "mlflow_bench",
            "--feast-conn-id",
            "feast_bench",
            "--poll-seconds",
            "30",
        ],
        cwd=PROJECT_ROOT,
        env={**os.environ, **environment, "PYTHONPATH": str(PROJECT_ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=open(log, "w"),  # noqa: SIM115 - closed with the folder
    )
    base = f"http://127.0.0.1:{port}"
    try:
        # Each worker imports Feast and MLflow and loads the model: minutes on a loaded 2-core machine.
        deadline = time.monotonic() + 300
        while True:
            try:
                ready = httpx.get(f"{base}/ready", timeout=2)
                if ready.status_code == 200:
                    scorer = httpx.get(f"{base}/health", timeout=2).json()["scorer"]
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the API did not become ready: {log.read_text()[-3000:]}")
            time.sleep(0.5)
        # Warm up: the first requests open the Redis client and load lazily imported code, in every worker.
        for body in requests[:20]:
            httpx.post(f"{base}/predict", json=body, timeout=60).raise_for_status()
        _load(folder, f"{base}/predict", 3)
        yield f"{base}/predict", scorer
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def _load(folder: Path, url: str, seconds: float) -> dict:
    """Run the load client in its own process: this one holds Feast, MLflow and the training data, and its
    garbage collections (hundreds of ms) would pause the client and show up as server latency."""
    return run_worker("benchmarks.serving_load", url, str(folder / "requests.json"), str(seconds))


def _load_average() -> list[float] | None:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def run(seconds: float | None = None, rounds: int | None = None) -> dict:
    """Serve the same champion and store with two servers: the model's own ``predict_proba`` (the server before
    compiled trees, ``--no-compile-trees``) and its trees compiled at load (the default). Load them in turn at
    ``RATE`` requests/s, ``rounds`` times each (the other one idle), then clean Redis. Figures are the medians
    over the rounds; the compiled server's are the result."""
    seconds = float(seconds or os.environ.get(DURATION_ENV) or 60)
    rounds = int(rounds or os.environ.get(ROUNDS_ENV) or 3)
    project = f"mlops_bench_{uuid.uuid4().hex[:8]}"
    runs: dict[str, list[dict]] = {"own_predict_proba": [], "compiled_trees": []}
    with tempfile.TemporaryDirectory(prefix="mlops-bench-serving-") as tmp:
        folder = Path(tmp)
        try:
            environment, requests = _prepare(folder, project)
            (folder / "requests.json").write_text(json.dumps(requests))
            with (
                _server(folder, environment, requests, compile_trees=False) as (own_url, own_scorer),
                _server(folder, environment, requests, compile_trees=True) as (compiled_url, compiled_scorer),
            ):
                for _ in range(rounds):
                    for label, url in (("own_predict_proba", own_url), ("compiled_trees", compiled_url)):
                        load_before = _load_average()
                        runs[label].append(
                            {
                                **_load(folder, url, seconds),
                                "load_average_before": load_before,
                                "load_average_after": _load_average(),
                            }
                        )
        finally:
            _delete_keys(project)
    return {
        "benchmark": "serving",
        "what": f"POST /predict on loopback, open loop at {RATE:.0f} requests/s for {seconds:.0f} s, real uvicorn "
        f"process ({WORKERS} workers), online features from Redis (Feast), HistGradientBoosting champion; "
        f"at most {MAX_IN_FLIGHT} in flight, {TIMEOUT_S:.0f} s timeout; median of {rounds} rounds",
        "rate_per_s": RATE,
        "duration_s": seconds,
        "workers": WORKERS,
        "rounds": rounds,
        **_medians(runs["compiled_trees"]),
        "scorer": compiled_scorer,
        "before_compiled_trees": {**_medians(runs["own_predict_proba"]), "scorer": own_scorer},
        "goal_p99_ms": GOAL_P99_MS,
    }


def _medians(loads: list[dict]) -> dict:
    """Each latency figure's median over the rounds; every round's figures; errors summed."""
    errors: dict[str, int] = {}
    for load in loads:
        for kind, count in load["errors"].items():
            errors[kind] = errors.get(kind, 0) + count
    figures = ("achieved_rate_per_s", "p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms")
    return {
        "requests": sum(load["requests"] for load in loads),
        "ok": sum(load["ok"] for load in loads),
        "errors": errors,
        **{
            figure: statistics.median(load[figure] for load in loads)
            if all(load[figure] is not None for load in loads)
            else None
            for figure in figures
        },
        "per_round": loads,
    }


def _delete_keys(project: str) -> None:
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379)
    keys = list(client.scan_iter(match=f"*{project}", count=1000))
    if keys:
        client.delete(*keys)


def report(result: dict) -> tuple[str, bool]:
    """One summary line and whether the goal was met (p99 within the goal, no errors)."""
    ok = not result["errors"] and result["p99_ms"] is not None and result["p99_ms"] <= result["goal_p99_ms"]
    line = (
        f"serving (median of {result['rounds']} rounds of {result['duration_s']:.0f} s, "
        f"{result['requests']} requests in all) at {result['achieved_rate_per_s']}/s: "
        f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms (goal <= {result['goal_p99_ms']} ms), "
        f"errors {result['errors'] or 0}: {'ok' if ok else 'OVER GOAL'}"
    )
    before = result.get("before_compiled_trees")
    if before:
        line += (
            f"\n  same run, the model's own predict_proba (--no-compile-trees): p50 {before['p50_ms']} ms, "
            f"p99 {before['p99_ms']} ms, errors {before['errors'] or 0}; p99 per round: compiled "
            f"{[load['p99_ms'] for load in result['per_round']]}, own "
            f"{[load['p99_ms'] for load in before['per_round']]}; load average at the start "
            f"{before['per_round'][0]['load_average_before']}"
        )
    return line, ok
