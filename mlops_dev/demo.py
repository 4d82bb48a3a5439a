"""``make demo`` (``python -m mlops_dev demo``): land the real flights data, retrain the flight-delay model,
promote it to champion."""

from __future__ import annotations

import dataclasses
import os

# Runs this interpreter's own `airflow db migrate`, with a fixed argument list and no shell.
import subprocess  # nosec B404
import sys
from dataclasses import dataclass
from pathlib import Path

from mlops_dev.embedded import apply_embedded_defaults


class DemoFailed(RuntimeError):
    """A step of the demo failed; the message names it."""


@dataclass(frozen=True)
class DemoReport:
    """What the demo left behind."""

    tracking_uri: str
    model_name: str
    aliases: dict[str, str]
    versions: int
    data_version: str
    metrics: dict[str, float]
    #: One entry per scored day: ``{"interval", "rows", "uri", "predicted_delayed", "actually_delayed"}``.
    scored: list[dict]
    #: The monitor runs on the scored days and what followed: ``{"days": [{"drift", "performance", "request"}],
    #: "retrain"}`` (empty without scoring).
    monitoring: dict
    #: The day replayed through the stream scorer: ``{"replay": replay_day's figures, "compacted": the
    #: compaction's XCom}``, or ``{"replay": {"skipped": reason}}`` without Redis (empty without scoring).
    streamed: dict = dataclasses.field(default_factory=dict)


