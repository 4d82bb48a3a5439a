"""The stream scorer (``mlops-ops stream``) on the local Redis (127.0.0.1:6379), against a per-message loop.

The model is synthetic, as the stream scorer's tests use (a second team's binary ``shop_conversion``: a
category, two numbers and a flag; no feature store, the request model built from the signature), trained with
the project's ``build_estimator`` (gradient boosting, 100 iterations), logged with skops to an MLflow SQLite
registry of the benchmark's own, signed and moved to ``champion`` as RegisterOperator and PromoteOperator do. One
stream of ``EVENTS`` events (``data`` = the raw row's JSON, an ``event_id``) is filled once; each measurement
reads it through a consumer group of its own. Stream names are unique and deleted at the end.

- ``throughput``: a :class:`StreamScorer` in this process (model loaded first) drains the stream in batches of
  ``BATCH_SIZE``; events/s from the first read to the last commit.
- ``per_message``: the seed's loop on the same loaded model and the same stream: read one entry, parse it,
  predict it alone (the same ``Predictor``: compiled trees), write one output record, acknowledge it; run on the
  first ``BASELINE_EVENTS`` events (its rate does not depend on how many).
- ``scale_out``: 1 then 2 ``python -m mlops_ops.cli stream`` processes (consumers of one group); the group is
  created at the stream's end, the processes start and load the model, and once every consumer has read, the
  group is moved to the stream's start (``XGROUP SETID 0``): events/s from then to the last output record
  (the Redis server's clock). This machine has 2 cores, shared by Redis and the scorers.
- ``latency``: one scorer process and a producer in this process adding events with their ``event_time`` at
  about half the one-process rate for ``LATENCY_SECONDS``; the p50/p99 of ``scored_at - event_time``.

Each figure is the median of ``REPEATS`` runs (latency: one run).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from unittest import mock

from benchmarks.serving import sign_and_promote
from mlops_dev.logged_models import sqlite_registry
from mlops_dev.shop_model import MODEL, log_shop_model, shop_frame

CONN_ID = "mlflow_stream_bench"
EVENTS = 20_000
BATCH_SIZE = 500
BASELINE_EVENTS = 2_000
REPEATS = 3
LATENCY_SECONDS = 10.0
GOAL_EVENTS_PER_S = 20_000
GOAL_RATIO = 10.0
GOAL_P99_MS = 250.0
REDIS_URL = "redis://127.0.0.1:6379/0"


def _register(folder: Path) -> dict[str, str]:
    """The champion in a registry under ``folder``; return what a scorer needs in its environment."""
    import mlflow

    from mlops_ops.core import storage
    from mlops_ops.hooks.trust import TRUST_HOME_ENV

    uri, client, experiment = sqlite_registry(folder, "stream")
    _, logged = log_shop_model(experiment, max_iter=100)
    digest = storage.directory_sha256(
        mlflow.artifacts.download_artifacts(logged.model_uri, dst_path=str(folder / "m"))
    )
    sign_and_promote(client, folder / "trust", MODEL, logged.version, digest, logged.run_id)
    return {
        TRUST_HOME_ENV: str(folder / "trust"),
        f"AIRFLOW_CONN_{CONN_ID.upper()}": json.dumps({"conn_type": "mlflow", "host": uri}),
        "MLOPS_PROFILE": "embedded",
    }


def _fill(client, stream: str, rows: list[str], start: int = 0, event_time: bool = False) -> None:
    pipe = client.pipeline(transaction=False)
    now_ms = str(int(time.time() * 1000))
    for index, data in enumerate(rows, start):
        fields = {"data": data, "event_id": f"visit-{index}"}
        if event_time:
            fields["event_time"] = now_ms
        pipe.xadd(stream, fields)
        if len(pipe) >= 1000:
            pipe.execute()
    pipe.execute()


def _config(names: dict[str, str], group: str, output: str):
    from mlops_ops.serving import ServingConfig
    from mlops_ops.streaming.scorer import StreamConfig

    return StreamConfig(
        serving=ServingConfig(model_name=MODEL, mlflow_conn_id=CONN_ID, poll_seconds=60),
        redis_url=REDIS_URL,
        stream=names["stream"],
        group=group,
        consumer="bench-1",
        output=output,
        dead_letter=names["dead_letter"],
        batch_size=BATCH_SIZE,
    )


def _scorer_throughput(client, names: dict[str, str]) -> float:
    from mlops_ops.streaming.scorer import StreamScorer

    group, output = f"inproc-{uuid.uuid4().hex[:6]}", names["output"]
    scorer = StreamScorer(_config(names, group, output))
    scorer.slot.refresh()
    assert scorer.slot.current is not None
    started = time.perf_counter()
    stats = scorer.run(max_batches=-(-EVENTS // BATCH_SIZE))
    elapsed = time.perf_counter() - started
    assert stats.scored == EVENTS and stats.dead_letters == 0, stats
    client.xgroup_destroy(names["stream"], group)
    client.delete(output)
    return EVENTS / elapsed


def _per_message(client, names: dict[str, str]) -> float:
    """The seed's loop: one entry read, predicted alone, written and acknowledged at a time."""
    from mlops_ops.streaming.events import Event, parse_entry
    from mlops_ops.streaming.scorer import StreamScorer

    group, output = f"loop-{uuid.uuid4().hex[:6]}", names["output"]
    scorer = StreamScorer(_config(names, group, output))
    scorer.slot.refresh()
    current = scorer.slot.current
    assert current is not None
    stream = names["stream"]
    client.xgroup_create(stream, group, id="0")
    started = time.perf_counter()
    for _ in range(BASELINE_EVENTS):
        [(_, [(entry_id, fields)])] = client.xreadgroup(group, "loop", {stream: ">"}, count=1)
        event = parse_entry(entry_id.decode(), fields, scorer.request_model, scorer.config.max_event_bytes)
        assert isinstance(event, Event)
        [answer] = scorer.predictor.score([event.request], current)
        result = answer.model_dump(exclude={"model_name", "model_version", "missing_features"})
        client.xadd(
            output,
            {
                "event_id": event.event_id,
                "entry_id": event.entry_id,
                "event_time": str(event.event_time_ms),
                "scored_at": str(int(time.time() * 1000)),
                "model_name": answer.model_name,
                "model_version": answer.model_version,
                "result": json.dumps(result, separators=(",", ":")),
            },
        )
        client.xack(stream, group, entry_id)
    elapsed = time.perf_counter() - started
    client.xgroup_destroy(stream, group)
    client.delete(output)
    return BASELINE_EVENTS / elapsed


