"""The whole measurement of one scored interval, without Airflow and on a second team's synthetic data: a
partition of predictions, labels landed later, a decay rule against the training metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops_ops.core.errors import DataError
from mlops_ops.core.modelspec import ModelSpec
from mlops_ops.core.performance import BusinessCosts, DecayRule, measure_interval
from mlops_ops.core.scoring import Interval

INTERVAL = Interval.parse("2024-03-01", "2024-03-02")
SPEC = ModelSpec.from_dict(
    {"name": "churn", "target": "churned", "categorical_features": [], "numerical_features": ["tenure"]}
)


def _landed(tmp_path, rows: int = 400, version: str = "4") -> tuple[str, str]:
    rng = np.random.default_rng(7)
    times = pd.date_range("2024-03-01", periods=rows, freq="3min", tz="UTC")
    churned = rng.integers(0, 2, rows)
    probability = np.clip(churned * 0.3 + rng.random(rows) * 0.7, 0, 1)  # a model that partly knows
    predictions = pd.DataFrame(
        {
            "customer": np.arange(rows),
            "probability": probability,
            "prediction": (probability >= 0.5).astype(int),
            "model_version": version,
        }
    )
    predictions_uri = tmp_path / "predictions.parquet"
    predictions.to_parquet(predictions_uri, index=False)
    labels = tmp_path / "labels"
    labels.mkdir()
    # Labels land later and for 3 of 4 customers only: coverage 0.75.
    pd.DataFrame({"customer": np.arange(rows), "event_time": times, "churned": churned}).iloc[
        : rows * 3 // 4
    ].to_parquet(labels / "part-0.parquet", index=False)
    return str(predictions_uri), str(labels)


def _measure(predictions_uri, labels, rule, **overrides):
    values = dict(
        predictions_uri=predictions_uri,
        labels_source=labels,
        interval=INTERVAL,
        model_name="churn",
        spec=SPEC,
        rule=rule,
        costs=BusinessCosts(missed_positive=5.0, false_alarm=1.0),
        key_columns=["customer"],
        time_column="event_time",
        training_metrics_of=lambda version: {"holdout_roc_auc": 0.99} if version == "4" else {},
    )
    return measure_interval(**{**values, **overrides})


def test_an_interval_is_measured_and_judged_against_its_versions_training(tmp_path):
    predictions_uri, labels = _landed(tmp_path)
    outcome = _measure(predictions_uri, labels, DecayRule.from_dict({"max_drop": {"roc_auc": 0.01}}))
    assert outcome.version == "4"
    assert outcome.measured.labelled_rows == 300 and outcome.measured.coverage == pytest.approx(0.75)
    assert 0.5 < outcome.measured.metrics["roc_auc"] < 0.99
    # The live ROC-AUC fell more than 0.01 below the 0.99 the version scored at training: decayed.
    assert outcome.verdict.status == "decayed" and outcome.verdict.retrain_requested


def test_a_partition_of_several_versions_is_refused(tmp_path):
    predictions_uri, labels = _landed(tmp_path)
    frame = pd.read_parquet(predictions_uri)
    frame.loc[frame.index[:5], "model_version"] = "3"
    frame.to_parquet(predictions_uri, index=False)
    with pytest.raises(DataError, match=r"holds predictions of versions \['3', '4'\]"):
        _measure(predictions_uri, labels, DecayRule.from_dict({"min_metrics": {"roc_auc": 0.5}}))


def _partition(path, frame: pd.DataFrame, metadata: dict) -> str:
    """A predictions partition with batch scoring's metadata (model, interval and, since tasks, the task)."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlops_ops.core.scoring.batch import METADATA_KEY

    table = pa.Table.from_pandas(frame, preserve_index=False)
    metadata = {"model_name": "churn", "interval": INTERVAL.to_dict(), **metadata}
    pq.write_table(table.replace_schema_metadata({METADATA_KEY: json.dumps(metadata).encode()}), path)
    return str(path)


def _labels(tmp_path, frame: pd.DataFrame) -> str:
    folder = tmp_path / "labels"
    folder.mkdir()
    times = pd.date_range("2024-03-01", periods=len(frame), freq="1min", tz="UTC")
    frame.assign(event_time=times).to_parquet(folder / "part-0.parquet", index=False)
    return str(folder)


def _spec(task: str, target: str = "churned") -> ModelSpec:
    return ModelSpec.from_dict(
        {
            "name": "churn",
            "task": task,
            "target": target,
            "categorical_features": [],
            "numerical_features": ["tenure"],
        }
    )


def test_a_multiclass_partition_is_measured_from_its_class_columns(tmp_path):
    predictions = pd.DataFrame(
        {
            "customer": [1, 2, 3, 4],
            "prediction": ["stay", "leave", "leave", "pause"],
            "probability_leave": [0.2, 0.7, 0.6, 0.1],
            "probability_pause": [0.1, 0.1, 0.1, 0.8],
            "probability_stay": [0.7, 0.2, 0.3, 0.1],
            "model_version": "2",
        }
    )
    uri = _partition(
        tmp_path / "p.parquet", predictions, {"task": "multiclass", "classes": ["leave", "pause", "stay"]}
    )
    # Customer 4's label has not arrived; customer 3 stayed although predicted to leave.
    labels = _labels(tmp_path, pd.DataFrame({"customer": [1, 2, 3], "plan": ["stay", "leave", "stay"]}))
    outcome = _measure(
        uri,
        labels,
        DecayRule.from_dict({"max_drop": {"f1_macro": 0.1}, "min_metrics": {"recall_stay": 0.4}}),
        spec=_spec("multiclass", "plan"),
        costs=BusinessCosts(misclassification=1.0, matrix={"stay": {"leave": 7.0}}),
        training_metrics_of=lambda version: {"holdout_f1_macro": 0.9, "holdout_recall_stay": 0.8},
    )
    measured = outcome.measured
    assert (measured.task, measured.classes, measured.labelled_rows) == (
        "multiclass",
        ("leave", "pause", "stay"),
        3,
    )
    assert measured.metrics["accuracy"] == pytest.approx(2 / 3)
    assert (
        measured.metrics["recall_stay"] == pytest.approx(1 / 2) and measured.metrics["recall_pause"] is None
    )
    assert measured.business_cost.total == 7.0  # the one stayer predicted to leave, at the matrix's cost
    assert outcome.verdict.status == "decayed"


