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
