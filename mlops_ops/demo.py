"""``mlops-ops demo``: land the real flights data, retrain the flight-delay model, promote it to champion."""

from __future__ import annotations

import os

# Runs this interpreter's own `airflow db migrate`, with a fixed argument list and no shell.
import subprocess  # nosec B404
import sys
from dataclasses import dataclass
from pathlib import Path

from mlops_ops.embedded import apply_embedded_defaults


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


def run_demo(
    project: Path, through_month: int = 6, model_name: str = "flight_delay", score_days: int = 3
) -> DemoReport:
    """Migrate Airflow, apply ``airflow_settings.yaml``, run ``ingest_flights``, ``retrain`` and ``promote``,
    then land the next month and run ``batch_score`` on its first days with the new champion.

    :param project: the Airflow project folder (holding ``dags/``, ``include/``, ``airflow_settings.yaml``).
    :param through_month: land 2013 months 1..through_month before retraining.
    :param model_name: the registered model the retrain DAG produces.
    :param score_days: how many days of the following month to score (0: none).
    :raises DemoFailed: naming the step that failed.
    """
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
    scored = _score_next_days(bag, through_month, score_days) if score_days else []
    return DemoReport(
        tracking_uri=hook.tracking_uri,
        model_name=model_name,
        aliases=aliases,
        versions=len(hook.search_versions(model_name)),
        data_version=str(training.get("data_version")),
        metrics={key: training["metrics"][key] for key in ("roc_auc", "log_loss", "accuracy", "rows")},
        scored=scored,
    )


def _score_next_days(bag, through_month: int, days: int) -> list[dict]:
    """Land the month after the training data (the month itself for December) and score its first ``days``."""
    from datetime import date, timedelta

    import pyarrow.parquet as pq

    from include.flights.data import flights

    month = min(through_month + 1, 12)
    if month > through_month:
        _run_dag(bag, "ingest_flights", {"through_month": month}, f"landing 2013 month {month} to score")
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
