"""Airflow discovers mlops-ops as a provider through its entry point, with its hook and connection type."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def _airflow(*args: str) -> list[dict]:
    completed = subprocess.run(
        [sys.executable, "-m", "airflow", *args, "--output", "json"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        check=True,
    )
    return json.loads(completed.stdout[completed.stdout.index("[") :])


def test_airflow_providers_list_shows_mlops_ops(airflow_db):
    from mlops_ops import __version__

    providers = {entry["package_name"]: entry for entry in _airflow("providers", "list")}
    assert providers["mlops-ops"]["version"] == __version__


def test_airflow_knows_the_mlflow_and_pushgateway_connection_types_and_their_hooks(airflow_db):
    hooks = {entry["connection_type"]: entry for entry in _airflow("providers", "hooks")}
    assert hooks["mlflow"]["class"] == "mlops_ops.hooks.mlflow.MlflowHook"
    assert hooks["mlflow"]["package_name"] == "mlops-ops"
    assert hooks["mlflow"]["conn_id_attribute_name"] == "mlflow_conn_id"
    assert hooks["prometheus_pushgateway"]["class"] == "mlops_ops.hooks.prometheus.PushgatewayHook"
    assert hooks["prometheus_pushgateway"]["conn_id_attribute_name"] == "pushgateway_conn_id"


def test_the_connection_forms_are_declared_in_provider_info():
    """Airflow 3.2+ builds the connection form from provider info (``conn-fields``, ``ui-field-behaviour``)."""
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    behaviours = manager.field_behaviours
    assert behaviours["mlflow"]["relabeling"]["host"] == "Tracking URI"
    assert "port" in behaviours["mlflow"]["hidden_fields"]
    assert behaviours["feast"]["relabeling"]["host"] == "Feature repository folder"
    widgets = manager.connection_form_widgets
    for conn_type, fields in {
        "mlflow": ("registry_uri", "ui_url", "artifact_root"),
        "feast": ("project", "data_root", "registry"),
    }.items():
        for field in fields:
            widget = widgets[f"extra__{conn_type}__{field}"]
            assert widget.package_name == "mlops-ops" and widget.field_name == field
            assert widget.field["schema"]["title"] and widget.field["description"]
