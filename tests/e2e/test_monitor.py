"""The monitor DAG end to end (``dag.test``): a champion trained by the real retrain DAG on January-February
(with the feature store's weather, aircraft and rolling delays), promoted; July landed and July 1 scored; the week
up to it drifts for real (summer weather and delays, seasonal routes), a retrain is requested once (cool-down)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.dag_runs import champion_world, run_dag, task_states

pytestmark = pytest.mark.e2e

MODEL = "flight_delay"
DAGS = Path(__file__).resolve().parents[2] / "dags"
JULY_1 = {"interval_start": "2013-07-01", "interval_end": "2013-07-02"}
WINDOW = ("2013-06-25", "2013-07-02")  # the drift window: the 7 days up to the scored interval's end


def _request_events() -> list:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        asset = session.query(AssetModel).filter_by(name=f"retrain_request.{MODEL}").one_or_none()
        if asset is None:
            return []
        return [
            (event.timestamp, dict(event.extra))
            for event in session.query(AssetEvent).filter_by(asset_id=asset.id).order_by(AssetEvent.id)
        ]


@pytest.fixture(scope="module")
def world(airflow_db, tmp_path_factory):
    home = tmp_path_factory.mktemp("monitor")
    with champion_world(
        home, reason="monitor e2e", train_through_month=2, land_through_month=7, shards=1
    ) as world:
        for start, end in (("2013-07-01", "2013-07-02"), ("2013-02-26", "2013-02-27")):
            scored = run_dag("batch_score", run_conf={"interval_start": start, "interval_end": end})
            assert str(scored.state) == "success", task_states(scored)
        from mlops_ops.hooks.mlflow import MlflowHook

        yield {"home": home, "hook": MlflowHook(), "champion": world["champion"]}


def _expected_verdicts(world, version: str):
    """The engine on the same windows, read here apart from the operator: the training set the version
    recorded, and the landed week joined with the feature service."""
    import pandas as pd

    from include.flights.features import prepare_features_with_store
    from mlops_ops.core.drift import detect_drift
    from mlops_ops.core.modelspec import ModelSpec
    from mlops_ops.hooks.feast import FeastHook

    spec = ModelSpec.load(DAGS.parent / "include" / "flights" / "model_spec.yaml")
    client = world["hook"].client
    run_id = client.get_model_version(MODEL, version).run_id
    training_set = json.loads(client.get_run(run_id).data.tags["mlops.feature_set"])["uri"]
    reference = prepare_features_with_store(pd.read_parquet(training_set))
    months = sorted((world["home"] / "data" / "flights").glob("month=*/*.parquet"))
    landed = pd.concat([pd.read_parquet(path) for path in months], ignore_index=True)
    times = landed["time_hour"]
    window = landed[
        (times >= pd.Timestamp(WINDOW[0], tz="UTC")) & (times < pd.Timestamp(WINDOW[1], tz="UTC"))
    ]
    current = prepare_features_with_store(FeastHook().feature_store_join(spec.feature_store)(window))
    return detect_drift(reference, current, spec.numerical_features, spec.categorical_features)


def test_drift_is_found_recorded_and_requests_one_retrain(world):
    from mlops_dev.demo import task_result

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_DATA_ROOT", str(world["home"] / "data"))
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{world['home']}/mlflow.db")
        patch.setenv("MLOPS_ARTIFACT_ROOT", (world["home"] / "artifacts").as_uri())
        before = len(_request_events())
        run = run_dag("monitor", run_conf=JULY_1)
        assert str(run.state) == "success", task_states(run)
        result = task_result(run, "check_drift")
        json.dumps(result, allow_nan=False)

        expected = _expected_verdicts(world, world["champion"])
        assert {c["column"]: c["drifted"] for c in result["columns"]} == {
            c.column: c.drifted for c in expected.columns
        }
        for ours, theirs in zip(result["columns"], expected.columns, strict=True):
            assert ours["score"] == pytest.approx(theirs.score, rel=1e-9)
        assert (
            result["current_rows"] == expected.current_rows
            and result["reference_rows"] == expected.reference_rows
        )
        assert result["model_version"] == world["champion"]
        assert result["prediction"]["column"] == "prediction"
        # Summer against winter at Evidently's default share (0.5): weather and the rolling delays drift, so do
        # the predictions; the schedule does not; summer routes appear.
        assert result["dataset_drift"] is True and result["prediction"]["drifted"] is True
        assert {"temp", "carrier_delay_rate_7d"} <= set(result["drifted_columns"])
        assert "dep_hour" not in result["drifted_columns"]
        assert result["new_categories"]["dest"] == expected.new_categories["dest"] != []
        assert result["drift_detected"] is True and result["retrain_requested"] is True
        assert result["reason"].startswith(f"data drift on 20130625T0000Z_20130702T0000Z for {MODEL} v")

        report = Path(result["report_uri"])
        page = report.read_text()
        assert "uniform sample" in page and "Evidently" in page or "evidently" in page
        saved = json.loads(Path(result["result_uri"]).read_text())
        assert saved["share"] == result["share"]

        client = world["hook"].client
        tags = client.get_model_version(MODEL, world["champion"]).tags
        assert tags["mlops.drift.verdict"] == "drift"
        assert tags["mlops.drift.interval"] == "20130625T0000Z_20130702T0000Z"
        run_id = world["hook"].monitoring_run(MODEL, world["champion"])
        history = client.get_metric_history(run_id, "drift.share")
        assert [point.value for point in history] == [pytest.approx(result["share"])]
        # The interval's predictions, summarised from every row the check scored, on the same timeline.
        spread = result["prediction_distribution"]
        assert spread["kind"] == "numerical" and spread["rows"] == result["current_rows"]
        assert 0 <= spread["p10"] <= spread["p50"] <= spread["p90"] <= 1 and 0 < spread["mean"] < 1
        for name in ("mean", "p10", "p50", "p90"):
            logged = client.get_metric_history(run_id, f"prediction.{name}")
            assert [point.value for point in logged] == [pytest.approx(spread[name])]
        assert [p.value for p in client.get_metric_history(run_id, "drift.current_rows")] == [spread["rows"]]
        assert saved["airflow_run"] == f"monitor/{run.run_id}"
        performance_tags = client.get_model_version(MODEL, world["champion"]).tags
        assert {limit["metric"] for limit in json.loads(performance_tags["mlops.performance.limits"])}
        assert "drift/interval=20130625T0000Z_20130702T0000Z/drift_report.html" in [
            item.path
            for item in client.list_artifacts(run_id, "drift/interval=20130625T0000Z_20130702T0000Z")
        ]

        performance = task_result(run, "check_performance")
        assert performance["model_version"] == world["champion"] and performance["labelled_rows"] > 500
        requested = task_result(run, "request_retrain")
        assert requested["send"] is True and requested["reasons"][0] == result["reason"]
        assert len(requested["reasons"]) == 1 + len(performance["decay"]["reasons"] or []) * bool(
            performance["decay"]["retrain_requested"]
        )
        events = _request_events()
        assert len(events) == before + 1
        assert events[-1][1]["reason"] == requested["reason"]
        assert [piece["model_version"] for piece in events[-1][1]["evidence"]] == [world["champion"]] * 2

        # The next day's check still sees drift, but the cool-down holds the request back; the metric
        # timeline gets no duplicate point for the same interval.
        again = run_dag("monitor", run_conf=JULY_1)
        assert task_states(again)["request_retrain[-1]"] == "skipped"
        held = task_result(again, "request_retrain")
        assert held["requested"] is True and held["send"] is False and held["suppressed_until"]
        assert len(_request_events()) == before + 1
        assert len(client.get_metric_history(run_id, "drift.share")) == 1


def test_no_drift_requests_nothing(world):
    from mlops_dev.demo import task_result

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_DATA_ROOT", str(world["home"] / "data"))
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{world['home']}/mlflow.db")
        patch.setenv("MLOPS_ARTIFACT_ROOT", (world["home"] / "artifacts").as_uri())
        before = len(_request_events())
        # Two weeks of February against January-February (one week's weather is narrower than two months').
        conf = {"interval_start": "2013-02-26", "interval_end": "2013-02-27", "drift_window_days": 14}
        run = run_dag("monitor", run_conf=conf)
        assert str(run.state) == "success", task_states(run)
        result = task_result(run, "check_drift")
        assert result["drift_detected"] is False and result["reason"] is None
        assert result["interval"] == {
            "start": "2013-02-13T00:00:00+00:00",
            "end": "2013-02-27T00:00:00+00:00",
        }
        decayed = task_result(run, "check_performance")["decay"]["retrain_requested"]
        states = task_states(run)
        # A day the model was trained on: whatever the decay rule says is the only reason to ask.
        assert states["request_retrain[-1]"] == ("success" if decayed else "skipped")
        assert task_result(run, "request_retrain")["requested"] is decayed
        assert len(_request_events()) == before + decayed


def test_an_interval_without_data_fails_naming_the_window(world):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_DATA_ROOT", str(world["home"] / "data"))
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{world['home']}/mlflow.db")
        patch.setenv("MLOPS_ARTIFACT_ROOT", (world["home"] / "artifacts").as_uri())
        run = run_dag("monitor", run_conf={"interval_start": "2013-11-01", "interval_end": "2013-11-02"})
        states = task_states(run)
        assert states["check_drift[-1]"] == "failed" and states["check_performance[-1]"] == "failed"
        # Nothing to request on; the alert says the monitoring is incomplete and fails the run.
        assert states["request_retrain[-1]"] == "skipped" and states["alert[-1]"] == "failed"
        assert str(run.state) == "failed"


def test_a_streamed_day_is_monitored_as_a_batch_scored_one(world):
    """make demo's streaming step: July 2's flights replayed as events through the stream scorer (the champion,
    the online features), compacted by the stream_compaction DAG; the monitor then measures that day as it
    measures a batch-scored one, its labels joined on the flights' keys."""
    from datetime import date

    import pandas as pd
    import redis

    from include.flights.data import flights
    from mlops_dev.demo import _stream_day, task_result
    from mlops_dev.stream_replay import KEY_COLUMNS, STREAMS, flights_of_day
    from tests.integration.feature_support import require_redis

    require_redis()
    from airflow.dag_processing.dagbag import DagBag

    client = redis.Redis(host="127.0.0.1", port=6379, db=3)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_DATA_ROOT", str(world["home"] / "data"))
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{world['home']}/mlflow.db")
        patch.setenv("MLOPS_ARTIFACT_ROOT", (world["home"] / "artifacts").as_uri())
        patch.setenv("MLOPS_DEMO_REDIS_URL", "redis://127.0.0.1:6379/3")
        patch.setenv("AIRFLOW_CONN_MLOPS_STREAMS", "redis://127.0.0.1:6379/3")
        try:
            streamed = _stream_day(DagBag(dag_folder=str(DAGS)), 7, 2, MODEL)
        finally:
            client.delete(*STREAMS.values())
            client.close()
        replay, compacted = streamed["replay"], streamed["compacted"]
        # The day's interval in UTC, as batch scoring places rows (late evening flights of July 1 among them).
        day = flights_of_day(flights(), date(2013, 7, 2))
        assert replay["events"] == len(day)
        assert replay["scored"] + sum(replay["dead_letters"].values()) == len(day)
        # What the request schema and the spec's bounds refuse is dead-lettered; nearly every flight is scored.
        assert replay["scored"] >= 0.95 * len(day)
        assert replay["versions"] == {world["champion"]: replay["scored"]}
        assert (compacted["rows"], compacted["model_version"]) == (replay["scored"], world["champion"])

        run = run_dag("monitor", run_conf={"interval_start": "2013-07-02", "interval_end": "2013-07-03"})
        assert str(run.state) == "success", task_states(run)
        performance = task_result(run, "check_performance")
        # The streamed partition joined with the landed arrivals, as the flights' own keys say it should.
        partition = pd.read_parquet(compacted["uri"])
        arrived = partition.merge(day[day["arr_delay"].notna()][KEY_COLUMNS], on=KEY_COLUMNS)
        assert (performance["model_version"], performance["rows"]) == (world["champion"], compacted["rows"])
        assert performance["labelled_rows"] == len(arrived) > 500
        assert 0.5 < performance["metrics"]["roc_auc"] < 1
        assert task_result(run, "check_drift")["model_version"] == world["champion"]
