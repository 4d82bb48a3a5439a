"""PerformanceMonitorOperator against a real local MLflow registry, on a champion trained, gated, registered and
batch-scored by the operators, with the labels of the landed synthetic visits of tests/unit/synthetic.py (and
deliberately flipped ones)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from mlops_ops.core import scoring
from mlops_ops.core.performance import interval_step
from mlops_ops.operators.performance import (
    LIVE_METRIC,
    RETRAIN_REQUESTED,
    PerformanceMonitoringFailed,
    PerformanceMonitorOperator,
    performance_samples,
)
from tests.unit import synthetic
from tests.unit.operators.support import CONN_ID
from tests.unit.operators.test_scoring import KEYS, MODEL, context, score_operator
from tests.unit.operators.test_scoring import champion as champion  # the module's fixture, shared

DAY_1 = {"interval_start": "2024-01-01T00:00:00+00:00", "interval_end": "2024-01-02T00:00:00+00:00"}
DAY_2 = {"interval_start": "2024-01-02T00:00:00+00:00", "interval_end": "2024-01-03T00:00:00+00:00"}
#: The landed label (1.0 bought, 0.0 not, NaN outcome unknown).
LABEL = synthetic.TARGET
#: Visits in a day of the ``root`` fixture's data (one every 5 minutes).
VISITS_PER_DAY = 24 * 60 // 5
RULE = {
    "min_metrics": {"roc_auc": 0.55},
    "max_metrics": {"business_cost_per_row": 20.0},
    "max_drop": {"roc_auc": 0.1},
    "min_labelled_rows": 100,
}
COSTS = {"missed_positive": 50.0, "false_alarm": 10.0}


@pytest.fixture(scope="module")
def scored(root, champion) -> str:
    """The champion (version 1, trained on January and February rows) with days 1 and 2 scored and published."""
    for day in (DAY_1, DAY_2):
        score_operator(root, **day).execute(context=context(f"scheduled__{day['interval_start']}"))
    return champion


@pytest.fixture(scope="module")
def flipped(root) -> Path:
    """The landed rows with every known outcome the other way round: a model gone wrong."""
    folder = root / "flipped"
    for path in sorted((root / "data").rglob("*.parquet")):
        frame = pd.read_parquet(path)
        frame[LABEL] = np.where(frame[LABEL].isna(), np.nan, 1.0 - frame[LABEL])
        target = folder / path.relative_to(root / "data")
        target.parent.mkdir(parents=True)
        frame.to_parquet(target, index=False)
    return folder


def monitor(root: Path, interval: dict, **kwargs) -> PerformanceMonitorOperator:
    arguments = {
        "task_id": "performance",
        "model_name": MODEL,
        "labels_source": str(root / "data"),
        "key_columns": KEYS,
        "time_column": synthetic.TIME_COLUMN,
        "model_spec": synthetic.spec(),
        "decay_rule": RULE,
        "business_costs": COSTS,
        "predictions_root": str(root / "predictions"),
        "mlflow_conn_id": CONN_ID,
        **interval,
        **kwargs,
    }
    return PerformanceMonitorOperator(**arguments)


def expected(root: Path, interval: dict, labels_root: Path | None = None) -> pd.DataFrame:
    """The published predictions joined, independently of the operator, with the landed labels."""
    uri = scoring.partition_uri(str(root / "predictions"), MODEL, scoring.Interval.parse(*interval.values()))
    predictions = pq.read_table(uri).to_pandas()
    landed = pd.concat(pd.read_parquet(p) for p in sorted((labels_root or root / "data").rglob("*.parquet")))
    return predictions.merge(landed[[*KEYS, LABEL]], on=KEYS, how="left")


def test_a_healthy_interval_is_measured_logged_on_the_timeline_and_tagged(root, scored, client):
    result = monitor(root, DAY_1).execute(context=context(task_id="performance"))
    assert json.loads(json.dumps(result, allow_nan=False)) == result

    truth = expected(root, DAY_1)
    known = truth[truth[LABEL].notna()]
    labels = known[LABEL].astype(int)
    assert result["model_version"] == scored
    assert result["rows"] == len(truth) == VISITS_PER_DAY and result["labelled_rows"] == len(known) < len(
        truth
    )
    assert result["unlabelled_rows"] == int(truth[LABEL].isna().sum())  # visits whose outcome is unknown
    assert result["metrics"]["accuracy"] == pytest.approx(float((known["prediction"] == labels).mean()))
    missed = int(((known["prediction"] == 0) & (labels == 1)).sum())
    alarms = int(((known["prediction"] == 1) & (labels == 0)).sum())
    assert result["business_cost"]["total"] == missed * 50 + alarms * 10
    assert result["decay"]["status"] == "healthy" and result["decay"]["retrain_requested"] is False

    run = client.get_run(result["mlflow"]["run_id"])
    assert client.get_experiment(run.info.experiment_id).name == f"{MODEL}-monitoring"
    assert run.data.tags["mlops.monitoring.model_version"] == scored
    (point,) = client.get_metric_history(run.info.run_id, "roc_auc")
    assert point.value == pytest.approx(result["metrics"]["roc_auc"])
    assert point.step == interval_step(scoring.Interval.parse(*DAY_1.values())) == result["mlflow"]["step"]
    assert point.timestamp == int(pd.Timestamp(DAY_1["interval_end"]).timestamp() * 1000)
    tags = client.get_model_version(MODEL, scored).tags
    assert tags["mlops.performance.status"] == "healthy"
    assert tags["mlops.performance.retrain_requested"] == "false"
    assert tags["mlops.performance.monitoring_run_id"] == run.info.run_id


def test_re_running_an_interval_adds_no_second_point(root, scored, client):
    first = monitor(root, DAY_1).execute(context=context(task_id="performance"))
    again = monitor(root, DAY_1).execute(context=context(task_id="performance", run_id="manual__again"))
    assert again["mlflow"]["run_id"] == first["mlflow"]["run_id"]
    assert again["mlflow"]["logged"] == [] and "roc_auc" in again["mlflow"]["already_logged"]
    for metric in ("roc_auc", "accuracy", "business_cost_per_row", "labelled_rows"):
        assert len(client.get_metric_history(first["mlflow"]["run_id"], metric)) == 1, metric


def test_flipped_labels_fire_the_decay_rule_and_the_version_says_retrain(root, scored, client, flipped):
    # The healthy day before is on the timeline whichever test ran first (measured again: no second point), so
    # the test holds on a worker of its own (pytest -n without --dist loadfile).
    monitor(root, DAY_1).execute(context=context(task_id="performance", run_id="manual__day1"))
    result = monitor(root, DAY_2, labels_source=str(flipped)).execute(context=context(task_id="performance"))
    decay = result["decay"]
    assert decay["status"] == "decayed" and decay["retrain_requested"] is True
    reasons = {(reason["metric"], reason["kind"]): reason for reason in decay["reasons"]}
    assert {("roc_auc", "floor"), ("roc_auc", "max_drop")} <= set(reasons)
    training = client.get_run(client.get_model_version(MODEL, scored).run_id).data.metrics
    assert reasons[("roc_auc", "max_drop")]["training_value"] == pytest.approx(training["holdout_roc_auc"])
    assert reasons[("roc_auc", "floor")]["value"] == result["metrics"]["roc_auc"] < 0.5
    truth = expected(root, DAY_2, flipped)
    known = truth[truth[LABEL].notna()]
    from sklearn.metrics import roc_auc_score

    auc = roc_auc_score(known[LABEL].astype(int), known["probability"])
    assert result["metrics"]["roc_auc"] == pytest.approx(auc)

    tags = client.get_model_version(MODEL, scored).tags
    assert (
        tags["mlops.performance.status"] == "decayed"
        and tags["mlops.performance.retrain_requested"] == "true"
    )
    assert "roc_auc" in json.loads(tags["mlops.performance.reasons"])[0]
    # Two intervals, two points on the version's timeline, in interval order.
    history = client.get_metric_history(result["mlflow"]["run_id"], RETRAIN_REQUESTED.removeprefix("mlops_"))
    assert [(p.step, p.value) for p in sorted(history, key=lambda p: p.step)] == [
        (result["mlflow"]["step"] - 1, 0.0),
        (result["mlflow"]["step"], 1.0),
    ]

    # An older interval measured later does not replace the newer verdict.
    older = monitor(root, DAY_1).execute(context=context(task_id="performance", run_id="manual__late"))
    assert older["mlflow"]["version_tagged"] is False
    assert client.get_model_version(MODEL, scored).tags["mlops.performance.status"] == "decayed"


def test_labels_that_have_not_arrived_are_counted_and_left_out(root, scored, tmp_path):
    half = tmp_path / "half"
    for path in sorted((root / "data").rglob("*.parquet")):
        frame = pd.read_parquet(path)
        target = half / path.relative_to(root / "data")
        target.parent.mkdir(parents=True)
        frame.iloc[::2].to_parquet(target, index=False)  # every other visit's outcome has not landed yet
    result = monitor(root, DAY_1, labels_source=str(half), experiment_name="partial").execute(
        context=context(task_id="performance")
    )
    joined = expected(root, DAY_1, half)
    assert result["rows"] == len(joined) == len(expected(root, DAY_1))
    assert result["labelled_rows"] == joined[LABEL].notna().sum()
    assert result["unlabelled_rows"] == joined[LABEL].isna().sum()
    assert result["coverage"] == pytest.approx(result["labelled_rows"] / result["rows"])
    assert result["coverage"] < 0.55


def test_the_interval_comes_from_the_runs_data_interval_when_not_given(root, scored):
    ctx = {
        **context(task_id="performance", run_id="scheduled__day1"),
        "data_interval_start": pd.Timestamp(DAY_1["interval_start"]).to_pydatetime(),
        "data_interval_end": pd.Timestamp(DAY_1["interval_end"]).to_pydatetime(),
    }
    result = monitor(root, {}, experiment_name="resolved").execute(context=ctx)
    assert result["interval"]["key"] == "20240101T0000Z_20240102T0000Z"


def test_bad_input_fails_naming_the_problem(root, scored, tmp_path):
    unscored = {"interval_start": "2024-01-03T00:00:00+00:00", "interval_end": "2024-01-04T00:00:00+00:00"}
    cases = [
        (monitor(root, unscored), "no published predictions at .*interval=20240103T0000Z_20240104T0000Z"),
        (
            monitor(root, DAY_1, labels_source=str(root / "data" / "month=2024-02")),
            "labels are missing for every one of the",
        ),
        (
            monitor(root, DAY_1, decay_rule={"min_metrics": {"auc": 0.6}}),
            r"min_metrics cannot check \['auc'\]",
        ),
        (monitor(root, DAY_1, business_costs={"missed": 1}), "expected exactly"),
        (
            monitor(root, DAY_1, business_costs={"under_prediction": 1, "over_prediction": 2}),
            r"a binary model's costs are \['false_alarm', 'missed_positive'\]",
        ),
        (
            monitor(root, DAY_1, decay_rule={"max_metrics": {"rmse": 3.0}}),
            r"max_metrics cannot check \['rmse'\] on a binary model; it takes some of",
        ),
        (
            monitor(root, DAY_1, model_spec={**synthetic.spec(), "task": "multiclass"}),
            "holds the predictions of a binary model.*declares task 'multiclass'",
        ),
        (monitor(root, DAY_1, decay_rule="include/visits/nothing.yaml"), "nothing.yaml' not found"),
        (monitor(root, DAY_1, key_columns=["visitor", "no_such_key"]), "lack key column"),
        (
            monitor(root, DAY_1, labels_source="/nowhere/visits"),
            "labels: the labels source /nowhere/visits does",
        ),
    ]
    for operator, words in cases:
        with pytest.raises(PerformanceMonitoringFailed, match=words):
            operator.execute(context=context(task_id="performance"))

    # A partition whose probabilities were corrupted is refused, not judged.
    interval = scoring.Interval.parse(*DAY_1.values())
    source = scoring.partition_uri(str(root / "predictions"), MODEL, interval)
    corrupted = scoring.partition_uri(str(tmp_path / "predictions"), MODEL, interval)
    Path(corrupted).parent.mkdir(parents=True)
    shutil.copy(source, corrupted)
    table = pq.read_table(corrupted)
    probability = table.column("probability").to_numpy().copy()
    probability[:3] = 1.7
    table = table.set_column(table.schema.get_field_index("probability"), "probability", [probability])
    pq.write_table(table, corrupted)
    with pytest.raises(PerformanceMonitoringFailed, match=r"3 probabilities are outside \[0, 1\]"):
        monitor(root, DAY_1, predictions_root=str(tmp_path / "predictions")).execute(
            context=context(task_id="performance")
        )


@pytest.mark.integration
def test_live_metrics_reach_a_real_pushgateway(root, scored, tmp_path, monkeypatch):
    from tests.pushgateway import get, running_pushgateway, series

    with running_pushgateway(tmp_path / "gateway") as (host, port):
        monkeypatch.setenv(
            "AIRFLOW_CONN_PUSHGATEWAY",
            json.dumps({"conn_type": "prometheus_pushgateway", "host": host, "port": port}),
        )
        result = monitor(root, DAY_1, pushgateway_conn_id="pushgateway", experiment_name="pushed").execute(
            context=context(task_id="performance")
        )
        text = get(f"http://{host}:{port}/metrics")
    group = {("job", "mlops_performance"), ("instance", ""), ("model", MODEL), ("version", scored)}
    pushed = series(text, LIVE_METRIC)
    assert pushed[frozenset({*group, ("metric", "roc_auc")})] == pytest.approx(result["metrics"]["roc_auc"])
    assert pushed[frozenset({*group, ("metric", "f1")})] == pytest.approx(result["metrics"]["f1"])
    assert series(text, "mlops_business_cost_per_row") == {
        frozenset(group): pytest.approx(result["business_cost"]["per_row"])
    }
    assert series(text, RETRAIN_REQUESTED) == {frozenset(group): 0.0}
    assert result["pushed"] == len(pushed) + 6


def test_the_gauges_of_a_regression_interval_are_its_own_metrics():
    from mlops_ops.core.performance import BusinessCosts, DecayRule, evaluate_interval

    measured = evaluate_interval(
        [10.0, 20.0, 0.0],
        predictions=[12.0, 18.0, 1.0],
        costs=BusinessCosts(under_prediction=2.0, over_prediction=1.0),
        task="regression",
    )
    verdict = DecayRule.load({"max_metrics": {"rmse": 1.0}}).judge(measured, {})
    interval = scoring.Interval.parse(*DAY_1.values())
    samples = performance_samples("houses", "3", interval, measured, verdict)
    live = {sample.labels["metric"]: sample.value for sample in samples if sample.name == LIVE_METRIC}
    # mape is undefined with a zero target: left out, not pushed as 0.
    assert set(live) == {"rmse", "mae", "r2", "mean_target", "mean_prediction"}
    assert live["mae"] == pytest.approx(5 / 3)
    by_name = {sample.name: sample.value for sample in samples if sample.name != LIVE_METRIC}
    assert by_name["mlops_business_cost_total"] == 2 * 2.0 + 3 * 1.0 and by_name[RETRAIN_REQUESTED] == 1.0
