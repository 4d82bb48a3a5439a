"""The figures of one registered model as the Models view charts them: pure, no I/O.

:mod:`mlops_ops.ui.model_data` reads the registry (versions, their training runs' held-out metrics, the
monitoring runs' per-interval timelines, the signed alias log, retrain requests); :func:`chart_data` turns those
plain values into one JSON-safe dict that the page's script hands to Apache ECharts. Every text in it is data, not
markup: the page's script escapes it before any tooltip shows it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from mlops_ops.core.promotion import AliasMove

#: Held-out metrics of a training run are its ``holdout_<metric>`` metrics.
HOLDOUT_PREFIX = "holdout_"
#: Per-interval drift metrics of a monitoring run (:class:`~mlops_ops.operators.drift.DriftCheckOperator`).
DRIFT_SHARE = "drift.share"
DRIFT_COLUMN = re.compile(r"^drift\.(?P<column>.+)\.score$")
#: What each task's live performance chart draws, and how its predictions are summarised per interval.
PERFORMANCE_METRICS = {
    "binary": ("roc_auc", "accuracy", "f1", "precision", "recall", "brier_score", "log_loss"),
    "multiclass": ("accuracy", "f1_macro", "f1_weighted", "log_loss"),
    "regression": ("rmse", "mae", "r2", "mape"),
}
#: The drift check logs the interval's prediction distribution as soon as it is scored (``prediction.*``); the
#: performance check adds what the labels show once they arrive (observed rate, mean target, class shares).
DISTRIBUTION_METRICS = {
    "binary": ("prediction.mean", "predicted_positive_rate", "positive_rate"),
    "regression": (
        "prediction.p10",
        "prediction.p50",
        "prediction.p90",
        "prediction.mean",
        "mean_prediction",
        "mean_target",
    ),
}
#: A multiclass model's class mix: the share of each class among the predictions and among the labels.
CLASS_SHARES = re.compile(r"^(prediction\.share|observed_share)\.(?P<label>.+)$")
#: Rows scored in an interval: the performance check's count of predictions, else the drift check's window.
SCORED_ROWS = ("rows", "drift.current_rows")
_SUMMARY_THRESHOLD = re.compile(r"threshold (?P<value>[0-9.eE+-]+)\)")


@dataclass(frozen=True)
class VersionFigures:
    """One version: its held-out metrics and where it came from.

    :param metrics: the training run's ``holdout_<metric>`` metrics, keyed without the prefix.
    :param airflow_run: ``dag_id/run_id`` of the Airflow run that trained it, if recorded.
    """

    version: str
    created_ms: int
    metrics: dict[str, float]
    run_url: str | None = None
    version_url: str | None = None
    airflow_run: str | None = None
    trigger_reason: str | None = None
    gate_passed: str | None = None


@dataclass(frozen=True)
class MetricPoint:
    """One point of a monitoring run's metric history: the interval's step and its end (epoch ms)."""

    step: int
    end_ms: int
    value: float


@dataclass(frozen=True)
class MonitoringTimeline:
    """The monitoring run of one version: every metric's points, and links."""

    version: str
    histories: dict[str, list[MetricPoint]]
    run_url: str | None = None
    #: ``{interval key}`` -> URL of the interval's Evidently report (an artifact of the monitoring run).
    report_urls: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class IntervalDrift:
    """What an interval's drift result file says beyond its metrics: drifted columns, new categories and the
    Airflow run (``dag_id/run_id``) that checked it."""

    drifted_columns: tuple[str, ...]
    new_categories: dict[str, list[str]]
    airflow_run: str | None = None


@dataclass(frozen=True)
class RetrainRequest:
    """A request to retrain the model (an event of its retrain-request asset)."""

    at: str
    reason: str
    source: str = ""


def interval_of(point: MetricPoint) -> tuple[datetime, datetime]:
    """The interval a point was logged for: its step is the interval's index since the epoch, its timestamp the
    interval's end (``interval_step``), so the length is ``end / (step + 1)``."""
    end = datetime.fromtimestamp(point.end_ms / 1000, tz=UTC)
    length = timedelta(milliseconds=point.end_ms / (point.step + 1)) if point.step >= 0 else timedelta(0)
    return end - length, end


def interval_key(start: datetime, end: datetime) -> str:
    """The partition name of an interval, as :attr:`Interval.key` writes it."""
    return f"{start:%Y%m%dT%H%MZ}_{end:%Y%m%dT%H%MZ}"


