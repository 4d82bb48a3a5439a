"""The batch_score DAG end to end (``dag.test``): a champion from the real retrain and promote DAGs, real
flights landed by ingest_flights, predictions published locally and on S3 (moto's server on 127.0.0.1)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.e2e.dag_runs import champion_world, run_dag, task_states

pytestmark = pytest.mark.e2e

MODEL = "flight_delay"
KEYS = ["year", "month", "day", "carrier", "flight", "origin"]


def _flights_in(start: str, end: str) -> int:
    from include.flights.data import flights

    times = flights()["time_hour"]
    return int(((times >= start) & (times < end)).sum())


@pytest.fixture(scope="module")
def world(airflow_db, tmp_path_factory):
    """Its own data root and registry: January-February landed, trained, promoted (policy auto); March landed."""
    home = tmp_path_factory.mktemp("batch_score")
    with champion_world(
        home, reason="batch scoring e2e", train_through_month=2, land_through_month=3
    ) as world:
        yield world


def _partition(world, key: str) -> Path:
    return world["predictions"] / f"model={MODEL}" / f"interval={key}" / "predictions.parquet"


def test_scores_several_intervals_each_into_its_own_partition(world):
    import pyarrow.dataset as ds

    from mlops_dev.demo import task_result

    days = [("2013-03-01", "2013-03-02"), ("2013-03-02", "2013-03-03"), ("2013-02-28", "2013-03-01")]
    for start, end in days:
        run = run_dag("batch_score", run_conf={"interval_start": start, "interval_end": end})
        assert str(run.state) == "success", task_states(run)
        published = task_result(run, "publish")
        pinned = task_result(run, "pin_champion")
        json.dumps([published, pinned])
        assert pinned["version"] == world["champion"] and pinned["artifact_sha256"].startswith("sha256:")
        assert published["status"] == "published" and published["shards"] == 2
        assert published["rows"] == _flights_in(start, end) > 500
        assert published["model"] == pinned

    table = ds.dataset(world["predictions"], format="parquet", partitioning="hive").to_table().to_pandas()
    assert len(table) == sum(_flights_in(*day) for day in days)
    assert not table.duplicated(KEYS).any()
    assert set(table["model_version"]) == {int(world["champion"])}
    assert table["probability"].between(0, 1).all() and table["prediction"].isin([0, 1]).all()
    assert sorted(table["interval"].unique()) == [
        "20130228T0000Z_20130301T0000Z",
        "20130301T0000Z_20130302T0000Z",
        "20130302T0000Z_20130303T0000Z",
    ]
    # Nothing but the partitions is left in the output root (staging emptied).
    leftovers = [
        p for p in world["predictions"].rglob("*") if p.is_file() and p.name != "predictions.parquet"
    ]
    assert leftovers == []


def test_rerunning_an_interval_replaces_it_with_the_same_rows(world):
    import pandas as pd

    conf = {"interval_start": "2013-03-05", "interval_end": "2013-03-06"}
    assert str(run_dag("batch_score", run_conf=conf).state) == "success"
    first = pd.read_parquet(_partition(world, "20130305T0000Z_20130306T0000Z"))
    assert str(run_dag("batch_score", run_conf=conf).state) == "success"
    second = pd.read_parquet(_partition(world, "20130305T0000Z_20130306T0000Z"))
    assert len(second) == len(first) == _flights_in("2013-03-05", "2013-03-06")
    columns = [*KEYS, "probability", "prediction", "model_version"]
    pd.testing.assert_frame_equal(
        first[columns].sort_values(KEYS).reset_index(drop=True),
        second[columns].sort_values(KEYS).reset_index(drop=True),
    )
    assert (second["scored_at"] > first["scored_at"]).all()  # really written again, not left in place


def test_a_scheduled_run_scores_its_data_interval(world):
    run = run_dag("batch_score", logical_date=datetime(2013, 3, 8, tzinfo=UTC))
    assert str(run.state) == "success", task_states(run)
    partition = _partition(world, "20130307T0000Z_20130308T0000Z")
    import pyarrow.parquet as pq

    assert pq.read_metadata(partition).num_rows == _flights_in("2013-03-07", "2013-03-08")


def test_an_interval_without_flights_is_an_explicit_empty_result(world):
    from mlops_dev.demo import task_result

    run = run_dag("batch_score", run_conf={"interval_start": "2014-01-01", "interval_end": "2014-01-02"})
    assert str(run.state) == "success", task_states(run)
    assert task_result(run, "plan_interval")["files"] == []
    assert task_result(run, "validate_input")["files"] == 0
    published = task_result(run, "publish")
    assert published["status"] == "empty" and published["rows"] == 0 and published["uri"] is None
    assert not (world["predictions"] / f"model={MODEL}" / "interval=20140101T0000Z_20140102T0000Z").exists()


def test_bad_landed_data_stops_at_validation_and_nothing_is_scored(world):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from include.flights.data import flights

    bad = world["home"] / "data" / "flights" / "month=2013-04" / "part-0.parquet"
    bad.parent.mkdir(parents=True)
    april = flights(4).head(2000).drop(columns=["sched_dep_time"])
    pq.write_table(pa.Table.from_pandas(april, preserve_index=False), bad)
    try:
        run = run_dag("batch_score", run_conf={"interval_start": "2013-04-01", "interval_end": "2013-04-02"})
        states = task_states(run)
        assert str(run.state) == "failed"
        assert states["validate_input[-1]"] == "failed"
        assert (
            states["score[0]"] in ("upstream_failed", "None") and states["publish[-1]"] == "upstream_failed"
        )
        assert not (
            world["predictions"] / f"model={MODEL}" / "interval=20130401T0000Z_20130402T0000Z"
        ).exists()
    finally:
        bad.unlink()
        bad.parent.rmdir()


@pytest.fixture
def s3(world, monkeypatch):
    """The landed flights copied to an S3 endpoint (moto's server on 127.0.0.1)."""
    from tests.moto_s3 import moto_s3

    with moto_s3(monkeypatch, "lake") as (_, client):
        for path in sorted((world["home"] / "data" / "flights").rglob("*.parquet")):
            client.upload_file(str(path), "lake", f"data/{path.relative_to(world['home'] / 'data')}")
        monkeypatch.setenv("MLOPS_DATA_ROOT", "s3://lake/data")
        yield client


def test_scores_from_and_to_s3_and_a_rerun_replaces_the_object(world, s3):
    import io

    import pandas as pd

    from mlops_dev.demo import task_result

    conf = {"interval_start": "2013-03-03", "interval_end": "2013-03-04"}
    key = f"data/predictions/model={MODEL}/interval=20130303T0000Z_20130304T0000Z/predictions.parquet"
    frames = []
    for _ in range(2):
        run = run_dag("batch_score", run_conf=conf)
        assert str(run.state) == "success", task_states(run)
        assert task_result(run, "publish")["uri"] == f"s3://lake/{key}"
        frames.append(pd.read_parquet(io.BytesIO(s3.get_object(Bucket="lake", Key=key)["Body"].read())))
    assert len(frames[0]) == len(frames[1]) == _flights_in(*conf.values())
    assert not frames[1].duplicated(KEYS).any()
    predictions = [
        o["Key"] for o in s3.list_objects_v2(Bucket="lake", Prefix="data/predictions/")["Contents"]
    ]
    assert predictions == [key]  # one object: no staging shards or temporary files left behind
