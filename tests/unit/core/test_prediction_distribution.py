"""What the monitoring timeline records per interval beyond drift scores and live metrics: the distribution of the
interval's predictions (from the drift check's counts), each class's observed share, and every decay limit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops_ops.core.drift import WindowSummary
from mlops_ops.core.drift_check import prediction_metrics
from mlops_ops.core.performance import (
    BusinessCost,
    BusinessCosts,
    ClassConfusion,
    DecayCheck,
    DecayVerdict,
    IntervalPerformance,
    metric_name_part,
    observed_class_shares,
)

_NO_COST = BusinessCost(total=0.0, per_row=0.0, costs=BusinessCosts(misclassification=1.0))


def _summary(frame: pd.DataFrame, numerical=(), categorical=(), max_distinct: int = 1 << 18) -> WindowSummary:
    summary = WindowSummary(list(numerical), list(categorical), "current", max_distinct=max_distinct)
    for start in range(0, len(frame), 1000):  # in chunks, as the drift check reads
        summary.add(frame.iloc[start : start + 1000])
    return summary


def test_a_numerical_prediction_has_its_exact_mean_and_lower_quantiles():
    values = np.random.default_rng(7).gamma(2.0, 30.0, size=5_003)
    found = _summary(pd.DataFrame({"prediction": values}), numerical=["prediction"]).distribution(
        "prediction"
    )
    assert found["kind"] == "numerical" and found["rows"] == 5_003
    assert found["mean"] == pytest.approx(values.mean(), rel=1e-12)
    for name, quantile in (("p10", 0.1), ("p50", 0.5), ("p90", 0.9)):
        assert found[name] == np.quantile(values, quantile, method="inverted_cdf")


def test_quantiles_of_a_quantized_window_stay_within_one_cell():
    values = np.random.default_rng(3).normal(100.0, 15.0, size=20_000)
    summary = _summary(pd.DataFrame({"prediction": values}), numerical=["prediction"], max_distinct=512)
    counts = summary.numerical["prediction"]
    assert counts.grid is not None  # the window was quantized
    found = summary.distribution("prediction")
    for name, quantile in (("p10", 0.1), ("p50", 0.5), ("p90", 0.9)):
        assert abs(found[name] - np.quantile(values, quantile, method="inverted_cdf")) <= counts.grid


def test_missing_predictions_are_not_counted_and_an_empty_window_has_no_quantiles():
    frame = pd.DataFrame({"prediction": [0.1, np.nan, 0.3, np.inf]})
    found = _summary(frame, numerical=["prediction"]).distribution("prediction")
    assert found["rows"] == 2 and found["mean"] == pytest.approx(0.2)
    empty = _summary(pd.DataFrame({"prediction": [np.nan]}), numerical=["prediction"]).distribution(
        "prediction"
    )
    assert empty == {"kind": "numerical", "rows": 0}
    assert prediction_metrics(empty) == {}


def test_a_class_mix_keeps_the_most_frequent_classes_and_sums_the_rest():
    labels = ["a"] * 50 + ["b"] * 30 + ["c"] * 15 + ["d"] * 5 + [None] * 7
    found = _summary(pd.DataFrame({"prediction": labels}), categorical=["prediction"]).distribution(
        "prediction", max_classes=2
    )
    assert found == {
        "kind": "categorical",
        "rows": 100,
        "shares": {"a": 0.5, "b": 0.3, "(other)": pytest.approx(0.2)},
    }


def test_prediction_metrics_name_each_figure_and_each_class_safely():
    assert prediction_metrics(
        {"kind": "numerical", "rows": 3, "mean": 0.2, "p10": 0.1, "p50": 0.2, "p90": 0.3}
    ) == {
        "prediction.mean": 0.2,
        "prediction.p10": 0.1,
        "prediction.p50": 0.2,
        "prediction.p90": 0.3,
    }
    shares = prediction_metrics(
        {"kind": "categorical", "rows": 2, "shares": {"late>1h": 0.5, "on time": 0.5}}
    )
    assert shares == {"prediction.share.late_1h": 0.5, "prediction.share.on time": 0.5}
    assert metric_name_part("x" * 100) == "x" * 60 and metric_name_part("") == "_"
    assert prediction_metrics(None) == {}


def test_observed_class_shares_are_each_labels_share_of_the_labelled_rows():
    confusion = ClassConfusion(classes=(0, 1, 2), counts=((6, 1, 1), (0, 8, 0), (1, 0, 3)))
    measured = IntervalPerformance(
        rows=25,
        labelled_rows=20,
        metrics={},
        confusion=confusion,
        business_cost=_NO_COST,
        task="multiclass",
        classes=(0, 1, 2),
    )
    assert observed_class_shares(measured) == {
        "observed_share.0": 0.4,
        "observed_share.1": 0.4,
        "observed_share.2": 0.2,
    }
    binary = IntervalPerformance(
        rows=1,
        labelled_rows=1,
        metrics={},
        confusion=None,
        business_cost=_NO_COST,
    )
    assert observed_class_shares(binary) == {}


def test_every_decay_limit_is_listed_kept_or_broken_a_max_drop_below_its_training_value():
    verdict = DecayVerdict(
        status="healthy",
        checks=(
            DecayCheck("roc_auc", "floor", 0.7, 0.65),
            DecayCheck("log_loss", "ceiling", 0.4, 0.5),
            DecayCheck("accuracy", "max_drop", 0.78, 0.05, training_value=0.8),
            DecayCheck("rmse", "max_drop", 50.0, 4.0, training_value=48.0),
            DecayCheck("f1", "max_drop", None, 0.1, training_value=None, evaluated=False),
        ),
        labelled_rows=500,
        min_labelled_rows=100,
    )
    assert verdict.limits() == [
        {"metric": "roc_auc", "kind": "floor", "value": 0.65},
        {"metric": "log_loss", "kind": "ceiling", "value": 0.5},
        {"metric": "accuracy", "kind": "floor", "value": pytest.approx(0.75), "max_drop": 0.05},
        {"metric": "rmse", "kind": "ceiling", "value": 52.0, "max_drop": 4.0},
    ]


def test_past_twenty_classes_the_rest_of_the_labels_is_one_share_with_a_name_mlflow_takes():
    classes = tuple(f"c{index:02d}" for index in range(25))
    counts = tuple(tuple(25 - index if column == index else 0 for column in range(25)) for index in range(25))
    labelled = sum(25 - index for index in range(25))
    measured = IntervalPerformance(
        rows=labelled,
        labelled_rows=labelled,
        metrics={},
        confusion=ClassConfusion(classes=classes, counts=counts),
        business_cost=_NO_COST,
        task="multiclass",
        classes=classes,
    )
    shares = observed_class_shares(measured)
    assert len(shares) == 21 and shares["observed_share.c00"] == 25 / labelled
    assert shares["observed_share._other_"] == pytest.approx(sum(range(1, 6)) / labelled)
    assert sum(shares.values()) == pytest.approx(1.0)
