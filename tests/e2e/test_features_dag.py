"""The features DAG end to end: real Airflow (``dag.test``), real Feast (SQLite online store), real data."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _result(dag_run, task_id: str):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id=task_id, key="return_value")
            .one()
        )
        value = row.value
    return json.loads(value) if isinstance(value, str) else value


def test_features_dag_builds_materializes_and_checks_skew_twice_idempotently(
    airflow_db, tmp_path, monkeypatch
):
    from airflow.dag_processing.dagbag import DagBag

    from include.flights import data, feature_sources

    root = tmp_path / "data"
    for month in (1, 2):
        data.land_month(str(root), month)
    monkeypatch.setenv("MLOPS_DATA_ROOT", str(root))
    monkeypatch.delenv("AIRFLOW_CONN_FEAST_DEFAULT", raising=False)
    monkeypatch.setenv("MLOPS_FEAST_REPO", str(PROJECT_ROOT / "include" / "flights" / "feature_repo"))
    bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags"))
    assert bag.import_errors == {}
    dag = bag.dags["features"]

    first = dag.test(run_conf={"end": "2013-02-01T00:00:00+00:00"})
    assert str(first.state) == "success"
    built = _result(first, "build_sources")
    assert sorted(built["written"]) == sorted(feature_sources.SOURCES)
    materialized = _result(first, "materialize")
    assert (
        materialized["window"]["first_run"] and materialized["window"]["end"] == "2013-02-01T00:00:00+00:00"
    )
    assert materialized["online_store"] == "sqlite" and (root / "feast" / "online.db").is_file()
    skew = _result(first, "check_skew")
    assert skew["checked"] > 0 and skew["mismatched"] == 0

    second = dag.test(run_conf={"end": "2013-02-01T00:00:00+00:00"})
    assert str(second.state) == "success"
    assert _result(second, "build_sources")["written"] == []  # same landed data: no file rewritten
    window = _result(second, "materialize")["window"]
    assert not window["first_run"] and window["start"] == "2013-01-31T18:00:00+00:00"  # 6-hour overlap
    assert _result(second, "check_skew")["mismatched"] == 0
    assert os.environ["MLOPS_DATA_ROOT"] == str(root)
