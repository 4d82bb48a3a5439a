"""Compaction on the machine's Redis: events scored by ``StreamScorer`` with a real (SQLite) registry, compacted
by ``CompactStreamOperator`` into the interval's prediction partition, which the performance check then measures
against the visits' labels as it measures a batch-scored interval."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from mlops_ops.assets import predictions_asset
from mlops_ops.core.errors import DataError
from mlops_ops.core.scoring import Interval, partition_uri, read_file_metadata
from mlops_ops.operators.streaming import CompactStreamOperator, StreamCompactionFailed
from mlops_ops.serving import ServingConfig
from mlops_ops.streaming.compaction import compact_interval
from mlops_ops.streaming.redis_streams import RedisOutputStream
from mlops_ops.streaming.scorer import StreamConfig, StreamScorer
from tests.integration.feature_support import require_redis
from tests.stream_support import MLFLOW_CONN_ID, MODEL, event_data, registered_champion, stream_names

pytestmark = pytest.mark.integration

VISITS = 240
REDIS_CONN_ID = "redis_streams_test"


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    require_redis()
    with registered_champion(tmp_path_factory.mktemp("compaction")) as registry:
        yield registry


@pytest.fixture
def names(redis_client, monkeypatch):
    names = stream_names()
    monkeypatch.setenv(f"AIRFLOW_CONN_{REDIS_CONN_ID.upper()}", "redis://127.0.0.1:6379/0")
    yield names
    redis_client.delete(*names.values())


def _interval() -> Interval:
    """Two hours around now: the events happen now and are scored at once, as in production."""
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
    return Interval(start, start + timedelta(hours=2))


def _send(client, names, frame, indexes, event_time_ms, *, event_id=None) -> None:
    pipe = client.pipeline(transaction=False)
    for index in indexes:
        pipe.xadd(
            names["stream"],
            {
                "data": json.dumps(event_data(frame, index)),
                "event_id": event_id or f"visit-{index}",
                "event_time": str(event_time_ms(index)),
                "keys": json.dumps({"visit_id": index}),
            },
        )
    pipe.execute()


def _score(names) -> None:
    serving = ServingConfig(model_name=MODEL, mlflow_conn_id=MLFLOW_CONN_ID, poll_seconds=0.2)
    config = StreamConfig(
        serving=serving,
        stream=names["stream"],
        output=names["output"],
        dead_letter=names["dead_letter"],
        key_columns=["visit_id"],
    )
    StreamScorer(config).run(idle_exit_s=0.5)


def _compact(context, names, interval, root, **settings):
    return CompactStreamOperator(
        task_id="compact",
        model_name=MODEL,
        interval_start=interval.start.isoformat(),
        interval_end=interval.end.isoformat(),
        key_columns=["visit_id"],
        output_stream=names["output"],
        output_root=str(root),
        redis_conn_id=REDIS_CONN_ID,
        outlets=[predictions_asset(MODEL)],
        **settings,
    ).execute(context)


def _context():
    return {"outlet_events": defaultdict(lambda: SimpleNamespace(extra=None))}


def test_streamed_interval_is_a_batch_partition_that_performance_measures(
    registry, redis_client, names, tmp_path
):
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from mlops_dev.shop_model import shop_frame, shop_spec
    from mlops_ops.core.performance import BusinessCosts, DecayRule, measure_interval

    frame = shop_frame(VISITS + 10, seed=7)
    interval = _interval()
    now_ms = int(time.time() * 1000)
    inside = range(VISITS)
    _send(redis_client, names, frame, inside, lambda index: now_ms - 1000 * index)
    # Outside the interval: before its start, and after its end (a producer's clock ahead).
    start_ms = int(interval.start.timestamp() * 1000)
    end_ms = int(interval.end.timestamp() * 1000)
    _send(redis_client, names, frame, [VISITS], lambda _: start_ms - 1)
    _send(redis_client, names, frame, [VISITS + 1], lambda _: end_ms)
    # The producer sends visit 5 again, as a new entry: one row downstream.
    _send(redis_client, names, frame, [5], lambda _: now_ms - 5000)
    _score(names)
    assert redis_client.xlen(names["output"]) == VISITS + 3

    context = _context()
    result = _compact(context, names, interval, tmp_path)
    uri = partition_uri(str(tmp_path), MODEL, interval)
    assert (result["status"], result["uri"], result["rows"]) == ("published", uri, VISITS)
    assert (result["records_read"], result["in_interval"], result["duplicates"]) == (
        VISITS + 3,
        VISITS + 1,
        1,
    )
    assert result["versions"] == {"1": VISITS}
    assert context["outlet_events"][predictions_asset(MODEL)].extra == {
        "model_name": MODEL,
        "model_version": "1",
        "interval": interval.to_dict(),
        "rows": VISITS,
        "uri": uri,
        "task": "binary",
        "classes": None,
    }

    partition = pd.read_parquet(uri)
    # Batch scoring's layout: keys, then the task's prediction columns, then the record columns.
    assert list(partition.columns) == [
        "visit_id",
        "event_id",
        "event_time",
        "prediction",
        "probability",
        "model_name",
        "model_version",
        "interval_start",
        "interval_end",
        "scored_at",
    ]
    assert sorted(partition["visit_id"]) == list(inside)
    assert partition["event_id"].is_unique
    expected = [registry.probability("1", event_data(frame, index)) for index in partition["visit_id"]]
    assert partition["probability"].tolist() == pytest.approx(expected, abs=1e-9)
    assert set(partition["prediction"]) <= {0, 1}
    metadata = read_file_metadata(uri)
    assert (metadata["writer"], metadata["model_version"], metadata["task"]) == (
        "stream-compaction",
        "1",
        "binary",
    )
    assert metadata["model_versions"] == {"1": VISITS}
    assert names["output"] in metadata["source"] and "@" not in metadata["source"]

    # Labels land as the visits' outcomes; the performance check reads the partition as a batch one.
    labels_file = tmp_path / "labels" / "visits.parquet"
    labels_file.parent.mkdir()
    labelled = frame.iloc[list(inside)].assign(
        visit_id=list(inside), visited_at=pd.Timestamp(interval.start) + pd.Timedelta(minutes=30)
    )
    labelled.to_parquet(labels_file)
    measured = measure_interval(
        predictions_uri=uri,
        labels_source=str(labels_file),
        interval=interval,
        model_name=MODEL,
        spec=shop_spec(),
        rule=DecayRule(min_metrics={"roc_auc": 0.5}),
        costs=BusinessCosts(missed_positive=5.0, false_alarm=1.0),
        key_columns=["visit_id"],
        time_column="visited_at",
        training_metrics_of=lambda version: {},
    )
    assert (measured.version, measured.measured.rows, measured.measured.labelled_rows) == (
        "1",
        VISITS,
        VISITS,
    )
    truth = labelled.set_index("visit_id").loc[partition["visit_id"], "bought"]
    assert measured.measured.metrics["roc_auc"] == pytest.approx(
        roc_auc_score(truth, partition["probability"])
    )


def test_rerun_keeps_every_row_and_adds_late_events_after_the_stream_is_trimmed(
    registry, redis_client, names, tmp_path
):
    import pandas as pd

    from mlops_dev.shop_model import shop_frame

    frame = shop_frame(60, seed=3)
    interval = _interval()
    now_ms = int(time.time() * 1000)
    _send(redis_client, names, frame, range(40), lambda index: now_ms - 1000 * index)
    _score(names)
    first = _compact(_context(), names, interval, tmp_path)
    uri = first["uri"]
    before = pd.read_parquet(uri)
    written = (tmp_path / uri.removeprefix(str(tmp_path) + "/")).stat().st_mtime_ns

    again = _compact(_context(), names, interval, tmp_path)
    assert (again["status"], again["rows"], again["kept_rows"], again["duplicates"]) == (
        "unchanged",
        40,
        40,
        40,
    )
    assert (tmp_path / uri.removeprefix(str(tmp_path) + "/")).stat().st_mtime_ns == written

    # The stream is trimmed (its records are gone), then two late events arrive.
    redis_client.xtrim(names["output"], maxlen=0)
    _send(redis_client, names, frame, [40, 41], lambda index: now_ms - 1000 * index)
    _score(names)
    late = _compact(_context(), names, interval, tmp_path)
    assert (late["status"], late["rows"], late["kept_rows"], late["records_read"]) == ("published", 42, 40, 2)
    after = pd.read_parquet(uri)
    kept = after[after["visit_id"] < 40].sort_values("visit_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, before.sort_values("visit_id").reset_index(drop=True))
    assert sorted(after["visit_id"]) == list(range(42))


def test_a_replay_of_old_events_is_read_to_the_streams_end(registry, redis_client, names, tmp_path):
    from mlops_dev.shop_model import shop_frame

    frame = shop_frame(30, seed=5)
    day = Interval(datetime(2013, 7, 1, tzinfo=UTC), datetime(2013, 7, 2, tzinfo=UTC))
    first_ms = int(day.start.timestamp() * 1000)
    _send(redis_client, names, frame, range(30), lambda index: first_ms + 60_000 * index)
    _score(names)
    # Within the default lateness nothing of 2013 was written: the records are read by when they were written.
    assert _compact(_context(), names, day, tmp_path)["status"] == "empty"
    replayed = _compact(_context(), names, day, tmp_path, max_lateness=None)
    assert (replayed["status"], replayed["rows"]) == ("published", 30)


def test_refusals_name_the_problem_and_write_nothing(registry, redis_client, names, tmp_path):
    import pandas as pd

    from mlops_dev.shop_model import shop_frame

    frame = shop_frame(10, seed=9)
    interval = _interval()
    now_ms = int(time.time() * 1000)
    _send(redis_client, names, frame, range(10), lambda index: now_ms - index)
    _score(names)
    source = RedisOutputStream(names["output"], "redis://127.0.0.1:6379/0")

    # The scorer wrote visit_id; the deployment asks for another key.
    with pytest.raises(DataError, match=r"lacks key column\(s\) \['order_id'\].*--key-columns order_id"):
        compact_interval(
            source, model_name=MODEL, interval=interval, output_root=str(tmp_path), key_columns=["order_id"]
        )
    uri = partition_uri(str(tmp_path), MODEL, interval)
    assert not (tmp_path / uri.removeprefix(str(tmp_path) + "/")).exists()

    # A partition batch scoring published is never replaced.
    batch = tmp_path / uri.removeprefix(str(tmp_path) + "/")
    batch.parent.mkdir(parents=True)
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlops_ops.core.scoring import METADATA_KEY

    table = pa.table({"visit_id": [1]}).replace_schema_metadata({METADATA_KEY: b'{"model_version": "1"}'})
    pq.write_table(table, batch)
    content = batch.read_bytes()
    with pytest.raises(StreamCompactionFailed, match="published by batch scoring.*never replaces it"):
        _compact(_context(), names, interval, tmp_path)
    assert batch.read_bytes() == content
    assert pd.read_parquet(batch)["visit_id"].tolist() == [1]
