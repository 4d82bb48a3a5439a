"""Astro-style integrity checks over every DAG in dags/: imports, tags, owner, docs, retries, parse cost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DAGS_FOLDER = PROJECT_ROOT / "dags"
HEAVY_MODULES = (
    "mlflow",
    "evidently",
    "great_expectations",
    "feast",
    "sklearn",
    "pandas",
    "pyarrow",
    "boto3",
)


@pytest.fixture(scope="module")
def dag_bag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_FOLDER))


def _dags(dag_bag):
    return sorted(dag_bag.dags.values(), key=lambda dag: dag.dag_id)


def test_no_import_errors(dag_bag):
    assert dag_bag.import_errors == {}
    assert {"ingest_flights", "retrain"} <= set(dag_bag.dag_ids)


def test_every_dag_has_tags_owner_docs_and_retries(dag_bag):
    problems = []
    for dag in _dags(dag_bag):
        if not dag.tags:
            problems.append(f"{dag.dag_id}: no tags")
        if not (dag.doc_md or "").strip():
            problems.append(f"{dag.dag_id}: no doc_md")
        for task in dag.tasks:
            if task.owner in (None, "", "airflow"):
                problems.append(f"{dag.dag_id}.{task.task_id}: owner is {task.owner!r}")
            if (dag.default_args or {}).get("retries", 0) < 2 or task.retries < 2:
                problems.append(f"{dag.dag_id}.{task.task_id}: retries {task.retries} < 2")
    assert problems == []


def test_every_task_backs_off_exponentially_up_to_a_bound(dag_bag):
    """A service outage (MLflow, S3, Redis) is outwaited: each retry waits longer, never unboundedly; and the
    scheduler reads the same from the serialized DAG (a mapped task included)."""
    from datetime import timedelta

    from airflow.serialization.serialized_objects import DagSerialization

    problems = []
    for dag in _dags(dag_bag):
        served = DagSerialization.from_dict(DagSerialization.to_dict(dag))
        for task in served.tasks:
            if float(task.retry_exponential_backoff) < 2.0:
                problems.append(f"{dag.dag_id}.{task.task_id}: backoff x{task.retry_exponential_backoff}")
            if not task.max_retry_delay or task.max_retry_delay > timedelta(minutes=10):
                problems.append(f"{dag.dag_id}.{task.task_id}: max_retry_delay {task.max_retry_delay}")
            if not timedelta(seconds=10) <= task.retry_delay <= timedelta(minutes=5):
                problems.append(f"{dag.dag_id}.{task.task_id}: retry_delay {task.retry_delay}")
    assert problems == []


def test_every_dag_serializes(dag_bag):
    from airflow.serialization.serialized_objects import DagSerialization

    for dag in _dags(dag_bag):
        assert DagSerialization.to_dict(dag)["dag"]["dag_id"] == dag.dag_id


def test_training_runs_in_the_gpu_pool(dag_bag):
    train = dag_bag.dags["retrain"].get_task("train")
    assert train.pool == "gpu"


def test_retrain_is_scheduled_on_the_flights_asset_retrain_requests_and_weekly(dag_bag):
    timetable = dag_bag.dags["retrain"].timetable
    assert sorted(asset.name for asset in timetable.asset_condition.objects) == [
        "dataset.flights",
        "retrain_request.flight_delay",
    ]
    assert timetable.timetable.expression == "0 3 * * 1"


def test_monitor_requests_retrains_that_retrain_is_scheduled_on(dag_bag):
    request = dag_bag.dags["monitor"].get_task("request_retrain")
    assert [asset.name for asset in request.outlets] == ["retrain_request.flight_delay"]
    assert [asset.name for asset in request.inlets] == ["retrain_request.flight_delay"]


def test_parsing_every_dag_imports_no_heavy_library():
    """Parse dags/ in a fresh interpreter, as the dag-processor does, and list what got imported."""
    script = f"""
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder={str(DAGS_FOLDER)!r})
loaded = sorted({{name.split('.')[0] for name in sys.modules}} & set({list(HEAVY_MODULES)!r}))
print(json.dumps({{"errors": {{k: str(v) for k, v in bag.import_errors.items()}}, "dags": len(bag.dag_ids),
                  "heavy": loaded}}))
"""
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=os.environ.copy(), check=True
    )
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["errors"] == {}
    assert report["dags"] >= 2
    assert report["heavy"] == [], f"parsing dags/ imported {report['heavy']}"
