"""The stream scorer on the machine's Redis and a real (SQLite) MLflow registry: what it writes per event, the
dead letters, idempotence when two consumers score one event, hot reload on an alias move, a champion the trust
rules refuse. The process-level faults (kill -9, SIGTERM, a Redis restart) are in test_stream_faults.py."""

from __future__ import annotations

import json
import math
import threading
import time

import pytest

from mlops_dev.shop_model import shop_frame
from mlops_ops.serving import ServingConfig
from mlops_ops.streaming.redis_streams import Record, RedisStreams
from mlops_ops.streaming.scorer import StreamConfig, StreamScorer
from tests.integration.feature_support import require_redis
from tests.stream_support import (
    MLFLOW_CONN_ID,
    MODEL,
    event_data,
    registered_champion,
    stream_names,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    require_redis()
    with registered_champion(tmp_path_factory.mktemp("stream")) as registry:
        yield registry


@pytest.fixture
def names(redis_client):
    names = stream_names()
    yield names
    redis_client.delete(*names.values())


def _config(names: dict[str, str], **settings) -> StreamConfig:
    serving = ServingConfig(model_name=MODEL, mlflow_conn_id=MLFLOW_CONN_ID, poll_seconds=0.2)
    return StreamConfig(
        serving=serving,
        stream=names["stream"],
        group="scorers",
        consumer=settings.pop("consumer", "c1"),
        output=names["output"],
        dead_letter=names["dead_letter"],
        **settings,
    )


def _produce(client, stream: str, frame, count: int, start: int = 0) -> list[str]:
    ids = []
    pipe = client.pipeline(transaction=False)
    for index in range(start, start + count):
        pipe.xadd(stream, {"data": json.dumps(event_data(frame, index)), "event_id": f"visit-{index}"})
    for entry in pipe.execute():
        ids.append(entry.decode())
    return ids


def _records(client, stream: str) -> list[dict[str, str]]:
    return [
        {key.decode(): value.decode() for key, value in fields.items()}
        for _, fields in client.xrange(stream, "-", "+")
    ]


def test_each_event_gets_one_record_with_the_champions_prediction(registry, redis_client, names):
    frame = shop_frame(300, seed=11)
    _produce(redis_client, names["stream"], frame, 300)
    scorer = StreamScorer(_config(names, batch_size=128))
    stats = scorer.run(idle_exit_s=0.5)

    records = _records(redis_client, names["output"])
    assert stats.scored == 300 and stats.dead_letters == 0
    assert stats.batches == 3  # 128 + 128 + 44
    assert [record["event_id"] for record in records] == [f"visit-{index}" for index in range(300)]
    for index in (0, 57, 299):
        record = records[index]
        result = json.loads(record["result"])
        expected = registry.probability("1", event_data(frame, index))
        assert math.isclose(result["probability"], expected, rel_tol=1e-9, abs_tol=1e-12)
        assert result["prediction"] == int(expected >= 0.5)
        assert record["model_name"] == MODEL and record["model_version"] == "1" and record["task"] == "binary"
        assert int(record["scored_at"]) >= int(record["event_time"])
    backlog = scorer.source.backlog()
    assert backlog.pending == 0 and backlog.lag == 0
    assert redis_client.xlen(names["dead_letter"]) == 0


@pytest.mark.parametrize(
    "fields, kind, named",
    [
        ({"data": json.dumps({"colour": "red", "width": 3.0, "rooms": 2.0})}, "invalid", "renovated"),
        (
            {
                "data": json.dumps(
                    {"colour": "red", "width": "wide-secret-value", "rooms": 2.0, "renovated": 1.0}
                )
            },
            "invalid",
            "width",
        ),
        ({"data": '{"colour": "red", "width": NaN, "rooms": 2.0, "renovated": 0.0}'}, "invalid", "width"),
        ({"data": "{not json"}, "not_json", "JSON"),
        ({"data": json.dumps([1, 2, 3])}, "invalid", "object"),
        ({"payload": "{}"}, "invalid", "'data'"),
        ({"data": json.dumps({"colour": "red"}), "event_time": "yesterday-ish"}, "invalid", "event_time"),
        ({"data": json.dumps({"colour": "x" * 70_000})}, "too_large", "limit"),
    ],
    ids=["missing", "mistyped", "nan", "not-json", "not-object", "no-data", "bad-time", "oversized"],
)
def test_a_bad_event_is_dead_lettered_with_its_reason_and_the_stream_flows_on(
    registry, redis_client, names, fields, kind, named
):
    frame = shop_frame(20, seed=12)
    _produce(redis_client, names["stream"], frame, 10)
    bad = redis_client.xadd(names["stream"], fields).decode()
    _produce(redis_client, names["stream"], frame, 10, start=10)

    stats = StreamScorer(_config(names)).run(idle_exit_s=0.5)

    assert stats.scored == 20 and stats.dead_letters == 1
    [dead] = _records(redis_client, names["dead_letter"])
    assert dead["entry_id"] == bad and dead["kind"] == kind and named in dead["reason"]
    assert "wide-secret-value" not in dead["reason"] and "xxxx" not in dead["reason"]
    assert len(dead["reason"]) <= 500
    # The original is kept for a replay once fixed, except an oversized one.
    assert ("original" in dead) == (kind != "too_large")
    assert len(_records(redis_client, names["output"])) == 20
    assert redis_client.xpending(names["stream"], "scorers")["pending"] == 0


def test_an_event_scored_by_two_consumers_is_written_once(registry, redis_client, names):
    """A consumer that hangs past claim_idle_ms has its events claimed and scored by another; when it wakes and
    commits, the records already written are not written again."""
    frame = shop_frame(50, seed=13)
    _produce(redis_client, names["stream"], frame, 50)
    slow = RedisStreams(
        "redis://127.0.0.1:6379/0", names["stream"], "scorers", "slow", names["output"], names["dead_letter"]
    )
    entries = slow.read(50, 0)  # the slow consumer holds all 50 and then hangs
    assert len(entries) == 50
    time.sleep(0.05)
    scorer = StreamScorer(_config(names, consumer="fast", claim_idle_ms=10))
    stats = scorer.run(idle_exit_s=0.5)
    assert stats.scored == 50

    # The slow one wakes up and commits the same 50 events (records of its own).
    late = [Record("o", entry_id, {"event_id": f"late-{entry_id}"}) for entry_id, _ in entries]
    assert slow.commit(late) == 0
    records = _records(redis_client, names["output"])
    assert len(records) == 50 and not any(record["event_id"].startswith("late-") for record in records)
    # A retried commit (the reply lost with the connection) writes nothing either.
    assert slow.commit(late) == 0


def test_an_alias_move_is_picked_up_between_batches_and_each_record_names_its_version(
    registry, redis_client, names
):
    frame = shop_frame(4000, seed=14)
    scorer = StreamScorer(_config(names, batch_size=50))
    runner = threading.Thread(target=scorer.run, kwargs={"idle_exit_s": 3.0})
    _produce(redis_client, names["stream"], frame, 1000)
    runner.start()
    try:
        deadline = time.monotonic() + 60
        while redis_client.xlen(names["output"]) < 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        version = registry.register(max_iter=30, seed=1)
        while scorer.slot.current.pinned.version != version and time.monotonic() < deadline:
            time.sleep(0.05)
        assert scorer.slot.current.pinned.version == version
        _produce(redis_client, names["stream"], frame, 1000, start=1000)
    finally:
        runner.join(timeout=120)
        scorer.stop()
    registry.promote("1")  # back to v1 for the other tests

    records = _records(redis_client, names["output"])
    assert len(records) == 2000
    versions = [record["model_version"] for record in records]
    switch = versions.index(version)
    # Before the switch v1 only, after it the new version only: the swap never splits the stream's order.
    assert set(versions[:switch]) == {"1"} and set(versions[switch:]) == {version}
    assert switch >= 200
    late = records[-1]
    expected = registry.probability(version, event_data(frame, 1999))
    assert math.isclose(json.loads(late["result"])["probability"], expected, rel_tol=1e-9)


def test_a_champion_the_trust_rules_refuse_leaves_the_previous_one_scoring(registry, redis_client, names):
    frame = shop_frame(200, seed=15)
    scorer = StreamScorer(_config(names))
    assert scorer.slot.current.pinned.version == "1"
    tampered = registry.register(max_iter=20, seed=2, tamper=True)
    try:
        scorer.slot.refresh()
        assert scorer.slot.current.pinned.version == "1"
        assert (
            "sha256" in (scorer.slot.last_error or "")
            or "signature" in (scorer.slot.last_error or "").lower()
        )
        _produce(redis_client, names["stream"], frame, 200)
        stats = scorer.run(idle_exit_s=0.5)
    finally:
        registry.promote("1")
    assert stats.versions == {"1": 200}
    assert {record["model_version"] for record in _records(redis_client, names["output"])} == {"1"}
    assert tampered != "1"


def test_metrics_count_events_latency_and_backlog(registry, redis_client, names):
    frame = shop_frame(100, seed=16)
    _produce(redis_client, names["stream"], frame, 90)
    redis_client.xadd(names["stream"], {"data": "[]"})
    scorer = StreamScorer(_config(names))
    scorer.run(idle_exit_s=1.5)
    labels = {"model": MODEL, "stream": names["stream"], "group": "scorers"}

    def sample(name: str, **more: str) -> float | None:
        return scorer.metrics.registry.get_sample_value(name, {**labels, **more})

    assert sample("mlops_stream_events_total", outcome="scored") == 90
    assert sample("mlops_stream_events_total", outcome="dead_letter") == 1
    assert sample("mlops_stream_end_to_end_seconds_count") == 90
    assert sample("mlops_stream_batch_seconds_count") == 1
    assert sample("mlops_stream_pending") == 0
    assert sample("mlops_stream_lag") == 0
    assert sample("mlops_stream_model_version") == 1


def test_a_feature_service_not_applied_yet_makes_events_wait_not_the_scorer_crash(
    registry, redis_client, names, tmp_path, monkeypatch, caplog
):
    """A scorer started before the feature repository is applied (the features DAG registers it) waits, naming
    why, and leaves the events in the stream; it does not exit."""
    monkeypatch.setenv("MLOPS_FEATURE_ROOT", str(tmp_path / "features"))
    monkeypatch.setenv(
        "AIRFLOW_CONN_FEAST_UNAPPLIED",
        json.dumps(
            {"conn_type": "feast", "host": "include/flights/feature_repo", "extra": {"project": "unapplied"}}
        ),
    )
    serving = ServingConfig(
        model_name=MODEL,
        mlflow_conn_id=MLFLOW_CONN_ID,
        poll_seconds=0.2,
        feature_service="flight_delay_features",
        feast_conn_id="feast_unapplied",
        # A feature service needs a request schema naming its join keys (the events wait before any is parsed).
        request_schema="include.flights.serving:FlightRequest",
    )
    config = StreamConfig(
        serving=serving, stream=names["stream"], output=names["output"], dead_letter=names["dead_letter"]
    )
    _produce(redis_client, names["stream"], shop_frame(5, seed=1), 5)
    scorer = StreamScorer(config)
    with caplog.at_level("WARNING", logger="mlops_ops.streaming.scorer"):
        stopper = threading.Timer(1.5, scorer.stop)
        stopper.start()
        stats = scorer.run()
    assert stats.batches == 0 and stats.scored == 0
    assert redis_client.xlen(names["output"]) == 0 and redis_client.xlen(names["stream"]) == 5
    warnings = [record.getMessage() for record in caplog.records if "events wait" in record.getMessage()]
    assert len(warnings) == 1 and "flight_delay_features" in warnings[0]
    with pytest.raises(RuntimeError, match="cannot serve the model's features yet"):
        _ = scorer.predictor
