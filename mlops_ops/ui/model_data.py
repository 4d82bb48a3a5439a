"""Read what the Models view charts of one registered model from the registry, the signed alias log, the drift
results and Airflow's retrain-request events; :func:`mlops_ops.ui.model_charts.chart_data` shapes it.

A handful of registry calls per page, whatever the number of versions: one search of versions, one of training
runs, one of monitoring runs, and the monitoring runs' metric histories read in parallel.
"""

from __future__ import annotations

import json
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

from mlops_ops.core import lineage
from mlops_ops.core.promotion import AliasMove
from mlops_ops.ui import model_charts
from mlops_ops.ui.model_charts import (
    IntervalDrift,
    MetricPoint,
    MonitoringTimeline,
    RetrainRequest,
    VersionFigures,
)

log = logging.getLogger(__name__)

#: At most this many versions and monitoring runs are read (newest first).
MAX_VERSIONS = 200
#: Parallel metric-history reads (each one registry request).
HISTORY_WORKERS = 8
DRIFT_TAGS = "mlops.drift."
PERFORMANCE_TAGS = "mlops.performance."
_DECAY_LIMIT = re.compile(r"^(?P<metric>\S+) \S+ \(must be (?P<op><=|>=) (?P<value>[0-9.eE+-]+)\)$")
_PLOTTED = re.compile(
    r"^(drift\.share|drift\..+\.score|drift\.current_rows|rows|labelled_rows|business_cost_per_row|"
    r"business_cost_total|predicted_positive_rate|positive_rate|mean_prediction|mean_target|"
    r"prediction\.(mean|p10|p50|p90)|prediction\.share\..+|observed_share\..+|roc_auc|accuracy|f1|precision|"
    r"recall|brier_score|log_loss|f1_macro|f1_weighted|rmse|mae|r2|mape)$"
)


def _task_of(runs: list[Any], holdout: list[str]) -> str:
    """The model's task: its newest training run's recorded model spec, else guessed from its metrics."""
    for run in runs:
        spec = run.data.tags.get(lineage.MODEL_SPEC)
        if spec:
            try:
                task = json.loads(spec).get("task")
            except (ValueError, AttributeError):
                continue
            if task in model_charts.PERFORMANCE_METRICS:
                return str(task)
    return model_charts.infer_task(holdout)


def decay_limits(limits: str | None, reasons: str | None = None) -> list[dict[str, Any]]:
    """Every floor and ceiling of the latest decay verdict (``mlops.performance.limits``, kept or broken, a
    ``max_drop`` as the limit it sets under the training value); a version tagged before that tag existed gives
    only the limits its broken checks name (``mlops.performance.reasons``)."""
    try:
        found = json.loads(limits) if limits else None
    except ValueError:
        found = None
    if not isinstance(found, list):
        return decay_thresholds(reasons)
    checked = []
    for limit in found:
        if not isinstance(limit, dict) or limit.get("kind") not in ("floor", "ceiling"):
            continue
        value = model_charts._finite(limit.get("value"))
        if isinstance(limit.get("metric"), str) and value is not None:
            checked.append({"metric": limit["metric"], "kind": limit["kind"], "value": value})
    return checked


def decay_thresholds(reasons: str | None) -> list[dict[str, Any]]:
    """The floors and ceilings a decay verdict's reasons (``mlops.performance.reasons``) name."""
    try:
        lines = json.loads(reasons or "[]")
    except ValueError:
        return []
    found = []
    for line in lines if isinstance(lines, list) else []:
        match = _DECAY_LIMIT.match(str(line))
        if match:
            kind = "floor" if match.group("op") == ">=" else "ceiling"
            found.append(
                {"metric": match.group("metric"), "kind": kind, "value": float(match.group("value"))}
            )
    return found


