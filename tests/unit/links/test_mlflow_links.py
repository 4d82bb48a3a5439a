"""Operator extra links: URLs built from the task's XCom and the MLflow connection's UI URL."""

from __future__ import annotations

import json
from types import SimpleNamespace
from unittest import mock

import pytest

from mlops_ops.links import mlflow as links
from mlops_ops.links.mlflow import MlflowModelVersionLink, MlflowRunLink, XComUrlLink
from mlops_ops.operators.gate import EvaluateGateOperator
from mlops_ops.operators.promotion import PromoteOperator, RollbackOperator
from mlops_ops.operators.registry import RegisterOperator
from mlops_ops.operators.training import TrainOperator

TI_KEY = SimpleNamespace(dag_id="retrain", task_id="train", run_id="manual__1", map_index=-1)


@pytest.fixture
def ui(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_LINKS",
        json.dumps(
            {"conn_type": "mlflow", "host": "sqlite:////tmp/x.db", "extra": {"ui_url": "http://ui:5000/"}}
        ),
    )
    return SimpleNamespace(mlflow_conn_id="mlflow_links")


def _with_xcom(values: dict):
    return mock.patch.object(links, "_xcom", side_effect=lambda ti_key, key: values.get(key))


def test_run_link_points_at_the_run_in_the_mlflow_ui(ui):
    with _with_xcom({"return_value": {"run_id": "abc123", "metrics": {}}}):
        assert MlflowRunLink().get_link(ui, ti_key=TI_KEY) == "http://ui:5000/#/runs/abc123"


def test_model_version_link_reads_version_or_an_alias_moves_target(ui):
    with _with_xcom({"return_value": {"model_name": "flight delay", "version": "4"}}):
        assert (
            MlflowModelVersionLink().get_link(ui, ti_key=TI_KEY)
            == "http://ui:5000/#/models/flight%20delay/versions/4"
        )
    with _with_xcom({"return_value": {"model_name": "flight_delay", "to_version": "2"}}):
        assert (
            MlflowModelVersionLink().get_link(ui, ti_key=TI_KEY).endswith("/models/flight_delay/versions/2")
        )


def test_links_are_empty_without_a_result_or_without_a_ui_url(ui, monkeypatch):
    with _with_xcom({}):
        assert MlflowRunLink().get_link(ui, ti_key=TI_KEY) == ""
        assert MlflowModelVersionLink().get_link(ui, ti_key=TI_KEY) == ""
    # An embedded SQLite registry and no MLOPS_MLFLOW_UI_URL: there is no page to link to.
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_SQLITE", json.dumps({"conn_type": "mlflow", "host": "sqlite:////x.db"})
    )
    monkeypatch.delenv("MLOPS_MLFLOW_UI_URL", raising=False)
    with _with_xcom({"return_value": {"run_id": "abc"}}):
        assert MlflowRunLink().get_link(SimpleNamespace(mlflow_conn_id="mlflow_sqlite"), ti_key=TI_KEY) == ""
    monkeypatch.setenv("MLOPS_MLFLOW_UI_URL", "http://127.0.0.1:5001")
    with _with_xcom({"return_value": {"run_id": "abc"}}):
        link = MlflowRunLink().get_link(SimpleNamespace(mlflow_conn_id="mlflow_sqlite"), ti_key=TI_KEY)
    assert link == "http://127.0.0.1:5001/#/runs/abc"


def test_xcom_url_link_links_only_http_urls_under_its_own_key():
    report = XComUrlLink("Drift report", "report_url")
    assert report.name == "Drift report" and report.xcom_key == "_link_XComUrlLink_report_url"
    assert XComUrlLink("Card", "card_url").xcom_key != report.xcom_key
    with _with_xcom({"report_url": "https://mlflow/artifacts/drift.html"}):
        assert report.get_link(None, ti_key=TI_KEY) == "https://mlflow/artifacts/drift.html"
    for unsafe in ("/local/drift.html", "file:///etc/passwd", "javascript:alert(1)", None, 3):
        with _with_xcom({"report_url": unsafe}):
            assert report.get_link(None, ti_key=TI_KEY) == ""


def test_the_lifecycle_operators_carry_their_links():
    def names(operator_class) -> set[str]:
        return {link.name for link in operator_class.operator_extra_links}

    assert names(TrainOperator) == {"MLflow run"}
    assert names(EvaluateGateOperator) == {"MLflow run"}
    assert names(RegisterOperator) == {"MLflow run", "MLflow model version"}
    assert names(PromoteOperator) == names(RollbackOperator) == {"MLflow model version"}


def test_the_links_are_registered_in_the_provider_info():
    from mlops_ops.get_provider_info import get_provider_info

    registered = get_provider_info()["extra-links"]
    assert {
        f"{cls.__module__}.{cls.__name__}" for cls in (MlflowRunLink, MlflowModelVersionLink, XComUrlLink)
    } == set(registered)
