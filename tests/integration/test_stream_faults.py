"""The stream scorer's process-level faults, with ``mlops-ops stream`` processes on a real Redis and a real (SQLite)
MLflow registry: consumers killed with SIGKILL in the middle of the load, several times (nothing lost, nothing
written twice, the recovery time printed); SIGTERM (the batch in hand committed, nothing left pending, exit 0);
Redis restarted under load (the scorer waits, naming the server in one line per retry, and catches up)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from mlops_dev.shop_model import shop_frame
from tests.airflow_rest import free_port
from tests.integration.feature_support import require_redis
from tests.stream_support import (
    event_data,
    process_environment,
    registered_champion,
    scorer_command,
    stream_names,
)

pytestmark = pytest.mark.integration

GROUP = "scorers"
#: a dead consumer's events are claimed by the others after this long idle
CLAIM_IDLE_MS = 1000
#: the longest a scorer process takes to import, load the champion and read its first batch (2 shared cores)
START_SECONDS = 120


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    require_redis()
    with registered_champion(tmp_path_factory.mktemp("stream-faults")) as registry:
        yield registry


@pytest.fixture(scope="module")
def frame():
    return shop_frame(500, seed=11)


class Scorers:
    """``mlops-ops stream`` processes, their logs in ``folder``; every one still running is killed at the end."""

    def __init__(self, registry, names: dict[str, str], folder: Path, port: int = 6379) -> None:
        self.registry, self.names, self.folder, self.port = registry, names, folder, port
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, consumer: str, *extra: str) -> subprocess.Popen:
        log = open(self.folder / f"{consumer}.log", "wb")  # noqa: SIM115 (the process holds it)
        command = scorer_command(
            self.names, GROUP, consumer, "--claim-idle-ms", str(CLAIM_IDLE_MS), *extra, port=self.port
        )
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=process_environment(self.registry)
        )
        log.close()
        self.processes[consumer] = process
        return process

    def log(self, consumer: str) -> str:
        return (self.folder / f"{consumer}.log").read_text(errors="replace")

    def close(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)


@pytest.fixture
def names():
    import redis

    names = stream_names()
    yield names
    client = redis.Redis(host="127.0.0.1", port=6379)
    client.delete(*names.values())
    client.close()


def _produce(client, stream: str, frame, start: int, count: int) -> None:
    pipe = client.pipeline(transaction=False)
    for index in range(start, start + count):
        pipe.xadd(
            stream, {"data": json.dumps(event_data(frame, index % len(frame))), "event_id": f"e-{index}"}
        )
    pipe.execute()


def _event_ids(client, stream: str) -> list[str]:
    return [fields[b"event_id"].decode() for _, fields in client.xrange(stream, "-", "+")]


def _pending(client, stream: str, consumer: str | None = None) -> int:
    """Events read and not yet committed: the group's, or one consumer's (0 before the group exists)."""

    if not client.exists(stream) or not any(g["name"].decode() == GROUP for g in client.xinfo_groups(stream)):
        return 0
    if consumer is None:
        return int(client.xpending(stream, GROUP)["pending"])
    return len(client.xpending_range(stream, GROUP, "-", "+", 100_000, consumername=consumer))


def _wait(condition, seconds: float, what: str, scorers: Scorers | None = None) -> float:
    """Seconds until ``condition()`` holds; fails naming ``what`` (and a scorer's log tail) after ``seconds``."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if condition():
            return time.monotonic() - started
        time.sleep(0.05)
    logs = "" if scorers is None else "\n".join(scorers.log(c)[-1500:] for c in scorers.processes)
    pytest.fail(f"{what} not within {seconds:.0f} s\n{logs}")


def test_consumers_killed_mid_load_lose_nothing_and_write_each_event_once(registry, frame, names, tmp_path):
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379)
    scorers = Scorers(registry, names, tmp_path)
    total = 0
    stop_producing = threading.Event()

    def produce() -> None:  # a steady load (about 2,500 events/s) while consumers start and die; bounded
        nonlocal total
        producer = redis.Redis(host="127.0.0.1", port=6379)
        while not stop_producing.is_set() and total < 400_000:
            _produce(producer, names["stream"], frame, total, 50)
            total += 50
            time.sleep(0.02)
        producer.close()

    producer = threading.Thread(target=produce, daemon=True)
    try:
        scorers.start("steady", "--batch-size", "200")
        victim = scorers.start("victim-0", "--batch-size", "200")
        producer.start()
        recoveries, left_pending = [], []
        for round_ in range(3):
            # Wait until this victim is scoring, then kill it the moment it holds events read and not yet
            # committed (its pending list).
            consumer = f"victim-{round_}"
            _wait(
                lambda consumer=consumer: _pending(client, names["stream"], consumer) > 0,
                START_SECONDS,
                f"round {round_}: {consumer} scoring under load",
                scorers,
            )
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=30)
            killed_at = time.monotonic()
            left_pending.append(_pending(client, names["stream"], consumer))
            if round_ < 2:
                victim = scorers.start(f"victim-{round_ + 1}", "--batch-size", "200")
            # The dead consumer's events are claimed by a live one once idle, and committed.
            _wait(
                lambda consumer=consumer: _pending(client, names["stream"], consumer) == 0,
                60,
                f"the events pending at the killed {consumer} claimed",
                scorers,
            )
            recoveries.append(time.monotonic() - killed_at)
        stop_producing.set()
        producer.join(timeout=30)
        produced = total

        _wait(
            lambda: (
                client.xlen(names["output"]) + client.xlen(names["dead_letter"]) >= produced
                and _pending(client, names["stream"]) == 0
            ),
            180,
            f"all {produced} events scored",
            scorers,
        )
        written_ids = _event_ids(client, names["output"])
        print(
            f"\n{produced} events, 3 consumers killed mid-load, events pending at each kill {left_pending}, "
            f"recovered (claimed and committed by another consumer) in {[round(s, 2) for s in recoveries]} s"
        )
        assert client.xlen(names["dead_letter"]) == 0
        assert len(written_ids) == len(set(written_ids)), "an event was written twice"
        assert set(written_ids) == {f"e-{index}" for index in range(produced)}, "an event was lost"
        assert sum(left_pending) > 0, "no kill caught a consumer with events in hand: the test proved nothing"
    finally:
        stop_producing.set()
        scorers.close()
        client.close()


