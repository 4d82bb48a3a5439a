"""The live metrics of a scored interval once its labels arrived, per task (:mod:`mlops_ops.core.tasks`): the
task's metrics on the labelled rows, coverage, the decisions as batch scoring made them and their business cost.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from mlops_ops.core.errors import DataError, required
from mlops_ops.core.json_values import json_safe_mapping
from mlops_ops.core.performance.costs import BusinessCost, BusinessCosts
from mlops_ops.core.tasks import RECALL_PREFIX, Predictions, TaskType, get_task, plain_value, recall_metric
from mlops_ops.core.tasks import lower_is_better as _task_lower_is_better

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import numpy as np

    from mlops_ops.core.tasks import Task


#: The training run's held-out metrics are logged as ``holdout_<metric>`` (TrainOperator).
TRAINING_PREFIX = "holdout_"

COST_METRIC = "business_cost_per_row"

#: Metrics measured on a binary interval's labelled rows besides the task's own: the share of positive labels
#: and of positive decisions (descriptive: a decay rule cannot name them).
BINARY_RATES = ("positive_rate", "predicted_positive_rate")


def live_metrics(task: TaskType, classes: Sequence[Any] | None = None) -> tuple[str, ...]:
    """The metrics :func:`evaluate_interval` reports for ``task``, in order (per-class ones need ``classes``).

    Binary: accuracy, precision, recall, f1, roc_auc, log_loss, brier_score, positive_rate,
    predicted_positive_rate; multiclass: accuracy, f1_macro, f1_weighted, log_loss, recall_<class>;
    regression: rmse, mae, r2, mape, mean_target, mean_prediction.
    """
    if task == "binary":
        return ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "brier_score", *BINARY_RATES)
    if task == "multiclass":
        return (
            "accuracy",
            "f1_macro",
            "f1_weighted",
            "log_loss",
            *(recall_metric(value) for value in classes or ()),
        )
    return ("rmse", "mae", "r2", "mape", "mean_target", "mean_prediction")


def lower_is_better(metric: str) -> bool:
    """Whether a lower value of ``metric`` (a task's metric or :data:`COST_METRIC`) is better."""
    return metric == COST_METRIC or _task_lower_is_better(metric)


@dataclass(frozen=True)
class ConfusionCounts:
    """Labelled rows of a binary interval by (decision, label)."""

    true_positives: int
    false_positives: int
    true_negatives: int
    false_negatives: int


@dataclass(frozen=True)
class ClassConfusion:
    """Labelled rows of a multiclass interval by (label, decision).

    :param classes: the model's classes, in the order of its probability columns.
    :param counts: ``counts[i][j]`` rows of class ``classes[i]`` were given ``classes[j]``.
    """

    classes: tuple[Any, ...]
    counts: tuple[tuple[int, ...], ...]

    @property
    def misclassified(self) -> int:
        """Rows given another class than their own."""
        return sum(count for i, row in enumerate(self.counts) for j, count in enumerate(row) if i != j)


@dataclass(frozen=True)
class IntervalPerformance:
    """How the model did on an interval's labelled rows.

    :param rows: predictions in the interval.
    :param labelled_rows: those with a label (the only ones measured).
    :param metrics: :func:`live_metrics` of the task; ``None`` where undefined on these rows, with the reason in
        ``notes`` (binary ``roc_auc`` on one class, ``precision``/``recall``/``f1`` with nothing to divide;
        multiclass ``recall_<class>`` of a class no labelled row has; regression ``r2`` on equal targets,
        ``mape`` with a zero target).
    :param confusion: binary :class:`ConfusionCounts`, multiclass :class:`ClassConfusion`, regression ``None``.
    :param notes: why a metric is missing or degenerate, in words.
    :param task: the task of the model that scored the interval.
    :param classes: a multiclass model's classes, ``None`` for the other tasks.
    """

    rows: int
    labelled_rows: int
    metrics: dict[str, float | None]
    confusion: ConfusionCounts | ClassConfusion | None
    business_cost: BusinessCost
    notes: tuple[str, ...] = ()
    task: TaskType = "binary"
    classes: tuple[Any, ...] | None = None

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
        """JSON-safe form: ``{"rows", "labelled_rows", "metrics", "confusion" (binary and multiclass),
        "business_cost", "notes", "unlabelled_rows", "coverage", "task", "classes" (multiclass)}``."""
        values: dict[str, Any] = {
            "rows": self.rows,
            "labelled_rows": self.labelled_rows,
            "metrics": self.metrics,
        }
        if self.confusion is not None:
            values["confusion"] = asdict(self.confusion)
        values.update(
            business_cost=self.business_cost.to_dict(),
            notes=list(self.notes),
            unlabelled_rows=self.unlabelled_rows,
            coverage=self.coverage,
            task=self.task,
        )
        if self.classes is not None:
            values["classes"] = list(self.classes)
        return json_safe_mapping(values)


def metric_name_part(value: str, length: int = 60) -> str:
    """``value`` (a class, a column) as part of an MLflow metric name: the characters MLflow refuses in names
    become ``_``, and at most ``length`` are kept."""
    import re

    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", value)[:length] or "_"


def observed_class_shares(measured: IntervalPerformance) -> dict[str, float]:
    """A multiclass interval's labels as ``observed_share.<class>`` metrics (each class's share of the labelled
    rows, beside the drift check's ``prediction.share.<class>``); nothing for the other tasks."""
    from mlops_ops.core.drift import MAX_CLASS_SHARES

    confusion = measured.confusion
    if not isinstance(confusion, ClassConfusion) or not measured.labelled_rows:
        return {}
    # As the predictions' class mix: the most frequent classes, the rest summed as "(other)".
    ranked = sorted(
        zip(confusion.classes, (sum(row) for row in confusion.counts), strict=True),
        key=lambda item: (-item[1], str(item[0])),
    )
    shares = {
        f"observed_share.{metric_name_part(str(label))}": count / measured.labelled_rows
        for label, count in ranked[:MAX_CLASS_SHARES]
    }
    rest = sum(count for _, count in ranked[MAX_CLASS_SHARES:])
    if rest:
        shares[f"observed_share.{metric_name_part('(other)')}"] = rest / measured.labelled_rows
    return shares


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


def _same_lengths(**arrays: Any) -> int:
    lengths = {name: len(values) for name, values in arrays.items()}
    if len(set(lengths.values())) > 1:
        *first, last = lengths
        raise DataError(f"{', '.join(first)} and {last} differ in length: {lengths}")
    rows = next(iter(lengths.values()))
    if rows == 0:
        raise DataError("no predictions to evaluate: the interval joined no rows")
    return rows


def _labelled(labels: Any, rows: int) -> tuple[Any, np.ndarray]:
    """The labels as an object series (any type: the task judges them) and which rows have one."""
    import numpy as np
    import pandas as pd

    series = pd.Series(np.asarray(labels, dtype=object))
    labelled = series.notna().to_numpy()
    if not labelled.any():
        raise DataError(f"labels are missing for every one of the {rows} predictions: nothing to measure yet")
    return series, labelled


def _undefined(metrics: dict[str, float | None], computed: dict[str, float], name: str) -> bool:
    """Copy ``computed[name]`` into ``metrics``, as ``None`` when NaN; whether it was undefined."""
    value = computed[name]
    undefined = value is None or math.isnan(value)
    metrics[name] = None if undefined else float(value)
    return undefined


def evaluate_interval(
    labels: Any,
    probabilities: Any = None,
    *,
    costs: BusinessCosts,
    predictions: Any = None,
    threshold: float = 0.5,
    task: TaskType = "binary",
    classes: Sequence[Any] | None = None,
    label_column: str = "label",
) -> IntervalPerformance:
    """Metrics and business cost of one interval, for the model's ``task``.

    :param labels: the label per prediction, NaN (or None) where it has not arrived; those rows are counted as
        unlabelled and left out. Binary 0/1; multiclass one of the model's ``classes``; regression a number.
    :param probabilities: binary: the predicted probability of class 1 per row, in [0, 1]; multiclass: one row
        of class probabilities per row, columns in the order of ``classes``; regression: unused.
    :param costs: what a wrong decision costs (a cost table of ``task``).
    :param predictions: the decisions batch scoring made: binary 0/1 (default ``probabilities >= threshold``);
        multiclass a class (default the most probable); regression the predicted values (required).
    :param threshold: the binary decision threshold when ``predictions`` is not given.
    :param task: the task of the model that scored the interval (``"binary"``, ``"multiclass"``,
        ``"regression"``).
    :param classes: a multiclass model's classes, in the order of its probability columns.
    :param label_column: the labels' column, named in errors.
    :return: the interval's performance.
    :raises DataError: naming the problem: lengths differ, no rows, no label at all, a cost table of another
        task; binary labels other than 0/1, probabilities missing or outside [0, 1], decisions other than 0/1;
        multiclass a label or decision of a class the model was not trained on; regression labels that are not
        numbers, predictions NaN or infinite.
    """
    kind = get_task(task, "evaluate_interval")
    costs.check_for(kind, classes=classes)
    if task == "binary":
        return _binary(kind, labels, probabilities, predictions, threshold, costs)
    if task == "multiclass":
        return _multiclass(kind, labels, probabilities, predictions, classes, costs, label_column)
    return _regression(kind, labels, predictions, costs, label_column)


def _binary(
    task: Task, labels: Any, probabilities: Any, predictions: Any, threshold: float, costs: BusinessCosts
) -> IntervalPerformance:
    import numpy as np

    if probabilities is None:
        raise DataError("a binary interval is measured on its probabilities: none were given")
    labels = _as_array(labels, "labels")
    probabilities = _as_array(probabilities, "probabilities")
    predictions = (
        (probabilities >= threshold).astype("float64")
        if predictions is None
        else _as_array(predictions, "predictions")
    )
    rows = _same_lengths(labels=labels, probabilities=probabilities, predictions=predictions)
    labelled = ~np.isnan(labels)
    if not labelled.any():
        raise DataError(f"labels are missing for every one of the {rows} predictions: nothing to measure yet")
    _refuse_outside(probabilities, lambda v: (v >= 0) & (v <= 1), "probabilities", "outside [0, 1] or NaN")
    _refuse_outside(predictions, lambda v: (v == 0) | (v == 1), "predictions", "not 0 or 1")
    labels, probabilities, predictions = labels[labelled], probabilities[labelled], predictions[labelled]
    _refuse_outside(labels, lambda v: (v == 0) | (v == 1), "labels", "not 0, 1 or missing")

    computed = task.evaluate(labels, Predictions("binary", predictions, probabilities, (0, 1)))
    metrics: dict[str, float | None] = {
        name: computed[name] for name in live_metrics("binary") if name in computed
    }
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
    missed_positive = required(costs.missed_positive, "the binary cost table's missed_positive")
    false_alarm = required(costs.false_alarm, "the binary cost table's false_alarm")
    total = confusion.false_negatives * missed_positive + confusion.false_positives * false_alarm
    return IntervalPerformance(
        rows=rows,
        labelled_rows=len(labels),
        metrics=metrics,
        confusion=confusion,
        business_cost=BusinessCost(
            total=float(total),
            per_row=float(total) / len(labels),
            costs=costs,
            missed_positives=confusion.false_negatives,
            false_alarms=confusion.false_positives,
        ),
        notes=tuple(notes),
    )


def _multiclass(
    task: Task,
    labels: Any,
    probabilities: Any,
    predictions: Any,
    classes: Sequence[Any] | None,
    costs: BusinessCosts,
    label_column: str,
) -> IntervalPerformance:
    import numpy as np
    import pandas as pd

    known = tuple(plain_value(value) for value in classes or ())
    if len(known) < 2:
        raise DataError(
            f"a multiclass interval needs the model's classes (two or more), got {list(known)[:5]}"
        )
    if probabilities is None:
        raise DataError("a multiclass interval is measured on its class probabilities: none were given")
    probabilities = _as_array(probabilities, "probabilities")
    if probabilities.ndim != 2 or probabilities.shape[1] != len(known):
        raise DataError(
            f"probabilities must hold one column per class ({len(known)}), got shape {probabilities.shape}"
        )
    if predictions is None:
        predictions = np.asarray(known)[probabilities.argmax(axis=1)] if len(probabilities) else []
    decided = pd.Series(np.asarray(predictions, dtype=object)).infer_objects()
    rows = _same_lengths(labels=labels, probabilities=probabilities, predictions=decided)
    series, labelled = _labelled(labels, rows)
    in_range = ((probabilities >= 0) & (probabilities <= 1)).all(axis=1)
    if not in_range.all():
        raise DataError(f"{int((~in_range).sum())} rows of probabilities hold values outside [0, 1] or NaN")
    foreign = decided[~decided.isin(known)]
    if len(foreign):
        raise DataError(
            f"{len(foreign)} predictions are not among the model's classes {_clipped(known)} "
            f"(e.g. {_clipped(sorted(set(foreign), key=str))})"
        )
    values = task.target(series[labelled].infer_objects().reset_index(drop=True), label_column).to_numpy()
    decided_labelled = decided[labelled].to_numpy()
    computed = task.evaluate(
        values, Predictions("multiclass", decided_labelled, probabilities[labelled], known)
    )

    metrics: dict[str, float | None] = {}
    notes = []
    for name in live_metrics("multiclass", known):
        if _undefined(metrics, computed, name) and name.startswith(RECALL_PREFIX):
            notes.append(f"{name} is undefined: no labelled row is of class {name[len(RECALL_PREFIX) :]}")
    # Counted on class indices: scikit-learn's confusion_matrix sorts the (often text) labels, several times.
    size = len(known)
    true = pd.Categorical(values, categories=list(known)).codes.astype("int64")
    given = pd.Categorical(decided_labelled, categories=list(known)).codes.astype("int64")
    counts = np.bincount(true * size + given, minlength=size * size).reshape(size, size)
    confusion = ClassConfusion(known, tuple(tuple(int(count) for count in row) for row in counts))
    total = sum(
        int(count) * costs.misclassification_cost(known[i], known[j])
        for i, row in enumerate(counts)
        for j, count in enumerate(row)
        if i != j and count
    )
    return IntervalPerformance(
        rows=rows,
        labelled_rows=len(values),
        metrics=metrics,
        confusion=confusion,
        business_cost=BusinessCost(
            total=float(total),
            per_row=float(total) / len(values),
            costs=costs,
            misclassified=confusion.misclassified,
        ),
        notes=tuple(notes),
        task="multiclass",
        classes=known,
    )


def _regression(
    task: Task, labels: Any, predictions: Any, costs: BusinessCosts, label_column: str
) -> IntervalPerformance:
    import numpy as np

    if predictions is None:
        raise DataError("a regression interval is measured on its predictions: none were given")
    predicted = _as_array(predictions, "predictions")
    rows = _same_lengths(labels=labels, predictions=predicted)
    series, labelled = _labelled(labels, rows)
    _refuse_outside(predicted, np.isfinite, "predictions", "NaN or infinite")
    values = task.target(series[labelled].infer_objects().reset_index(drop=True), label_column).to_numpy()
    predicted = predicted[labelled]
    computed = task.evaluate(values, Predictions("regression", predicted))

    metrics: dict[str, float | None] = {}
    notes = []
    for name in live_metrics("regression"):
        if _undefined(metrics, computed, name):
            if name == "r2":
                why = (
                    "fewer than two labelled rows"
                    if len(values) < 2
                    else f"all {len(values)} labelled targets are {values[0]:g}"
                )
                notes.append(f"r2 is undefined: {why}")
            elif name == "mape":
                notes.append(f"mape is undefined: {int((values == 0).sum())} labelled target(s) are 0")
    error = predicted - values
    under, over = float(-error[error < 0].sum()), float(error[error > 0].sum())
    total = under * required(
        costs.under_prediction, "the regression cost table's under_prediction"
    ) + over * (required(costs.over_prediction, "the regression cost table's over_prediction"))
    return IntervalPerformance(
        rows=rows,
        labelled_rows=len(values),
        metrics=metrics,
        confusion=None,
        business_cost=BusinessCost(
            total=total,
            per_row=total / len(values),
            costs=costs,
            under_prediction_units=under,
            over_prediction_units=over,
        ),
        notes=tuple(notes),
        task="regression",
    )


def _clipped(values: Sequence[Any]) -> str:
    """A few values for an error message, each clipped (a bad column is named, not dumped)."""
    shown = [repr(value)[:40] for value in list(values)[:3]]
    return "[" + ", ".join(shown) + (", ..." if len(values) > 3 else "") + "]"