def _gate_policy(hook: Any, runs: list[Any]) -> dict[str, Any] | None:
    """The policy of the newest gate decision (``gate/decision.json`` of the newest gated training run)."""
    for run in runs:
        if lineage.GATE_PASSED in run.data.tags:
            decision = hook.load_run_json(run.info.run_id, "gate/decision.json")
            policy = decision.get("policy") if isinstance(decision, dict) else None
            return policy if isinstance(policy, dict) else None
    return None


def _timeline(hook: Any, run: Any) -> MonitoringTimeline:
    names = [name for name in run.data.metrics if _PLOTTED.match(name)]

    def history(name: str) -> tuple[str, list[MetricPoint]]:
        points = hook.get_metric_history(run.info.run_id, name)
        return name, [
            MetricPoint(int(point.step), int(point.timestamp), float(point.value)) for point in points
        ]

    with ThreadPoolExecutor(max_workers=HISTORY_WORKERS) as pool:
        histories = dict(pool.map(history, names))
    ui = hook.ui_url
    reports: dict[str, str] = {}
    if ui:
        base = (
            f"{ui}/#/experiments/{quote(run.info.experiment_id, safe='')}/runs/"
            f"{quote(run.info.run_id, safe='')}/artifacts/"
        )
        for point in histories.get(model_charts.DRIFT_SHARE, []):
            key = model_charts.interval_key(*model_charts.interval_of(point))
            reports[key] = base + quote(f"drift/interval={key}/drift_report.html", safe="/")
    return MonitoringTimeline(
        version=str(run.data.tags.get("mlops.monitoring.model_version", "")),
        histories=histories,
        run_url=hook.run_url(run.info.run_id),
        report_urls=reports,
    )


def interval_drift_results(
    report_uri: str | None, versions: dict[str, list[str]], storage_conn_id: str | None = "aws_default"
) -> dict[str, IntervalDrift]:
    """Drifted columns, new categories and the checking Airflow run of each interval, from the drift result
    files beside the latest report (``<root>/model=<name>/interval=<key>/drift_v<version>.json``), in a local
    folder or an object store (read through ``storage_conn_id``, a few files at a time).

    A store that cannot be reached, or a connection that cannot reach it, leaves the intervals without these
    facts (the page still draws the drift scores MLflow holds); it is not retried within one page.

    :param report_uri: the latest drift verdict's ``report_uri`` tag.
    :param versions: interval key -> the versions whose timelines have it (newest last).
    :param storage_conn_id: the connection of an object-store report root.
    """
    import posixpath
    import threading

    from mlops_ops.core import storage

    if not report_uri or not versions:
        return {}
    try:
        object_store = None
        if storage.is_remote(report_uri):
            from mlops_ops.hooks.object_storage import object_store_for

            object_store = object_store_for(report_uri, storage_conn_id)
        filesystem, report_path = storage.resolve(report_uri, object_store)
    except Exception as err:  # the page is drawn without these facts, whatever the connection's problem
        log.warning("drift results beside %s not read: %s", report_uri, err)
        return {}
    model_folder = posixpath.dirname(posixpath.dirname(report_path))
    unreachable = threading.Event()

    def newest_result(item: tuple[str, list[str]]) -> tuple[str, dict[str, Any] | None]:
        key, numbers = item
        for number in reversed(numbers):
            if unreachable.is_set():
                break
            try:
                with filesystem.open_input_stream(
                    f"{model_folder}/interval={key}/drift_v{number}.json"
                ) as stream:
                    return key, json.loads(stream.read())
            except (FileNotFoundError, ValueError):  # not checked with that version, or not a result file
                continue
            except OSError as err:  # the store, not the file: stop asking it
                log.warning("drift results under %s not read: %s", model_folder, err)
                unreachable.set()
        return key, None

    items = list(versions.items())
    # The first interval alone: a store that does not answer is asked once, not once per interval.
    results = [newest_result(items[0])]
    if not unreachable.is_set():
        with ThreadPoolExecutor(max_workers=8 if object_store is not None else 1) as pool:
            results += pool.map(newest_result, items[1:])
    found = {}
    for key, result in results:
        if not isinstance(result, dict):
            continue
        found[key] = IntervalDrift(
            airflow_run=result.get("airflow_run") if isinstance(result.get("airflow_run"), str) else None,
            drifted_columns=tuple(
                column["column"] for column in result.get("columns", []) if column.get("drifted")
            ),
            new_categories={
                str(column): [str(value) for value in values]
                for column, values in (result.get("new_categories") or {}).items()
            },
        )
    return found


