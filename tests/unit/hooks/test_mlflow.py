"""MlflowHook: connection parsing, the embedded default, test_connection, alias and version lookups."""

from __future__ import annotations

import json

import pytest

from mlops_ops.hooks.mlflow import MlflowHook
from tests.mlflow_connection import sqlite_mlflow_connection


@pytest.fixture
def tracking(tmp_path, monkeypatch):
    return sqlite_mlflow_connection(monkeypatch, "mlflow_unit", tmp_path)


def test_connection_host_is_the_tracking_uri(tracking):
    hook = MlflowHook(mlflow_conn_id="mlflow_unit")
    assert hook.tracking_uri == tracking
    assert hook.registry_uri == tracking


def test_missing_connection_uses_the_embedded_default(monkeypatch, tmp_path):
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    hook = MlflowHook(mlflow_conn_id="no_such_connection")
    assert hook.tracking_uri == f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_token_is_exported_for_mlflow_rest_clients(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_REMOTE",
        json.dumps({"conn_type": "mlflow", "host": "http://127.0.0.1:9", "password": "t0k"}),
    )
    MlflowHook(mlflow_conn_id="mlflow_remote").get_conn()
    import os

    assert os.environ["MLFLOW_TRACKING_TOKEN"] == "t0k"


def test_test_connection_reports_success_and_failure(tracking, monkeypatch):
    ok, message = MlflowHook(mlflow_conn_id="mlflow_unit").test_connection()
    assert ok and tracking in message
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_DOWN", json.dumps({"conn_type": "mlflow", "host": "http://127.0.0.1:9"})
    )
    ok, message = MlflowHook(mlflow_conn_id="mlflow_down").test_connection()
    assert not ok and "127.0.0.1:9" in message


def test_experiment_alias_and_version_lookups(tracking, tmp_path):
    hook = MlflowHook(mlflow_conn_id="mlflow_unit")
    experiment_id = hook.get_or_create_experiment("unit")
    assert hook.get_or_create_experiment("unit") == experiment_id
    assert (
        hook.client.get_experiment(experiment_id).artifact_location == (tmp_path / "art").as_uri() + "/unit"
    )
    assert hook.get_version_by_alias("nothing", "champion") is None
    assert hook.get_aliases("nothing") == {}

    hook.ensure_registered_model("m")
    hook.ensure_registered_model("m")  # exists: no error
    first = hook.client.create_model_version("m", source=(tmp_path / "a").as_uri(), tags={"k": "1"})
    second = hook.client.create_model_version("m", source=(tmp_path / "b").as_uri(), tags={"k": "2"})
    hook.set_alias("m", "champion", first.version)
    assert hook.get_aliases("m") == {"champion": str(first.version)}
    assert hook.get_version_by_alias("m", "champion").version == first.version
    assert hook.get_version_by_alias("m", "challenger") is None
    assert [v.version for v in hook.search_versions("m")] == [second.version, first.version]
    assert [v.version for v in hook.search_versions("m", {"k": "2"})] == [second.version]


def test_tag_filter_refuses_quotes_it_cannot_escape():
    assert (
        MlflowHook.tag_filter({"mlops.seed": "42", "a": "b"}) == "tags.`mlops.seed` = '42' AND tags.`a` = 'b'"
    )
    assert MlflowHook.tag_filter({"reason": "it's new"}) == 'tags.`reason` = "it\'s new"'
    with pytest.raises(ValueError, match="quotes"):
        MlflowHook.tag_filter({"mlops.trigger_reason": "x' OR name = \"y"})
    with pytest.raises(ValueError, match="quotes"):
        MlflowHook.tag_filter({"bad`key": "v"})


def test_a_value_with_a_quote_finds_exactly_its_version(tracking, tmp_path):
    hook = MlflowHook(mlflow_conn_id="mlflow_unit")
    hook.ensure_registered_model("quoted")
    hook.client.create_model_version("quoted", source=(tmp_path / "a").as_uri(), tags={"reason": "it's new"})
    hook.client.create_model_version("quoted", source=(tmp_path / "b").as_uri(), tags={"reason": "its new"})
    assert [v.tags["reason"] for v in hook.search_versions("quoted", {"reason": "it's new"})] == ["it's new"]
