"""The stream_compaction DAG (``dag.test``) on the machine's Redis: a day of flight_delay's output records as the
scorers write them (with a replayed event and a record of the next day) becomes the day's partition, and the
predictions asset's event names the day, as batch scoring's does; a rerun leaves the partition as it was."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.dag_runs import run_dag, task_states
from tests.integration.feature_support import require_redis

pytestmark = pytest.mark.e2e

MODEL = "flight_delay"
DAY = datetime(2013, 7, 2, tzinfo=UTC)
FLIGHTS = 50


def _predictions_events() -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        asset = session.query(AssetModel).filter_by(name=f"predictions.{MODEL}").one_or_none()
        if asset is None:
            return []
        return [dict(event.extra) for event in session.query(AssetEvent).filter_by(asset_id=asset.id)]


def _record(flight: int, departure: datetime, probability: float) -> dict[str, str]:
    keys = {
        "year": 2013,
        "month": departure.month,
        "day": departure.day,
        "carrier": "UA",
        "flight": flight,
        "origin": "EWR",
    }
    return {
        "event_id": f"UA{flight}-{departure:%Y%m%d}",
        "entry_id": "0-0",
        "event_time": str(int(departure.timestamp() * 1000)),
        "scored_at": str(int(departure.timestamp() * 1000) + 40),
        "model_name": MODEL,
        "model_version": "4",
        "task": "binary",
        "result": json.dumps({"prediction": int(probability >= 0.5), "probability": probability}),
        "keys": json.dumps(keys),
    }


@pytest.fixture
def stream(airflow_db, tmp_path, monkeypatch):
    import redis

    require_redis()
    name = f"{{test-{tmp_path.name[-8:]}}}:predictions"
    client = redis.Redis(host="127.0.0.1", port=6379)
    monkeypatch.setenv("AIRFLOW_CONN_MLOPS_STREAMS", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("MLOPS_STREAM_OUTPUT", name)
    monkeypatch.setenv("MLOPS_DATA_ROOT", str(tmp_path / "data"))
    yield client, name
    client.delete(name)
    client.close()


def test_a_streamed_day_becomes_its_partition_and_announces_it(stream, tmp_path):
    import pandas as pd

    client, name = stream
    for flight in range(FLIGHTS):
        client.xadd(name, _record(flight, DAY + timedelta(minutes=20 * flight), (flight % 10) / 10))
    client.xadd(name, _record(3, DAY + timedelta(minutes=60), 0.95))  # flight 3 sent again: the first counts
    client.xadd(name, _record(999, DAY + timedelta(days=1, minutes=5), 0.9))  # the next day's
    events_before = len(_predictions_events())

    interval = {"interval_start": "2013-07-02", "interval_end": "2013-07-03"}
    run = run_dag("stream_compaction", run_conf=interval)
    assert str(run.state) == "success", task_states(run)

    partition = (
        tmp_path / "data" / "predictions" / f"model={MODEL}" / "interval=20130702T0000Z_20130703T0000Z"
    )
    frame = pd.read_parquet(partition / "predictions.parquet")
    assert sorted(frame["flight"]) == list(range(FLIGHTS))
    assert frame.loc[frame["flight"] == 3, "probability"].tolist() == [0.3]
    assert set(frame["model_version"]) == {4}
    events = _predictions_events()[events_before:]
    assert [(event["interval"], event["rows"], event["model_version"]) for event in events] == [
        ({"start": "2013-07-02T00:00:00+00:00", "end": "2013-07-03T00:00:00+00:00"}, FLIGHTS, "4")
    ]

    written = (partition / "predictions.parquet").stat().st_mtime_ns
    again = run_dag("stream_compaction", run_conf=interval)
    assert str(again.state) == "success", task_states(again)
    assert (partition / "predictions.parquet").stat().st_mtime_ns == written