def _retrain_requests(model_name: str) -> list[RetrainRequest]:
    """Events of the model's retrain-request asset in Airflow's database (empty where it cannot be read)."""
    try:
        from airflow.models.asset import AssetEvent, AssetModel
        from airflow.utils.session import create_session
        from sqlalchemy import select

        uri = f"x-mlops://retrain-requests/{model_name}"
        with create_session() as session:
            events = session.execute(
                select(AssetEvent)
                .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                .where(AssetModel.uri == uri)
                .order_by(AssetEvent.timestamp)
                .limit(1000)
            ).scalars()
            return [
                RetrainRequest(
                    at=event.timestamp.isoformat(),
                    reason=str((event.extra or {}).get("reason", "")),
                    source=f"{event.source_dag_id or ''}/{event.source_run_id or ''}".strip("/"),
                )
                for event in events
            ]
    except Exception as err:  # the view still draws everything else
        log.info("Retrain requests of %s not read: %s", model_name, err)
        return []


def gather(
    hook: Any, model_name: str, trust: Any = None, storage_conn_id: str | None = "aws_default"
) -> dict[str, Any]:
    """Everything the model's page charts (:func:`model_charts.chart_data`).

    :param hook: an :class:`~mlops_ops.hooks.mlflow.MlflowHook`.
    :param trust: a :class:`~mlops_ops.hooks.trust.TrustHook`; the alias timeline is its signed log.
    :param storage_conn_id: the connection of an object-store drift report root.
    :raises LookupError: no registered model of that name.
    """
    from mlops_ops.core import model_overview

    model = hook.get_registered_model(model_name)
    aliases = {alias: str(number) for alias, number in (model.aliases or {}).items()}
    versions = hook.search_versions(model_name.replace(chr(39), ""), max_results=MAX_VERSIONS)
    run_ids = [version.run_id for version in versions if version.run_id]

    runs = hook.experiment_runs(model_name) if run_ids else []
    by_id = {run.info.run_id: run for run in runs}
    for run_id in run_ids:
        if run_id not in by_id:  # trained in another experiment
            run = hook.get_run_if_any(run_id)
            if run is not None:
                by_id[run_id] = run

    figures = []
    for version in versions:
        run = by_id.get(version.run_id or "")
        metrics = run.data.metrics if run else {}
        tags = run.data.tags if run else {}
        dag, airflow_run = tags.get(lineage.DAG_ID), tags.get(lineage.RUN_ID)
        figures.append(
            VersionFigures(
                version=str(version.version),
                created_ms=int(version.creation_timestamp or 0),
                metrics={
                    name[len(model_charts.HOLDOUT_PREFIX) :]: value
                    for name, value in metrics.items()
                    if name.startswith(model_charts.HOLDOUT_PREFIX)
                    and not name.startswith(("holdout_fraction", "holdout_time"))
                },
                run_url=hook.run_url(version.run_id) if version.run_id else None,
                version_url=hook.model_version_url(model_name, str(version.version)),
                airflow_run=f"{dag}/{airflow_run}" if dag and airflow_run else None,
                trigger_reason=(version.tags or {}).get(lineage.TRIGGER_REASON)
                or tags.get(lineage.TRIGGER_REASON),
                gate_passed=(version.tags or {}).get(lineage.GATE_PASSED),
            )
        )
    holdout = sorted({name for item in figures for name in item.metrics})
    task = _task_of([by_id[run_id] for run_id in run_ids if run_id in by_id], holdout)

    monitoring_runs = hook.experiment_runs(
        f"{model_name}-monitoring", {"mlops.monitoring.model": model_name}, max_results=MAX_VERSIONS
    )
    timelines = [_timeline(hook, run) for run in monitoring_runs]

    # The latest drift and decay verdicts are version tags: the champion's, else the newest version's.
    newest_tags = [dict(version.tags or {}) for version in versions]
    champion = next((v for v in versions if str(v.version) == aliases.get("champion")), None)
    ordered_tags = ([dict(champion.tags or {})] if champion else []) + newest_tags
    drift_tags = next((tags for tags in ordered_tags if DRIFT_TAGS + "summary" in tags), {})
    decay_tags = next((tags for tags in ordered_tags if PERFORMANCE_TAGS + "reasons" in tags), {})

    covered: dict[str, list[str]] = {}
    for timeline in sorted(timelines, key=lambda line: int(line.version) if line.version.isdigit() else 0):
        for point in timeline.histories.get(model_charts.DRIFT_SHARE, []):
            covered.setdefault(model_charts.interval_key(*model_charts.interval_of(point)), []).append(
                timeline.version
            )

    moves, untrusted = _moves(hook, model_name, aliases, trust, model_overview)
    return model_charts.chart_data(
        name=model_name,
        task=task,
        versions=figures,
        aliases=aliases,
        gate_policy=_gate_policy(hook, runs),
        timelines=timelines,
        interval_drift=interval_drift_results(
            drift_tags.get(DRIFT_TAGS + "report_uri"), covered, storage_conn_id
        ),
        drift_summary=drift_tags.get(DRIFT_TAGS + "summary"),
        decay_thresholds=decay_limits(
            decay_tags.get(PERFORMANCE_TAGS + "limits"), decay_tags.get(PERFORMANCE_TAGS + "reasons")
        ),
        moves=moves,
        untrusted=untrusted,
        requests=_retrain_requests(model_name),
        model_url=hook.model_url(model_name),
    )