def test_sigterm_commits_the_batch_in_hand_and_exits_cleanly(registry, frame, names, tmp_path):
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379)
    scorers = Scorers(registry, names, tmp_path)
    try:
        process = scorers.start("only", "--batch-size", "100")
        _produce(client, names["stream"], frame, 0, 500)
        _wait(lambda: client.xlen(names["output"]) >= 500, START_SECONDS, "the first events scored", scorers)
        _produce(client, names["stream"], frame, 500, 20_000)
        time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, scorers.log("only")[-2000:]

        assert _pending(client, names["stream"]) == 0, "the batch in hand was left pending"
        group = next(g for g in client.xinfo_groups(names["stream"]) if g["name"].decode() == GROUP)
        written = client.xlen(names["output"])
        # Every event the group delivered was written; the rest wait, unread, for the next consumer.
        assert written == int(group["entries-read"]) and 500 <= written < 20_500
        assert int(group["lag"]) == 20_500 - written
        assert len(set(_event_ids(client, names["output"]))) == written
    finally:
        scorers.close()
        client.close()


def _redis_server(port: int, folder: Path) -> subprocess.Popen:
    """A Redis of the test's own on ``port``, keeping its data in ``folder`` (append-only file), in the
    foreground so the test owns the process."""
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(folder),
            "--appendonly",
            "yes",
            "--save",
            "",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    _wait(lambda: _answers(client), 30, f"redis-server on port {port}")
    client.close()
    return process


def _answers(client) -> bool:
    import redis

    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def test_the_scorer_reconnects_when_redis_restarts_under_load(registry, frame, tmp_path):
    import redis

    if shutil.which("redis-server") is None:
        message = "redis-server is not installed (apt-get install redis-server); CI runs this test"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    port = free_port()
    data = tmp_path / "redis"
    data.mkdir()
    server = _redis_server(port, data)
    names = stream_names()
    scorers = Scorers(registry, names, tmp_path, port=port)
    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        scorers.start("only", "--batch-size", "200")
        _produce(client, names["stream"], frame, 0, 3000)
        _wait(lambda: client.xlen(names["output"]) >= 3000, START_SECONDS, "the first events scored", scorers)
        _produce(client, names["stream"], frame, 3000, 3000)
        client.shutdown(save=False)  # the append-only file keeps what was written
        server.wait(timeout=30)
        time.sleep(3)  # the scorer finds no server and retries with backoff
        server = _redis_server(port, data)
        _produce(client, names["stream"], frame, 6000, 3000)

        _wait(
            lambda: client.xlen(names["output"]) >= 9000 and _pending(client, names["stream"]) == 0,
            120,
            "all events scored after the restart",
            scorers,
        )
        written_ids = _event_ids(client, names["output"])
        assert len(written_ids) == len(set(written_ids)) == 9000
        waiting = [line for line in scorers.log("only").splitlines() if "is unavailable" in line]
        assert waiting, scorers.log("only")[-2000:]
        assert f"redis://127.0.0.1:{port}/0" in waiting[0] and "retrying in" in waiting[0]
        print(f"\nRedis down ~3 s: {len(waiting)} retry lines, e.g. {waiting[0][-160:]!r}")
    finally:
        scorers.close()
        client.close()
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=30)