def test_a_regression_partition_is_measured_on_its_predicted_values(tmp_path):
    predictions = pd.DataFrame(
        {"customer": [1, 2, 3, 4], "prediction": [12.0, 18.0, 33.0, 40.0], "model_version": "5"}
    )
    uri = _partition(tmp_path / "p.parquet", predictions, {"task": "regression"})
    labels = _labels(tmp_path, pd.DataFrame({"customer": [1, 2, 3, 4], "spend": [10.0, 20.0, 30.0, 40.0]}))
    outcome = _measure(
        uri,
        labels,
        DecayRule.from_dict({"max_drop": {"rmse": 1.0}}),
        spec=_spec("regression", "spend"),
        costs=BusinessCosts(under_prediction=5.0, over_prediction=1.0),
        training_metrics_of=lambda version: {"holdout_rmse": 1.5},
    )
    assert outcome.version == "5" and outcome.measured.metrics["rmse"] == pytest.approx((17 / 4) ** 0.5)
    assert outcome.measured.business_cost.total == 15.0
    assert outcome.verdict.status == "healthy"  # 2.06 is within 1.0 of the 1.5 the version scored at training


def test_text_labels_of_a_regression_model_are_refused_not_taken_for_missing(tmp_path):
    predictions = pd.DataFrame({"customer": [1, 2], "prediction": [1.0, 2.0], "model_version": "5"})
    uri = _partition(tmp_path / "p.parquet", predictions, {"task": "regression"})
    labels = _labels(tmp_path, pd.DataFrame({"customer": [1, 2], "spend": ["12.5", "unknown"]}))
    with pytest.raises(DataError, match=r"the regression target 'spend' holds 1 non-numeric value\(s\)"):
        _measure(
            uri,
            labels,
            DecayRule.from_dict({"max_metrics": {"rmse": 1.0}}),
            spec=_spec("regression", "spend"),
            costs=BusinessCosts(under_prediction=1.0, over_prediction=1.0),
        )


def test_a_partition_of_another_task_than_the_specs_is_refused(tmp_path):
    predictions_uri, labels = _landed(tmp_path)  # written without a task: binary, as before tasks existed
    with pytest.raises(
        DataError,
        match=r"holds the predictions of a binary model \(its metadata names no task: it was scored before "
        r"tasks existed\), but the model spec of 'churn' declares task 'regression'",
    ):
        _measure(
            predictions_uri,
            labels,
            DecayRule.from_dict({"max_metrics": {"rmse": 1.0}}),
            spec=_spec("regression"),
        )
    regression_uri = _partition(
        tmp_path / "r.parquet",
        pd.DataFrame({"customer": [1], "prediction": [1.0], "model_version": "4"}),
        {"task": "regression"},
    )
    with pytest.raises(
        DataError,
        match="holds the predictions of a regression model, but the model spec of 'churn' declares task 'binary'",
    ):
        _measure(regression_uri, labels, DecayRule.from_dict({"min_metrics": {"roc_auc": 0.5}}))


def test_a_rule_or_cost_table_of_another_task_is_refused_before_labels_are_read(tmp_path):
    predictions_uri, _ = _landed(tmp_path)
    nowhere = str(tmp_path / "no-labels")
    with pytest.raises(
        DataError,
        match=r"the decay rule of binary model 'churn': max_metrics cannot check \['rmse'\] on a binary model",
    ):
        _measure(predictions_uri, nowhere, DecayRule.from_dict({"max_metrics": {"rmse": 1.0}}))
    with pytest.raises(
        DataError, match=r"the business costs of binary model 'churn': a binary model's costs are"
    ):
        _measure(
            predictions_uri,
            nowhere,
            DecayRule.from_dict({"min_metrics": {"roc_auc": 0.5}}),
            costs=BusinessCosts(misclassification=1.0),
        )


def test_a_multiclass_partition_without_its_classes_or_columns_is_refused(tmp_path):
    frame = pd.DataFrame({"customer": [1], "prediction": ["a"], "probability_a": [1.0], "model_version": "4"})
    rule = DecayRule.from_dict({"min_metrics": {"accuracy": 0.5}})
    costs = BusinessCosts(misclassification=1.0)
    spec = _spec("multiclass", "plan")
    no_classes = _partition(tmp_path / "a.parquet", frame, {"task": "multiclass"})
    with pytest.raises(
        DataError, match="a.parquet: the metadata of a multiclass predictions file lists no classes"
    ):
        _measure(no_classes, str(tmp_path), rule, spec=spec, costs=costs)
    no_column = _partition(tmp_path / "b.parquet", frame, {"task": "multiclass", "classes": ["a", "b"]})
    with pytest.raises(DataError, match=r"lacks the multiclass prediction column\(s\) \['probability_b'\]"):
        _measure(no_column, str(tmp_path), rule, spec=spec, costs=costs)