def _moves(
    hook: Any, model_name: str, aliases: dict[str, str], trust: Any, model_overview: Any
) -> tuple[list[AliasMove], dict[str, str]]:
    """The alias moves of the signed log (the registry's history tags only without a trust hook), and each
    alias whose registry pointer the log does not name."""
    if trust is None:
        return model_overview.alias_history(hook.get_model_tags(model_name)), {}
    moves: list[AliasMove] = []
    untrusted: dict[str, str] = {}
    for alias in sorted(set(aliases) | set(model_overview.SHOWN_ALIASES)):
        try:
            logged = [AliasMove(**record.as_move()) for record in trust.alias_history(model_name, alias)]
        except Exception as err:  # a log that does not verify marks the alias, not the page
            untrusted[alias] = f"the signed alias log does not verify: {str(err)[:160]}"
            continue
        moves.extend(logged)
        if alias in aliases:
            why = model_overview.alias_trust(aliases[alias], logged)
            if why:
                untrusted[alias] = why
    return moves, untrusted


def sparklines(hook: Any, model_names: list[str], points: int = 60) -> dict[str, list[float | None]]:
    """Each model's drift share over its last ``points`` scored intervals (the overview's sparklines): the newest
    monitoring run that has a drift share, else an empty list."""
    found: dict[str, list[float | None]] = {}
    for name in model_names:
        found[name] = []
        try:
            runs = hook.experiment_runs(
                f"{name}-monitoring", {"mlops.monitoring.model": name}, max_results=20
            )
            run = next((run for run in runs if model_charts.DRIFT_SHARE in run.data.metrics), None)
            if run is None:
                continue
            history = sorted(
                hook.get_metric_history(run.info.run_id, model_charts.DRIFT_SHARE),
                key=lambda point: point.step,
            )
            found[name] = [model_charts._finite(point.value) for point in history[-points:]]
        except Exception as err:  # one model's unreadable monitoring leaves its sparkline empty, not the page
            log.info("No sparkline for %s: %s", name, err)
    return found
