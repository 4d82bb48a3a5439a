"""Latency of the prediction API on loopback: 100 requests/s with online features from Redis.

A real uvicorn server (``python -m mlops_ops.serving``, its own process) serves ``flight_delay`` as the model
spec defines it (every feature of the ``flight_delay_features`` service, the spec's gradient boosting); the
online store is the local Redis (127.0.0.1:6379) under a throwaway Feast project whose keys are deleted at the
end. The load is an open-loop asyncio/httpx client: one request every 10 ms whatever the answers do (so a slow
server shows up as latency, not as a lower rate), at most ``MAX_IN_FLIGHT`` in flight, each with a timeout, for
``MLOPS_BENCH_SERVING_SECONDS`` (default 60) seconds. Requests are real February 2013 flights (varied airports,
aircraft, carriers and routes).
"""

from __future__ import annotations

import asyncio
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

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RATE = 100.0
MAX_IN_FLIGHT = 64
TIMEOUT_S = 5.0
GOAL_P99_MS = 50.0
DURATION_ENV = "MLOPS_BENCH_SERVING_SECONDS"
#: uvicorn worker processes (``MLOPS_BENCH_SERVING_WORKERS``): one per core of this 2-core machine.
WORKERS = int(os.environ.get("MLOPS_BENCH_SERVING_WORKERS", "2"))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _prepare(folder: Path, project: str) -> tuple[dict, list[dict]]:
    """Land data, build and materialize the features into Redis, register a champion; return the server's
    environment additions and the request bodies."""
    import mlflow
    import yaml
    from mlflow.models import infer_signature

    from include.flights import data, feature_sources
    from include.flights.features import prepare_features_with_store
    from mlops_ops.core import features, lineage, storage
    from mlops_ops.core.modelspec import ModelSpec
    from mlops_ops.core.training import build_estimator, features_frame

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
    store = features.open_store(settings)
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
    uri = f"sqlite:///{folder}/mlflow.db"
    client = mlflow.MlflowClient(uri, uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    experiment = client.create_experiment("bench", artifact_location=(folder / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(inputs, model.predict_proba(inputs)[:, 1]),
            serialization_format="cloudpickle",
            pip_requirements=["scikit-learn"],
        )
    digest = storage.directory_sha256(
        mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(folder / "m"))
    )
    version = mlflow.register_model(info.model_uri, "flight_delay", tags={lineage.ARTIFACT_SHA256: digest})
    client.set_registered_model_alias("flight_delay", "champion", version.version)

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


async def _load(url: str, requests: list[dict], seconds: float) -> dict:
    import httpx

    latencies: list[float] = []
    errors: dict[str, int] = {}
    in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
    limits = httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=MAX_IN_FLIGHT)

    async def one(client: httpx.AsyncClient, body: dict) -> None:
        async with in_flight:
            started = time.perf_counter()
            try:
                response = await client.post(url, json=body)
                kind = None if response.status_code == 200 else f"HTTP {response.status_code}"
            except httpx.HTTPError as err:
                kind = type(err).__name__
            if kind:
                errors[kind] = errors.get(kind, 0) + 1
            else:
                latencies.append((time.perf_counter() - started) * 1000)

    total = int(seconds * RATE)
    async with httpx.AsyncClient(timeout=TIMEOUT_S, limits=limits) as client:
        tasks = []
        begin = time.perf_counter()
        for index in range(total):
            # Open loop: request i leaves at i/RATE seconds, whether or not earlier ones came back.
            delay = begin + index / RATE - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(client, requests[index % len(requests)])))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - begin
    latencies.sort()

    def percentile(share: float) -> float:
        return (
            round(latencies[min(len(latencies) - 1, int(share * len(latencies)))], 2) if latencies else None
        )

    return {
        "requests": total,
        "ok": len(latencies),
        "errors": errors,
        "achieved_rate_per_s": round(total / elapsed, 1),
        "p50_ms": percentile(0.50),
        "p90_ms": percentile(0.90),
        "p99_ms": percentile(0.99),
        "max_ms": round(latencies[-1], 2) if latencies else None,
        "mean_ms": round(statistics.fmean(latencies), 2) if latencies else None,
    }


def _serve_and_load(
    folder: Path, environment: dict, requests: list[dict], seconds: float, threads: int
) -> dict:
    """Start the API with ``--model-threads threads``, warm it up, load it at ``RATE``/s, stop it."""
    import httpx

    port = _free_port()
    log = folder / f"server-threads-{threads}.log"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlops_ops.serving",
            "--port",
            str(port),
            "--workers",
            str(WORKERS),
            "--model-threads",
            str(threads),
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
                if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the API did not become ready: {log.read_text()[-3000:]}")
            time.sleep(0.5)
        # Warm up: the first requests open the Redis client and load lazily imported code, in every worker.
        for body in requests[:20]:
            httpx.post(f"{base}/predict", json=body, timeout=60).raise_for_status()
        asyncio.run(_load(f"{base}/predict", requests, 3))
        return asyncio.run(_load(f"{base}/predict", requests, seconds))
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def _load_average() -> list[float] | None:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def run(seconds: float | None = None) -> dict:
    """Serve the same champion and store twice in one run: predict with the libraries' default threads (every
    core: the server before ``--model-threads``), then with one thread per predict (the default now); load
    each at ``RATE`` requests/s; clean Redis. The figures of the second are the result."""
    seconds = float(seconds or os.environ.get(DURATION_ENV) or 60)
    project = f"mlops_bench_{uuid.uuid4().hex[:8]}"
    runs = {}
    with tempfile.TemporaryDirectory(prefix="mlops-bench-serving-") as tmp:
        folder = Path(tmp)
        try:
            environment, requests = _prepare(folder, project)
            for label, threads in (("default_threads", 0), ("model_threads_1", 1)):
                load_before = _load_average()
                runs[label] = {
                    **_serve_and_load(folder, environment, requests, seconds, threads),
                    "load_average_before": load_before,
                    "load_average_after": _load_average(),
                }
        finally:
            _delete_keys(project)
    result = runs["model_threads_1"]
    return {
        "benchmark": "serving",
        "what": f"POST /predict on loopback, open loop at {RATE:.0f} requests/s for {seconds:.0f} s, real uvicorn "
        f"process ({WORKERS} workers), online features from Redis (Feast), HistGradientBoosting champion; "
        f"at most {MAX_IN_FLIGHT} in flight, {TIMEOUT_S:.0f} s timeout",
        "rate_per_s": RATE,
        "duration_s": seconds,
        "workers": WORKERS,
        **result,
        "before_model_threads": runs["default_threads"],
        "goal_p99_ms": GOAL_P99_MS,
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
        f"serving: {result['requests']} requests at {result['achieved_rate_per_s']}/s "
        f"for {result['duration_s']:.0f} s: "
        f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms (goal <= {result['goal_p99_ms']} ms), "
        f"errors {result['errors'] or 0}: {'ok' if ok else 'OVER GOAL'}"
    )
    before = result.get("before_model_threads")
    if before:
        line += (
            f"\n  same run, predict on every core (before --model-threads): p50 {before['p50_ms']} ms, "
            f"p99 {before['p99_ms']} ms, errors {before['errors'] or 0}; load average "
            f"{before['load_average_before']} -> {result['load_average_after']}"
        )
    return line, ok
