"""The live metrics of a scored interval once its labels arrived (the classification metrics, coverage and
the decisions as batch scoring made them)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from mlops_ops.core.errors import DataError
from mlops_ops.core.json_values import json_safe_mapping
from mlops_ops.core.performance.costs import BusinessCost, BusinessCosts
from mlops_ops.core.training import LOWER_IS_BETTER, classification_metrics

if TYPE_CHECKING:
    from collections.abc import Callable


#: The training run's held-out metrics are logged as ``holdout_<metric>`` (TrainOperator).
TRAINING_PREFIX = "holdout_"


#: Metrics computed on an interval's labelled rows (``roc_auc`` may be ``None``: one class only).
LIVE_METRICS = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "log_loss",
    "brier_score",
    "positive_rate",
    "predicted_positive_rate",
)


COST_METRIC = "business_cost_per_row"


#: What a decay rule may name: the live metrics that measure quality (not the rates) and the cost per row.
RULE_METRICS = frozenset({*LIVE_METRICS, COST_METRIC} - {"positive_rate", "predicted_positive_rate"})


#: Rule metrics that TrainOperator also measured on the held-out rows, so a drop from training has a meaning.
TRAINED_METRICS = frozenset(RULE_METRICS - {COST_METRIC})


DECAY_LOWER_IS_BETTER = frozenset({*LOWER_IS_BETTER, COST_METRIC})


@dataclass(frozen=True)
class ConfusionCounts:
    """Labelled rows by (decision, label)."""

    true_positives: int
    false_positives: int
    true_negatives: int
    false_negatives: int


@dataclass(frozen=True)
class IntervalPerformance:
    """How the model did on an interval's labelled rows.

    :param rows: predictions in the interval.
    :param labelled_rows: those with a label (the only ones measured).
    :param metrics: :data:`LIVE_METRICS`; ``roc_auc`` is ``None`` when the labelled rows hold one class only,
        ``precision``/``recall``/``f1`` when their ratio has nothing to divide (no positive decision/label).
    :param notes: why a metric is missing or degenerate, in words.
    """

    rows: int
    labelled_rows: int
    metrics: dict[str, float | None]
    confusion: ConfusionCounts
    business_cost: BusinessCost
    notes: tuple[str, ...] = ()

    @property
    def unlabelled_rows(self) -> int:
        """Predictions whose label has not arrived (or never will: a cancelled flight)."""
        return self.rows - self.labelled_rows

    @property
    def coverage(self) -> float:
        """Share of the predictions with a label."""
        return self.labelled_rows / self.rows if self.rows else 0.0

    def value(self, metric: str) -> float | None:
        """A live metric, or the business cost per row, by name."""
        if metric == COST_METRIC:
            return self.business_cost.per_row
        return self.metrics.get(metric)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        values = asdict(self)
        values["unlabelled_rows"] = self.unlabelled_rows
        values["coverage"] = self.coverage
        values["notes"] = list(self.notes)
        return json_safe_mapping(values)


def _as_array(values: Any, what: str) -> Any:
    import numpy as np

    try:
        return np.asarray(values, dtype="float64")
    except (TypeError, ValueError) as err:
        raise DataError(f"{what} must be numbers: {err}") from err


def _refuse_outside(values: Any, allowed: Callable[[Any], Any], what: str, expected: str) -> None:
    bad = ~allowed(values)
    if bad.any():
        examples = sorted({float(value) for value in values[bad][:5]}, key=str)
        raise DataError(f"{int(bad.sum())} {what} are {expected} (e.g. {examples})")


def evaluate_interval(
    labels: Any,
    probabilities: Any,
    *,
    costs: BusinessCosts,
    predictions: Any = None,
    threshold: float = 0.5,
) -> IntervalPerformance:
    """Metrics and business cost of one interval.

    :param labels: 0/1 per prediction, NaN (or None) where the label has not arrived; those rows are counted
        as unlabelled and left out.
    :param probabilities: the predicted probability of the positive class per row, in [0, 1].
    :param costs: what a missed positive and a false alarm cost.
    :param predictions: the 0/1 decisions batch scoring made; default ``probabilities >= threshold``.
    :param threshold: the decision threshold when ``predictions`` is not given.
    :return: the interval's performance.
    :raises DataError: naming the problem: lengths differ, no rows, no label at all, labels other than 0/1,
        probabilities missing or outside [0, 1], decisions other than 0/1.
    """
    import numpy as np

    labels = _as_array(labels, "labels")
    probabilities = _as_array(probabilities, "probabilities")
    predictions = (
        (probabilities >= threshold).astype("float64")
        if predictions is None
        else _as_array(predictions, "predictions")
    )
    lengths = {"labels": len(labels), "probabilities": len(probabilities), "predictions": len(predictions)}
    if len(set(lengths.values())) > 1:
        raise DataError(f"labels, probabilities and predictions differ in length: {lengths}")
    rows = len(labels)
    if rows == 0:
        raise DataError("no predictions to evaluate: the interval joined no rows")
    labelled = ~np.isnan(labels)
    if not labelled.any():
        raise DataError(f"labels are missing for every one of the {rows} predictions: nothing to measure yet")
    _refuse_outside(probabilities, lambda v: (v >= 0) & (v <= 1), "probabilities", "outside [0, 1] or NaN")
    _refuse_outside(predictions, lambda v: (v == 0) | (v == 1), "predictions", "not 0 or 1")
    labels, probabilities, predictions = labels[labelled], probabilities[labelled], predictions[labelled]
    _refuse_outside(labels, lambda v: (v == 0) | (v == 1), "labels", "not 0, 1 or missing")

    computed = classification_metrics(labels, probabilities, predicted=predictions)
    metrics: dict[str, float | None] = {name: computed[name] for name in LIVE_METRICS if name in computed}
    metrics["predicted_positive_rate"] = float(predictions.mean())
    positive, decided = labels == 1, predictions == 1
    confusion = ConfusionCounts(
        true_positives=int((positive & decided).sum()),
        false_positives=int((~positive & decided).sum()),
        true_negatives=int((~positive & ~decided).sum()),
        false_negatives=int((positive & ~decided).sum()),
    )
    notes = []
    if math.isnan(computed["roc_auc"]):
        metrics["roc_auc"] = None
        only = "positive" if labels[0] == 1 else "negative"
        notes.append(f"roc_auc is undefined: all {len(labels)} labelled rows are {only}")
    # scikit-learn reports 0 for a ratio with nothing to divide (zero_division=0); a 0 would fire a floor on
    # an interval that says nothing about the model, so an undefined ratio is None, with the reason.
    tp, fp, fn = confusion.true_positives, confusion.false_positives, confusion.false_negatives
    for metric, denominator, why in (
        ("precision", tp + fp, "no positive decision was made"),
        ("recall", tp + fn, "no labelled row is positive"),
        ("f1", 2 * tp + fp + fn, "no positive decision and no positive label"),
    ):
        if denominator == 0:
            metrics[metric] = None
            notes.append(f"{metric} is undefined: {why}")
    total = confusion.false_negatives * costs.missed_positive + confusion.false_positives * costs.false_alarm
    return IntervalPerformance(
        rows=rows,
        labelled_rows=len(labels),
        metrics=metrics,
        confusion=confusion,
        business_cost=BusinessCost(
            total=float(total),
            per_row=float(total) / len(labels),
            missed_positives=confusion.false_negatives,
            false_alarms=confusion.false_positives,
            costs=costs,
        ),
        notes=tuple(notes),
    )