def run_demo(
    project: Path,
    through_month: int = 2,
    model_name: str = "flight_delay",
    score_days: int = 3,
    score_month: int = 7,
) -> DemoReport:
    """Migrate Airflow, apply ``airflow_settings.yaml``, run ``ingest_flights``, ``retrain`` and ``promote`` on
    the winter, then land the months through ``score_month`` and run ``batch_score`` on its first days with the
    new champion; replay the next day's flights as events through the stream scorer (with the online features
    the ``features`` DAG materializes) and compact them with ``stream_compaction`` into the day's partition; then
    ``monitor`` on each of the days, batch-scored and streamed alike: summer meets a winter model, the data
    drifts, a retrain is requested once (the cool-down holds the next days' requests), and ``retrain`` runs for
    that request (as the scheduler starts it on the request's asset event), recording its reason; ``promote``
    (policy auto) follows.

    :param project: the Airflow project folder (holding ``dags/``, ``include/``, ``airflow_settings.yaml``).
    :param through_month: land 2013 months 1..through_month before retraining.
    :param model_name: the registered model the retrain DAG produces.
    :param score_days: how many days of ``score_month`` to score and monitor (0: none).
    :param score_month: the month scored, after ``through_month``.
    :raises DemoFailed: naming the step that failed.
    """
    if score_days and not through_month < score_month <= 12:
        raise DemoFailed(
            f"score_month must be after through_month ({through_month}) and <= 12, got {score_month}"
        )
    project = project.resolve()
    if not (project / "dags").is_dir():
        raise DemoFailed(f"{project} has no dags/ folder: run the demo from the mlops-ops project")
    environment = apply_embedded_defaults(project)
    if str(project) not in sys.path:
        sys.path.insert(0, str(project))

    _step("Migrating the Airflow metadata database", environment["AIRFLOW_HOME"])
    migrated = subprocess.run(  # nosec B603
        [sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True, text=True
    )
    if migrated.returncode != 0:
        raise DemoFailed(f"airflow db migrate failed:\n{migrated.stderr[-3000:]}")

    from mlops_ops.settings_file import apply_settings, load_settings_file

    _step("Applying airflow_settings.yaml", "connections, pools (gpu), variables")
    report = apply_settings(load_settings_file(project / "airflow_settings.yaml"))
    for line in (report.connections.summary(), report.pools.summary(), report.variables.summary()):
        print(f"    {line}")

    from mlops_dev.local_stack import LocalStackError, authenticated_registry
    from mlops_ops.hooks.mlflow import MlflowHook

    registry_store = MlflowHook().tracking_uri  # the embedded registry (or the deployment's own)
    try:
        with authenticated_registry(environment) as server:
            if server:
                _step("MLflow behind basic auth", f"{server}, as the service account (.mlops/mlflow-auth/)")
            report = _run_lifecycle(project, through_month, model_name, score_days, score_month)
    except LocalStackError as err:
        raise DemoFailed(f"the demo's MLflow server: {err}") from err
    return dataclasses.replace(report, tracking_uri=registry_store)


def _run_lifecycle(
    project: Path, through_month: int, model_name: str, score_days: int, score_month: int
) -> DemoReport:
    """The DAG runs of :func:`run_demo`, against whatever ``mlflow_default`` names now."""
    from airflow.dag_processing.dagbag import DagBag

    from mlops_ops.hooks.mlflow import MlflowHook

    bag = DagBag(dag_folder=str(project / "dags"))
    if bag.import_errors:
        raise DemoFailed(f"DAG import errors: {bag.import_errors}")
    _run_dag(
        bag, "ingest_flights", {"through_month": through_month}, f"landing 2013 months 1-{through_month}"
    )
    # force: a second demo lands nothing new, and the sensor would otherwise wait for newer data.
    retrain_run = _run_dag(
        bag, "retrain", {"reason": "mlops-ops demo", "force": True}, "retraining on the landed data version"
    )
    # The demo's promotion policy is auto: a challenger that passed its gate becomes champion unasked.
    # (An environment variable wins over the Variable in the database, which stays "manual".)
    os.environ["AIRFLOW_VAR_MLOPS_PROMOTION_POLICY"] = "auto"
    aliases = MlflowHook().get_aliases(model_name)
    if aliases.get("champion") != aliases.get("challenger"):
        _run_dag(bag, "promote", {}, "promoting the challenger (policy auto)")

    hook = MlflowHook()
    aliases = hook.get_aliases(model_name)
    if "champion" not in aliases:
        raise DemoFailed(f"the demo finished but {model_name} has no 'champion' alias (aliases: {aliases})")
    training = task_result(retrain_run, "train") or {}
    scored = _score_days(bag, score_month, score_days) if score_days else []
    streamed = _stream_day(bag, score_month, score_days + 1, model_name) if scored else {}
    intervals = [day["interval"] for day in scored]
    if streamed.get("compacted", {}).get("uri"):
        intervals.append(streamed["compacted"]["interval"])
    monitoring = _monitor_and_retrain(bag, intervals, model_name) if scored else {}
    aliases = hook.get_aliases(model_name)
    return DemoReport(
        tracking_uri=hook.tracking_uri,
        model_name=model_name,
        aliases=aliases,
        versions=len(hook.search_versions(model_name)),
        data_version=str(training.get("data_version")),
        metrics={key: training["metrics"][key] for key in ("roc_auc", "log_loss", "accuracy", "rows")},
        scored=scored,
        monitoring=monitoring,
        streamed=streamed,
    )


def _score_days(bag, month: int, days: int) -> list[dict]:
    """Land the months through ``month`` and score its first ``days``."""
    from datetime import date, timedelta

    import pyarrow.parquet as pq

    from include.flights.data import flights

    _run_dag(bag, "ingest_flights", {"through_month": month}, f"landing 2013 months through {month} to score")
    labels = flights(month)
    scored = []
    for offset in range(days):
        start = date(2013, month, 1) + timedelta(days=offset)
        conf = {"interval_start": start.isoformat(), "interval_end": (start + timedelta(days=1)).isoformat()}
        run = _run_dag(bag, "batch_score", conf, f"scoring {start} with the champion")
        published = task_result(run, "publish") or {}
        if not published.get("uri"):
            raise DemoFailed(f"batch_score published nothing for {start}: {published}")
        predictions = pq.read_table(published["uri"], columns=["prediction"]).column("prediction").to_numpy()
        day = labels[(labels["day"] == start.day) & labels["arr_delay"].notna()]
        scored.append(
            {
                "interval": published["interval"],
                "rows": published["rows"],
                "uri": published["uri"],
                "model_version": published["model_version"],
                "predicted_delayed": float(predictions.mean()),
                "actually_delayed": float((day["arr_delay"] >= 15).mean()),
            }
        )
    return scored


def _stream_day(bag, month: int, day_of_month: int, model_name: str) -> dict:
    """Replay a day of flights through the stream scorer and compact it into the day's partition."""
    from datetime import date, timedelta

    from include.flights.data import flights
    from mlops_dev.stream_replay import redis_url, replay_day

    day = date(2013, month, day_of_month)
    following = day + timedelta(days=1)
    _run_dag(bag, "features", {"end": f"{following.isoformat()}T00:00:00Z"}, f"online features through {day}")
    _step("Replaying a day as a stream", f"{day}'s flights as events, scored by mlops-ops stream's engine")
    replay = replay_day(day, flights(), model_name)
    if "skipped" in replay:
        print(f"    skipped: {replay['skipped']}", flush=True)
        return {"replay": replay}
    # The stream_compaction DAG reads its Redis from this connection (the compose file sets it for Airflow).
    os.environ.setdefault("AIRFLOW_CONN_MLOPS_STREAMS", redis_url())
    conf = {"interval_start": day.isoformat(), "interval_end": following.isoformat()}
    run = _run_dag(bag, "stream_compaction", conf, f"compacting {day}'s streamed predictions")
    compacted = task_result(run, "compact") or {}
    if not compacted.get("uri"):
        raise DemoFailed(f"stream_compaction published nothing for {day}: {compacted}")
    return {"replay": replay, "compacted": compacted}


def _monitor_and_retrain(bag, intervals: list[dict], model_name: str) -> dict:
    """Run ``monitor`` on each scored interval; when one requests a retrain, run ``retrain`` for that request."""
    from mlops_ops.hooks.mlflow import MlflowHook

    days = []
    for interval in intervals:
        conf = {"interval_start": interval["start"], "interval_end": interval["end"]}
        _step(
            "Running DAG monitor", f"drift of the week up to {interval['end'][:10]}, that day's performance"
        )
        run = bag.get_dag("monitor").test(run_conf=conf)
        if str(run.state) != "success":
            raise DemoFailed(f"DAG monitor ended {run.state}: see the task logs above")
        days.append(
            {
                "drift": task_result(run, "check_drift") or {},
                "performance": task_result(run, "check_performance") or {},
                "request": task_result(run, "request_retrain") or {},
            }
        )
    result = {"days": days, "retrain": {}}
    if not any(day["request"].get("send") for day in days):
        return result
    event = _last_request_event(model_name)
    # Under the scheduler (`make up`) the request's asset event starts retrain; dag.test() runs have no asset
    # trigger, so the demo starts it for that event, with the event's reason as the scheduler's run would.
    _step("Running DAG retrain", f"for retrain request {event['id']}")
    # The trigger form's reason holds 500 characters; the request's full reason stays on its asset event.
    reason = event["reason"] if len(event["reason"]) <= 500 else event["reason"][:499] + "…"
    retrain = bag.get_dag("retrain").test(run_conf={"reason": reason})
    # A model that does not pass its gate is a legitimate outcome (nothing registered), not a demo failure.
    if str(retrain.state) != "success" and task_result(retrain, "train") is None:
        raise DemoFailed(f"DAG retrain ended {retrain.state} before training: see the task logs above")
    registered = task_result(retrain, "register") or {}
    hook = MlflowHook()
    if registered.get("version") and hook.get_aliases(model_name).get("champion") != str(
        registered["version"]
    ):
        _run_dag(bag, "promote", {}, "promoting the retrained challenger (policy auto)")
    version = registered.get("version")
    result["retrain"] = {
        "event_id": event["id"],
        "version": version,
        "trigger_reason": hook.client.get_model_version(model_name, str(version)).tags.get(
            "mlops.trigger_reason"
        )
        if version
        else None,
        "metrics": (task_result(retrain, "train") or {}).get("metrics", {}),
    }
    return result


def _last_request_event(model_name: str) -> dict:
    """The latest event of the retrain-request asset of ``model_name`` in the Airflow database."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    from mlops_ops.assets import retrain_request_asset

    with create_session() as session:
        asset = session.query(AssetModel).filter_by(name=retrain_request_asset(model_name).name).one()
        event = session.query(AssetEvent).filter_by(asset_id=asset.id).order_by(AssetEvent.id.desc()).first()
        return {"id": event.id, "reason": (event.extra or {}).get("reason", ""), "timestamp": event.timestamp}


def _step(title: str, detail: str) -> None:
    print(f"==> {title} ({detail})", flush=True)


def _run_dag(bag, dag_id: str, conf: dict, title: str):
    _step(f"Running DAG {dag_id}", title)
    run = bag.get_dag(dag_id).test(run_conf=conf)
    if str(run.state) != "success":
        raise DemoFailed(f"DAG {dag_id} ended {run.state}: see the task logs above")
    return run


def task_result(dag_run, task_id: str):
    """The return value (XCom) that ``task_id`` pushed in ``dag_run``, or ``None``."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(
            XComModel.get_many(
                run_id=dag_run.run_id, dag_ids=dag_run.dag_id, task_ids=task_id, key="return_value"
            )
        ).first()
        return XComModel.deserialize_value(row) if row is not None else None