def _command(names: dict[str, str], group: str, consumer: str, output: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mlops_ops.cli",
        "stream",
        "--model",
        MODEL,
        "--mlflow-conn-id",
        CONN_ID,
        "--source",
        REDIS_URL,
        "--stream",
        names["stream"],
        "--group",
        group,
        "--consumer",
        consumer,
        "--output",
        output,
        "--dead-letter",
        names["dead_letter"],
        "--batch-size",
        str(BATCH_SIZE),
        "--poll-seconds",
        "60",
    ]


def _start(
    client, names: dict[str, str], environment: dict[str, str], processes: int, output: str, *, at: str
) -> tuple[str, list[subprocess.Popen]]:
    """``processes`` scorer processes in a new group created at ``at``; return once every one has read."""
    group = f"procs-{uuid.uuid4().hex[:6]}"
    client.xgroup_create(names["stream"], group, id=at, mkstream=True)
    env = {**os.environ, **environment}
    started = [
        subprocess.Popen(
            _command(names, group, f"c{index}", output),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for index in range(processes)
    ]
    deadline = time.monotonic() + 120
    while len(client.xinfo_consumers(names["stream"], group)) < processes:
        if time.monotonic() > deadline or any(process.poll() is not None for process in started):
            _stop(started)
            raise RuntimeError("the scorer processes did not start")
        time.sleep(0.1)
    time.sleep(0.5)  # past the first read's own-pending and claim calls
    return group, started


def _stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _processes_throughput(
    client, names: dict[str, str], environment: dict[str, str], processes: int
) -> tuple[float, float]:
    """Events/s of ``processes`` scorer processes, and the Redis server's share of a core meanwhile."""
    output = f"{names['output']}:{processes}p"
    group, started = _start(client, names, environment, processes, output, at="$")
    try:
        redis_cpu = _redis_cpu_s(client)
        began_ms = int(time.time() * 1000)
        client.xgroup_setid(names["stream"], group, "0")
        deadline = time.monotonic() + 300
        while client.xlen(output) < EVENTS:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{processes} scorer processes wrote {client.xlen(output)} of {EVENTS}")
            time.sleep(0.02)
        [(last_id, _)] = client.xrevrange(output, count=1)
        ended_ms = int(last_id.decode().split("-")[0])
        redis_cpu = _redis_cpu_s(client) - redis_cpu
    finally:
        _stop(started)
    client.xgroup_destroy(names["stream"], group)
    client.delete(output)
    elapsed_ms = max(1, ended_ms - began_ms)
    return EVENTS * 1000 / elapsed_ms, redis_cpu * 1000 / elapsed_ms


def _redis_cpu_s(client) -> float:
    """The Redis server's CPU seconds so far (user + system, all its threads)."""
    cpu = client.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def _latency(
    client, names: dict[str, str], environment: dict[str, str], rate: float, rows: list[str]
) -> dict[str, Any]:
    """One scorer process, events produced at ``rate`` per second in 10 ms ticks; end-to-end latencies."""
    stream = f"{names['stream']}:live"
    live = {**names, "stream": stream}
    output = f"{names['output']}:live"
    group, started = _start(client, live, environment, 1, output, at="$")
    produced = 0
    try:
        began = time.monotonic()
        while (elapsed := time.monotonic() - began) < LATENCY_SECONDS:
            due = int(elapsed * rate)
            if due > produced:
                chunk = [rows[index % len(rows)] for index in range(produced, due)]
                _fill(client, stream, chunk, start=produced, event_time=True)
                produced = due
            time.sleep(0.01)
        deadline = time.monotonic() + 60
        while client.xlen(output) < produced and time.monotonic() < deadline:
            time.sleep(0.05)
        latencies = sorted(
            int(fields[b"scored_at"]) - int(fields[b"event_time"]) for _, fields in client.xrange(output)
        )
    finally:
        _stop(started)
    client.delete(stream, output)
    return {
        "rate_per_s": round(rate),
        "seconds": LATENCY_SECONDS,
        "events": produced,
        "scored": len(latencies),
        "p50_ms": latencies[len(latencies) // 2],
        "p99_ms": latencies[int(len(latencies) * 0.99)],
        "max_ms": latencies[-1],
        "goal_p99_ms": GOAL_P99_MS,
    }


def run() -> dict:
    """The figures (see the module's docstring) and their checks against the issue's goals."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379)
    client.ping()
    tag = uuid.uuid4().hex[:10]
    names = {
        "stream": f"{{bench-{tag}}}:events",
        "output": f"{{bench-{tag}}}:predictions",
        "dead_letter": f"{{bench-{tag}}}:dead",
    }
    folder = Path(tempfile.mkdtemp(prefix="mlops-bench-stream-"))
    load_before = [round(value, 2) for value in os.getloadavg()]
    try:
        environment = _register(folder)
        frame = shop_frame(EVENTS, 1)
        features = ["colour", "width", "rooms", "renovated"]
        rows = [json.dumps(row) for row in frame[features].to_dict(orient="records")]
        _fill(client, names["stream"], rows)
        with mock.patch.dict(os.environ, environment):
            scorer = [_scorer_throughput(client, names) for _ in range(REPEATS)]
            loop = [_per_message(client, names) for _ in range(REPEATS)]
        one = [_processes_throughput(client, names, environment, 1) for _ in range(REPEATS)]
        two = [_processes_throughput(client, names, environment, 2) for _ in range(REPEATS)]
        latency = _latency(client, names, environment, statistics.median(rate for rate, _ in one) / 2, rows)
    finally:
        client.delete(*[key for key in client.scan_iter(f"{{bench-{tag}}}*")], *names.values())
        client.close()
    scorer_rate, loop_rate = statistics.median(scorer), statistics.median(loop)
    one_rate, two_rate = (
        statistics.median(rate for rate, _ in one),
        statistics.median(rate for rate, _ in two),
    )
    ratio = scorer_rate / loop_rate
    checks = [
        {
            "name": "scorer_events_per_s",
            "value": round(scorer_rate),
            "goal": f">= {GOAL_EVENTS_PER_S}",
            "ok": scorer_rate >= GOAL_EVENTS_PER_S,
        },
        {
            "name": "scorer_vs_per_message",
            "value": round(ratio, 1),
            "goal": f">= {GOAL_RATIO}",
            "ok": ratio >= GOAL_RATIO,
        },
        {
            "name": "p99_latency_ms_at_half_rate",
            "value": latency["p99_ms"],
            "goal": f"<= {GOAL_P99_MS}",
            "ok": latency["p99_ms"] <= GOAL_P99_MS and latency["scored"] == latency["events"],
        },
    ]
    return {
        "benchmark": "streaming",
        "what": f"mlops-ops stream on the local Redis: a stream of {EVENTS} events drained in batches of "
        f"{BATCH_SIZE} (in process), vs a per-message loop (read one, predict it alone, write one, acknowledge) on "
        "the same model and stream; 1 vs 2 scorer processes in one group; end-to-end latency at half the "
        f"one-process rate for {LATENCY_SECONDS:.0f} s; median of {REPEATS} runs (latency: one)",
        "repeats": REPEATS,
        "model": "synthetic shop_conversion (gradient boosting, 100 iterations, 4 raw columns), skops, "
        "signed champion in an MLflow SQLite registry",
        "events": EVENTS,
        "batch_size": BATCH_SIZE,
        "checks": checks,
        "throughput": {
            "scorer_events_per_s": round(scorer_rate),
            "per_message_events_per_s": round(loop_rate),
            "per_message_events": BASELINE_EVENTS,
            "ratio": round(ratio, 1),
            "scorer_runs": [round(value) for value in scorer],
            "per_message_runs": [round(value) for value in loop],
        },
        "scale_out": {
            "one_process_events_per_s": round(one_rate),
            "two_processes_events_per_s": round(two_rate),
            "speed_up": round(two_rate / one_rate, 2),
            "redis_cores_one_process": round(statistics.median(share for _, share in one), 2),
            "redis_cores_two_processes": round(statistics.median(share for _, share in two), 2),
            "one_process_runs": [round(rate) for rate, _ in one],
            "two_processes_runs": [round(rate) for rate, _ in two],
        },
        "latency": latency,
        "load_average_before": load_before,
        "load_average_after": [round(value, 2) for value in os.getloadavg()],
    }


def report(result: dict) -> tuple[str, bool]:
    """One line per figure; the goals: the issue's (events/s, ratio to the per-message loop, p99 at half rate)."""
    throughput, scale, latency = result["throughput"], result["scale_out"], result["latency"]
    ok = all(check["ok"] for check in result["checks"])
    lines = [
        f"streaming (median of {result['repeats']}, {result['events']} events, batches of {result['batch_size']}):",
        f"  scorer {throughput['scorer_events_per_s']} events/s (goal >= {GOAL_EVENTS_PER_S}), per-message loop "
        f"{throughput['per_message_events_per_s']} events/s: {throughput['ratio']}x (goal >= {GOAL_RATIO}x)",
        f"  processes: 1 -> {scale['one_process_events_per_s']} events/s, 2 -> "
        f"{scale['two_processes_events_per_s']} events/s ({scale['speed_up']}x on {result['cpus']} cores; Redis "
        f"busy {scale['redis_cores_one_process']} / {scale['redis_cores_two_processes']} of a core)",
        f"  latency at {latency['rate_per_s']} events/s: p50 {latency['p50_ms']} ms, p99 {latency['p99_ms']} ms "
        f"(goal <= {latency['goal_p99_ms']} ms), {latency['scored']} of {latency['events']} scored",
        f"  load average {result['load_average_before']}: {'ok' if ok else 'MISSED'}",
    ]
    return "\n".join(lines), ok
