"""Measuring one scored interval: its predictions joined with the labels that landed, the live metrics, the
business cost and the decay verdict. The workflow ``PerformanceMonitorOperator`` runs, callable without Airflow."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops_ops.core.errors import DataError
from mlops_ops.core.performance.costs import BusinessCosts
from mlops_ops.core.performance.decay import DecayRule, DecayVerdict
from mlops_ops.core.performance.labels import (
    check_prediction_columns,
    join_labels,
    read_labels,
    read_predictions,
    scored_task,
)
from mlops_ops.core.performance.metrics import IntervalPerformance, evaluate_interval

if TYPE_CHECKING:
    import pandas as pd

    from mlops_ops.core.modelspec import ModelSpec
    from mlops_ops.core.scoring import Interval
    from mlops_ops.core.storage import ObjectStore


@dataclass(frozen=True)
class MeasuredInterval:
    """What one interval says about the version that scored it.

    :param version: the model version that scored the interval (from its predictions).
    :param measured: live metrics, coverage and business cost on the labelled rows.
    :param verdict: the decay rule's verdict against the version's training-time metrics.
    """

    version: str
    measured: IntervalPerformance
    verdict: DecayVerdict


def scored_version(
    predictions: pd.DataFrame, metadata: dict[str, Any], interval: Interval, uri: str, model_name: str
) -> str:
    """The one version whose predictions the partition at ``uri`` holds.

    :raises DataError: when the partition belongs to another model or interval, or holds several versions.
    """
    if metadata.get("model_name") not in (None, model_name):
        raise DataError(f"{uri} holds predictions of {metadata['model_name']!r}, not {model_name!r}")
    if metadata.get("interval") not in (None, interval.to_dict()):
        raise DataError(
            f"{uri} holds predictions of interval {metadata['interval']}, not {interval.to_dict()}"
        )
    versions = sorted({str(value) for value in predictions["model_version"].unique()})
    if len(versions) != 1:
        raise DataError(f"{uri} holds predictions of versions {versions}: one interval, one version")
    return versions[0]


def measure_interval(
    *,
    predictions_uri: str,
    labels_source: str,
    interval: Interval,
    model_name: str,
    spec: ModelSpec,
    rule: DecayRule,
    costs: BusinessCosts,
    key_columns: Sequence[str],
    time_column: str,
    training_metrics_of: Callable[[str], dict[str, float]],
    object_store: ObjectStore | None = None,
) -> MeasuredInterval:
    """Read the interval's predictions and its labels, join them, measure and judge, for the spec's task.

    The task and classes of the model that scored the interval are read from the partition's metadata (a
    partition without a task is binary); the rule and the costs are checked against them before any label is
    read.

    :param predictions_uri: the interval's published partition.
    :param labels_source: where the labels land (file or folder; ``prepare`` derives the target).
    :param training_metrics_of: the training run's metrics of a version (``{name: value}``), e.g. the
        ``holdout_*`` metrics of the run its signed registration names.
    :raises DataError: on predictions or labels that cannot be measured (a partition scored for another task
        than the spec's, nothing joined, no label, values out of range, a class the model does not know), or a
        rule or cost table that does not fit the task; ``LookupError`` when the version's training metrics
        cannot be found.
    """
    from mlops_ops.core.modelspec import load_callable

    prepare = load_callable(spec.prepare) if spec.prepare else None
    predictions, metadata = read_predictions(predictions_uri, object_store)
    version = scored_version(predictions, metadata, interval, predictions_uri, model_name)
    scored = scored_task(metadata, predictions_uri)
    task, classes = scored.task, scored.classes
    if task != spec.task:
        which = f"a {task} model" + (
            "" if "task" in metadata else " (its metadata names no task: it was scored before tasks existed)"
        )
        raise DataError(
            f"{predictions_uri} holds the predictions of {which}, but the model spec of {model_name!r} declares "
            f"task {spec.task!r}: score the interval with a model of the spec's task, or measure it with the "
            "spec it was trained from"
        )
    origin = f"of {task} model {model_name!r}"
    rule.check_for(spec.prediction_task, f"the decay rule {origin}", classes)
    costs.check_for(spec.prediction_task, f"the business costs {origin}", classes)
    columns = check_prediction_columns(predictions, task, classes, predictions_uri)
    labels = read_labels(
        labels_source,
        interval,
        key_columns=list(key_columns),
        time_column=time_column,
        target=spec.target,
        prepare=prepare,
        object_store=object_store,
        task=task,
    )
    joined = join_labels(predictions, labels, list(key_columns), spec.target, task)
    # The columns after ``prediction``: binary ``probability``, multiclass ``probability_<class>`` per class.
    probabilities: Any = None
    if task == "binary":
        probabilities = joined["probability"]
    elif task == "multiclass":
        probabilities = joined[columns[1:]]
    measured = evaluate_interval(
        joined[spec.target],
        probabilities,
        predictions=joined["prediction"],
        costs=costs,
        task=task,
        classes=classes,
        label_column=spec.target,
    )
    verdict = rule.judge(measured, rule.training_metrics(training_metrics_of(version)))
    return MeasuredInterval(version=version, measured=measured, verdict=verdict)