def infer_task(metric_names: Sequence[str]) -> str:
    """The task of a model whose spec is unknown, from the metrics it has."""
    names = set(metric_names)
    if names & {"rmse", "mae", "r2"}:
        return "regression"
    if names & {"f1_macro", "f1_weighted"}:
        return "multiclass"
    return "binary"


def drift_threshold(summary: str | None) -> float | None:
    """The dataset drift share threshold named in a drift verdict's summary (``... threshold 0.5)``)."""
    match = _SUMMARY_THRESHOLD.search(summary or "")
    return float(match.group("value")) if match else None


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _web(url: str | None) -> str | None:
    """Only http(s) URLs and same-host paths become links (a tag could hold ``javascript:``)."""
    if url and (
        url.startswith(("http://", "https://")) or (url.startswith("/") and not url.startswith("//"))
    ):
        return url
    return None


def _rated(task: str, metric: str) -> bool:
    """Whether ``metric`` is one of ``task``'s metrics with a direction (any task's, for an unknown task)."""
    from mlops_ops.core.tasks import TASKS

    tasks = [TASKS[task]] if task in TASKS else list(TASKS.values())
    return any(metric in known.metrics() or known._per_class_metric(metric) is not None for known in tasks)


def airflow_run_path(airflow_run: str | None) -> str | None:
    """The Airflow UI's path of ``dag_id/run_id`` (same host as the view)."""
    from urllib.parse import quote

    if not airflow_run or "/" not in airflow_run:
        return None
    dag_id, run_id = airflow_run.split("/", 1)
    return f"/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def chart_data(
    name: str,
    task: str,
    versions: Sequence[VersionFigures],
    aliases: Mapping[str, str],
    gate_policy: Mapping[str, Any] | None,
    timelines: Sequence[MonitoringTimeline],
    interval_drift: Mapping[str, IntervalDrift],
    drift_summary: str | None,
    decay_thresholds: Sequence[Mapping[str, Any]],
    moves: Sequence[AliasMove],
    untrusted: Mapping[str, str],
    requests: Sequence[RetrainRequest],
    model_url: str | None = None,
) -> dict[str, Any]:
    """Everything the model's page charts, JSON-safe.

    :param versions: every version, any order (sorted here by number).
    :param aliases: alias -> version, as the registry says.
    :param gate_policy: the latest gate decision's policy (``min_metrics``/``max_metrics``), or ``None``.
    :param timelines: one per monitoring run; a later version's point wins an interval both scored.
    :param interval_drift: interval key -> its drift result file's columns and new categories.
    :param drift_summary: the latest drift verdict's summary (it names the share threshold).
    :param decay_thresholds: thresholds named by the latest decay verdict (``{"metric", "kind", "threshold"}``).
    :param moves: the signed alias log's moves, any order.
    :param untrusted: alias -> why the registry's pointer is not the signed log's (out-of-band move).
    :param requests: retrain requests, any order.
    """
    ordered = sorted(versions, key=lambda figures: int(figures.version) if figures.version.isdigit() else 0)
    # Only the task's metrics with a direction (not descriptive ones such as the holdout's row count).
    holdout_names = sorted(
        {metric for figures in ordered for metric in figures.metrics if _rated(task, metric)}
    )
    thresholds = []
    for section, kind in (("min_metrics", "floor"), ("max_metrics", "ceiling")):
        for metric, value in ((gate_policy or {}).get(section) or {}).items():
            if metric in holdout_names and _finite(value) is not None:
                thresholds.append({"metric": metric, "kind": kind, "value": _finite(value)})

    # One row per interval, ordered by its start; the newest version's point wins an interval scored twice.
    rows: dict[int, dict[str, Any]] = {}
    for timeline in sorted(timelines, key=lambda line: int(line.version) if line.version.isdigit() else 0):
        for metric, points in timeline.histories.items():
            for point in points:
                start, end = interval_of(point)
                key = interval_key(start, end)
                row = rows.setdefault(
                    point.end_ms,
                    {"key": key, "start": start.isoformat(), "end": end.isoformat(), "values": {}},
                )
                row["version"] = timeline.version
                row["monitoring_url"] = _web(timeline.run_url)
                row["report_url"] = _web(timeline.report_urls.get(key))
                row["values"][metric] = _finite(point.value)
    intervals = [rows[end] for end in sorted(rows)]

    def series(metric: str) -> list[float | None]:
        return [row["values"].get(metric) for row in intervals]

    columns = sorted(
        {
            match.group("column")
            for row in intervals
            for key in row["values"]
            if (match := DRIFT_COLUMN.match(key))
        }
    )
    drift_counts = {column: 0 for column in columns}
    new_categories: dict[str, set[str]] = {}
    for row in intervals:
        found = interval_drift.get(row["key"])
        if found is None:
            continue
        for column in found.drifted_columns:
            if column in drift_counts:
                drift_counts[column] += 1
        for column, values in found.new_categories.items():
            new_categories.setdefault(column, set()).update(values)
    columns.sort(key=lambda column: (-drift_counts[column], column))
    heat = [
        [index, position, value]
        for index, row in enumerate(intervals)
        for position, column in enumerate(columns)
        if (value := row["values"].get(f"drift.{column}.score")) is not None
    ]
    drifted_cells = [
        [index, columns.index(column)]
        for index, row in enumerate(intervals)
        for column in (interval_drift[row["key"]].drifted_columns if row["key"] in interval_drift else ())
        if column in drift_counts
    ]

    performance = [metric for metric in PERFORMANCE_METRICS.get(task, ()) if any(series(metric))]
    recorded = {metric for row in intervals for metric in row["values"]}
    if task == "multiclass":
        # Predicted shares first, each class's observed share after; classes in name order.
        shares = [
            (match.group(1), match.group("label"), m) for m in recorded if (match := CLASS_SHARES.match(m))
        ]
        distribution = [
            m for _, _, m in sorted(shares, key=lambda item: (item[0] != "prediction.share", item[1]))
        ]
    else:
        distribution = [metric for metric in DISTRIBUTION_METRICS.get(task, ()) if metric in recorded]
    distribution = [metric for metric in distribution if any(v is not None for v in series(metric))]
    scored_rows = [
        next((row["values"][name] for name in SCORED_ROWS if row["values"].get(name) is not None), None)
        for row in intervals
    ]
    out_of_band = [
        {"alias": alias, "version": aliases.get(alias), "why": why}
        for alias, why in sorted(untrusted.items())
        if why
    ]
    return {
        "model": name,
        "task": task,
        "model_url": _web(model_url),
        "aliases": dict(aliases),
        "versions": [
            {
                "version": figures.version,
                "created": datetime.fromtimestamp(figures.created_ms / 1000, tz=UTC).isoformat()
                if figures.created_ms
                else None,
                "metrics": {metric: _finite(value) for metric, value in figures.metrics.items()},
                "aliases": sorted(alias for alias, number in aliases.items() if number == figures.version),
                "run_url": _web(figures.run_url),
                "version_url": _web(figures.version_url),
                "airflow_url": airflow_run_path(figures.airflow_run),
                "trigger_reason": figures.trigger_reason,
                "gate_passed": figures.gate_passed,
            }
            for figures in ordered
        ],
        "holdout": {"metrics": holdout_names, "thresholds": thresholds},
        "intervals": [
            {
                **{
                    key: row.get(key)
                    for key in ("key", "start", "end", "version", "monitoring_url", "report_url")
                },
                "airflow_url": airflow_run_path(
                    interval_drift[row["key"]].airflow_run if row["key"] in interval_drift else None
                ),
            }
            for row in intervals
        ],
        "drift": {
            "share": series(DRIFT_SHARE),
            "threshold": drift_threshold(drift_summary),
            "columns": columns,
            "drift_counts": [drift_counts[column] for column in columns],
            "counted_intervals": sum(1 for row in intervals if row["key"] in interval_drift),
            "scores": heat,
            "drifted_cells": drifted_cells,
            "new_categories": {column: sorted(values) for column, values in sorted(new_categories.items())},
        },
        "volume": {"rows": scored_rows, "labelled_rows": series("labelled_rows")},
        "distribution": {
            "metrics": distribution,
            "values": {metric: series(metric) for metric in distribution},
        },
        "performance": {
            "metrics": performance,
            "values": {metric: series(metric) for metric in performance},
            "thresholds": [
                dict(threshold) for threshold in decay_thresholds if threshold.get("metric") in performance
            ],
        },
        "cost": {"per_row": series("business_cost_per_row"), "total": series("business_cost_total")},
        "moves": [
            {
                "at": move.at,
                "alias": move.alias,
                "kind": move.kind,
                "from": move.from_version,
                "to": move.to_version,
                "actor": move.actor,
                "reason": move.reason,
                "airflow_url": airflow_run_path(move.airflow_run),
            }
            for move in sorted(moves, key=lambda move: (move.at, move.sequence))
        ],
        "out_of_band": out_of_band,
        "requests": [
            {"at": request.at, "reason": request.reason, "source": request.source}
            for request in sorted(requests, key=lambda request: request.at)
        ],
    }
