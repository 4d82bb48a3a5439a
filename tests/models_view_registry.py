"""A registry as the lifecycle DAGs leave it after months, built directly (seconds, not hours of DAG runs): the
Models view's charts read it. Versions with held-out metrics and lineage, a gate decision with its policy, signed
alias moves, monitoring runs with a drift and performance point per daily interval, drift result files, and
retrain-request asset events in Airflow's database.

The values follow the operators' own names (``holdout_<metric>``, ``drift.<column>.score``, ``mlops.drift.*`` and
``mlops.performance.*`` tags, ``gate/decision.json``, ``<report root>/model=<m>/interval=<key>/drift_v<n>.json``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mlops_ops.core import lineage
from mlops_ops.hooks.trust import TrustHook

DAY_MS = 86_400_000
FIRST_DAY = datetime(2013, 1, 1, tzinfo=UTC)
LONG_COLUMN = "rolling_carrier_route_delay_rate_over_the_last_thirty_days_by_origin_and_destination"
COLUMNS = {
    "binary": ["origin", "carrier", "temp", "wind_speed", "visib", "distance", "sched_dep_hour", LONG_COLUMN],
    "regression": ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"],
}
HOLDOUT = {
    "binary": {"roc_auc": 0.68, "accuracy": 0.79, "f1": 0.41, "log_loss": 0.47},
    "regression": {"rmse": 55.0, "mae": 44.0, "r2": 0.45},
}
POLICY = {
    "binary": {"min_metrics": {"roc_auc": 0.66}, "max_metrics": {"log_loss": 0.5}},
    "regression": {"min_metrics": {"r2": 0.35}, "max_metrics": {"rmse": 60.0}},
}
DECAY_REASONS = {
    "binary": ["roc_auc 0.6410 (must be >= 0.6500)"],
    "regression": ["rmse 63.1000 (must be <= 62.0000)"],
}
#: Every limit of the latest decay verdict, kept or broken (``DecayVerdict.limits``): a floor, and a max_drop
#: as the limit it sets under the training value.
DECAY_LIMITS = {
    "binary": [
        {"metric": "roc_auc", "kind": "floor", "value": 0.65},
        {"metric": "accuracy", "kind": "floor", "value": 0.72, "max_drop": 0.07},
    ],
    "regression": [
        {"metric": "rmse", "kind": "ceiling", "value": 62.0},
        {"metric": "r2", "kind": "floor", "value": 0.3, "max_drop": 0.15},
    ],
}
#: Intervals at the end whose labels have not arrived yet.
UNLABELLED_TAIL = 5


@dataclass(frozen=True)
class BuiltModel:
    name: str
    task: str
    versions: int
    intervals: int
    champion: str
    challenger: str
    moves: int
    columns: list[str]
    scored_by: dict[str, list[int]]


def interval_key(step: int) -> str:
    start = FIRST_DAY + timedelta(days=step)
    return f"{start:%Y%m%dT%H%MZ}_{start + timedelta(days=1):%Y%m%dT%H%MZ}"


def _step(index: int) -> int:
    return int((FIRST_DAY - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(days=1)) + index


def build_model(
    hook,
    name: str,
    task: str,
    *,
    versions: int,
    intervals: int,
    report_root: Path,
    monitored_versions: int = 4,
    out_of_band_challenger: bool = False,
) -> BuiltModel:
    """Register ``versions`` versions of ``name`` and ``intervals`` daily monitored intervals."""
    from mlflow.entities import Metric

    client = hook.client
    trust = TrustHook()
    experiment = hook.get_or_create_experiment(name)
    hook.ensure_registered_model(name)
    spec = json.dumps({"name": name, "task": task})
    run_ids = []
    for number in range(1, versions + 1):
        run = client.create_run(experiment)
        run_id = run.info.run_id
        drift = 0.01 * math.sin(number)
        metrics = {
            f"holdout_{metric}": value
            + (drift if metric in ("roc_auc", "accuracy", "f1", "r2") else -drift * 10)
            for metric, value in HOLDOUT[task].items()
        }
        client.log_batch(
            run_id,
            metrics=[Metric(key, value, 0, 0) for key, value in metrics.items()],
            tags=[],
        )
        for key, value in {
            lineage.MODEL_SPEC: spec,
            lineage.DAG_ID: "retrain",
            lineage.RUN_ID: f"manual__2013-{1 + number % 12:02d}-01T00:00:00+00:00",
            lineage.GATE_PASSED: "true" if number % 7 else "false",
            lineage.GATE_SUMMARY: "gate passed against champion v1",
            lineage.TRIGGER_REASON: f"retrain request: drift of <b>origin</b> & carrier, round {number}",
        }.items():
            client.set_tag(run_id, key, value)
        client.set_terminated(run_id)
        run_ids.append(run_id)
        version = client.create_model_version(name, f"runs:/{run_id}/model", run_id=run_id)
        client.set_model_version_tag(
            name, version.version, lineage.GATE_PASSED, "true" if number % 7 else "false"
        )
        client.set_model_version_tag(
            name,
            version.version,
            lineage.TRIGGER_REASON,
            f"retrain request: drift of <b>origin</b>, round {number}",
        )
    hook.log_json(run_ids[-1], {"passed": True, "policy": POLICY[task]}, "gate/decision.json")

    # The signed alias log: each version registered as challenger, every third promoted, one rollback, one force.
    moves = 0
    clock = FIRST_DAY

    def record(alias: str, version: int, move: str, actor: str, reason: str) -> None:
        nonlocal moves, clock
        clock += timedelta(hours=7)
        trust.record_alias_move(
            model_name=name,
            alias=alias,
            to_version=str(version),
            move=move,
            actor=actor,
            reason=reason,
            at=clock.isoformat(timespec="seconds"),
            airflow_run=f"promote/manual__{clock:%Y-%m-%dT%H:%M:%S}",
        )
        moves += 1

    champion = 1
    for number in range(1, versions + 1):
        record("challenger", number, "registration", "RegisterOperator", f"gate passed for v{number}")
        if number == 1 or number % 3 == 0:
            record("champion", number, "promotion", "ana", f"approved: v{number} beats the champion")
            champion = number
    if versions >= 3:
        previous = max(1, champion - 3)
        record(
            "champion",
            previous,
            "rollback",
            "admin",
            "rollback: the new champion's cost rose <script>x</script>",
        )
        champion = previous
        record("champion", versions - 1, "force", "lead", "forced: incident 42, approved by the on-call lead")
        champion = versions - 1
    hook.set_alias(name, "champion", str(champion))
    hook.set_alias(name, "challenger", str(versions))
    if out_of_band_challenger:
        hook.set_alias(
            name, "challenger", "1"
        )  # as the MLflow UI's alias editor would: not in the signed log

    # Monitoring: the last versions score consecutive chunks of the intervals.
    hook.get_or_create_experiment(f"{name}-monitoring")
    monitored = list(range(max(1, versions - monitored_versions + 1), versions + 1))
    chunk = math.ceil(intervals / len(monitored))
    scored_by: dict[str, list[int]] = {}
    columns = COLUMNS[task]
    report_folder = report_root / f"model={name}"
    for position, number in enumerate(monitored):
        indices = range(position * chunk, min(intervals, (position + 1) * chunk))
        if not indices:
            continue
        scored_by[str(number)] = list(indices)
        run_id = hook.monitoring_run(name, str(number))
        points = []
        for index in indices:
            step, end_ms = _step(index), (_step(index) + 1) * DAY_MS
            season = 0.5 + 0.45 * math.sin(index / 29.0)
            scores = {column: abs(math.sin(index * (k + 1) / 17.0)) * 0.3 for k, column in enumerate(columns)}
            drifted = [
                column for column, score in scores.items() if score >= 0.1 + 0.02 * columns.index(column)
            ]
            share = len(drifted) / len(columns)
            values = {
                "drift.share": share,
                "drift.dataset_drift": float(share >= 0.5),
                "rows": 900 + 100 * season,
                "drift.current_rows": 900 + 100 * season,
            }
            # The drift check's summary of the interval's predictions (DriftCheckOperator, prediction.*).
            if task == "binary":
                values["prediction.mean"] = 0.2 + 0.04 * season
            else:
                values.update(
                    {
                        "prediction.mean": 150.0 + 10 * season,
                        "prediction.p10": 80.0 + 8 * season,
                        "prediction.p50": 145.0 + 10 * season,
                        "prediction.p90": 230.0 + 12 * season,
                    }
                )
            values.update({f"drift.{column}.score": score for column, score in scores.items()})
            if index < intervals - UNLABELLED_TAIL:
                values["labelled_rows"] = 800 + 90 * season
                if task == "binary":
                    values.update(
                        roc_auc=0.62 + 0.06 * season,
                        accuracy=0.75 + 0.05 * season,
                        predicted_positive_rate=0.18 + 0.04 * season,
                        positive_rate=0.21 + 0.03 * math.cos(index / 13.0),
                        business_cost_per_row=1.5 - 0.4 * season,
                        business_cost_total=1200.0 - 300 * season,
                    )
                else:
                    values.update(
                        rmse=52.0 + 10 * season,
                        mae=42.0 + 8 * season,
                        r2=0.5 - 0.2 * season,
                        mean_prediction=150.0 + 10 * season,
                        mean_target=152.0 + 12 * math.cos(index / 13.0),
                        business_cost_per_row=40.0 + 5 * season,
                        business_cost_total=32000.0 + 4000 * season,
                    )
            points.extend(Metric(key, float(value), end_ms, step) for key, value in values.items())
            checked_at = FIRST_DAY + timedelta(days=index + 1)  # the daily monitor run after the interval
            folder = report_folder / f"interval={interval_key(index)}"
            folder.mkdir(parents=True, exist_ok=True)
            result = {
                "columns": [
                    {"column": column, "score": scores[column], "drifted": column in drifted}
                    for column in columns
                ],
                "airflow_run": f"monitor_{name}/scheduled__{checked_at:%Y-%m-%dT%H:%M:%S}+00:00",
                "new_categories": {columns[1]: ["ZZ", "<img src=x onerror=alert(1)>"]}
                if index % 50 == 7
                else {},
            }
            (folder / f"drift_v{number}.json").write_text(json.dumps(result))
        for start in range(0, len(points), 1000):
            client.log_batch(run_id, metrics=points[start : start + 1000])
    last = intervals - 1
    latest = str(monitored[-1])
    tags = {
        "mlops.drift.summary": f"DRIFT: 3 of {len(columns)} columns drifted (share 0.38, threshold 0.5)",
        "mlops.drift.report_uri": str(
            report_folder / f"interval={interval_key(last)}" / f"drift_report_v{latest}.html"
        ),
        "mlops.drift.verdict": "no drift",
        "mlops.performance.reasons": json.dumps(DECAY_REASONS[task]),
        "mlops.performance.limits": json.dumps(DECAY_LIMITS[task]),
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, str(champion), key, value)
    return BuiltModel(
        name=name,
        task=task,
        versions=versions,
        intervals=intervals,
        champion=str(champion),
        challenger="1" if out_of_band_challenger else str(versions),
        moves=moves,
        columns=columns,
        scored_by=scored_by,
    )


def record_retrain_requests(model_name: str, count: int) -> int:
    """``count`` events of the model's retrain-request asset in Airflow's database, as monitoring sends them;
    return how many events the asset has now (other tests of the session may have sent some: the view shows
    them all)."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    uri = f"x-mlops://retrain-requests/{model_name}"
    with create_session() as session:
        asset = session.query(AssetModel).filter(AssetModel.uri == uri).one_or_none()
        if asset is None:
            asset = AssetModel(name=f"retrain_request.{model_name}", uri=uri, group="retrain_request")
            session.add(asset)
            session.flush()
        for index in range(count):
            session.add(
                AssetEvent(
                    asset_id=asset.id,
                    extra={"reason": f"drift share 0.62 >= 0.5 on interval {index} <i>origin</i>"},
                    source_dag_id="monitor",
                    source_task_id="request_retrain",
                    source_run_id=f"scheduled__2013-0{1 + index}-15T00:00:00+00:00",
                    source_map_index=-1,
                    timestamp=FIRST_DAY + timedelta(days=14 + 30 * index),
                )
            )
        session.flush()
        return session.query(AssetEvent).filter(AssetEvent.asset_id == asset.id).count()
