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


@pytest.mark.parametrize("profile", [None, "production", ""])
def test_outside_the_embedded_profile_a_missing_connection_is_an_error(monkeypatch, tmp_path, profile):
    """A production worker without its connection fails, naming it, instead of writing a local registry."""
    from airflow.sdk.exceptions import AirflowNotFoundException

    from mlops_ops.hooks.trust import TrustHook

    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    if profile is None:
        monkeypatch.delenv("MLOPS_PROFILE", raising=False)
    else:
        monkeypatch.setenv("MLOPS_PROFILE", profile)
    with pytest.raises(
        AirflowNotFoundException, match="no Airflow connection 'no_such_connection'.*conn type mlflow"
    ):
        _ = MlflowHook(mlflow_conn_id="no_such_connection").tracking_uri
    with pytest.raises(
        AirflowNotFoundException, match="'no_such_trust'.*conn type mlops_trust.*MLOPS_PROFILE=embedded"
    ):
        _ = TrustHook(trust_conn_id="no_such_trust").verification_keys
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "trust").exists()  # nothing written


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
    assert len(hook.search_versions("m", max_results=1)) == 1
    assert hook.get_registered_model("m").aliases == {"champion": int(first.version)}
    with pytest.raises(LookupError, match="no registered model 'nothing'"):
        hook.get_registered_model("nothing")


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


def test_one_monitoring_run_per_tags_and_one_point_per_step(tracking):
    """(One test: creating the MLflow database takes seconds.)"""
    from unittest import mock

    hook = MlflowHook(mlflow_conn_id="mlflow_unit")
    experiment = hook.get_or_create_experiment("m-monitoring")
    tags = {"mlops.monitoring.model": "m", "mlops.monitoring.model_version": "1"}
    first = hook.get_or_create_run(experiment, tags, run_name="m v1")
    assert hook.get_or_create_run(experiment, tags, run_name="m v1") == first
    assert hook.client.get_run(first).info.status == "FINISHED"

    # Another task created the run between this task's lookup and its create: the older run is kept and
    # the one this call created is deleted.
    real_search = hook.search_runs
    lookups = []

    def search_runs(experiment_id, wanted):
        lookups.append(experiment_id)
        return [] if len(lookups) == 1 else real_search(experiment_id, wanted)

    with mock.patch.object(hook, "search_runs", side_effect=search_runs):
        assert hook.get_or_create_run(experiment, tags, run_name="m v1") == first
    assert len(lookups) == 2
    assert [run.info.run_id for run in hook.search_runs(experiment, tags)] == [first]

    # Its metrics: one point per step, whatever a later call logs for the same step.
    run = first
    assert hook.log_metrics_once_at_step(run, {"f1": 0.5, "auc": 0.7}, step=3, timestamp_ms=1000) == {
        "logged": ["f1", "auc"],
        "already_logged": [],
    }
    again = hook.log_metrics_once_at_step(run, {"f1": 0.9, "recall": 0.1}, step=3, timestamp_ms=2000)
    assert again == {"logged": ["recall"], "already_logged": ["f1"]}
    hook.log_metrics_once_at_step(run, {"f1": 0.6}, step=4, timestamp_ms=3000)
    history = hook.get_metric_history(run, "f1")
    assert sorted((point.step, point.value, point.timestamp) for point in history) == [
        (3, 0.5, 1000),
        (4, 0.6, 3000),
    ]
    # What the Models view reads: the experiment's runs by tags, none of an experiment that does not exist.
    assert [found.info.run_id for found in hook.experiment_runs("m-monitoring", tags)] == [first]
    assert hook.experiment_runs("m-monitoring", {**tags, "mlops.monitoring.model_version": "2"}) == []
    assert hook.experiment_runs("no-such-experiment") == []
    assert hook.get_run_if_any(first).info.run_id == first
    assert hook.get_run_if_any("0" * 32) is None


def test_http_retries_and_timeout_are_bounded_unless_the_environment_sets_them(monkeypatch):
    import os

    from mlops_ops.hooks.mlflow import HTTP_DEFAULTS

    for variable in HTTP_DEFAULTS:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_REMOTE", json.dumps({"conn_type": "mlflow", "host": "http://127.0.0.1:9"})
    )
    MlflowHook(mlflow_conn_id="mlflow_remote").get_conn()
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "3"
    assert os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] == "1"
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "15"  # the deployment's choice is kept


def test_a_dead_tracking_server_fails_in_seconds_naming_it_and_the_action(monkeypatch):
    import socket
    import time

    from mlops_ops.core.services import ServiceUnavailable

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_REMOTE",
        json.dumps({"conn_type": "mlflow", "host": f"http://user:secret@127.0.0.1:{port}"}),
    )
    hook = MlflowHook(mlflow_conn_id="mlflow_remote")
    assert hook.endpoint == f"http://127.0.0.1:{port}"  # no credentials in messages
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable) as raised, hook.unreachable_as("registering flight_delay"):
        hook.get_aliases("flight_delay")
    message = str(raised.value)
    assert message.startswith(
        f"MLflow tracking server http://127.0.0.1:{port} unreachable while registering flight_delay: "
    )
    assert "Connection refused" in message and "secret" not in message
    assert time.monotonic() - started < 60


def _request_header_providers(script: str) -> dict:
    """Run ``script`` in a fresh interpreter; it ends by reporting the registered header providers."""
    import subprocess
    import sys
    from pathlib import Path

    report = (
        "\nimport json, sys\n"
        "from mlflow.tracking.request_header.registry import _request_header_provider_registry as registry\n"
        "print(json.dumps({'feast_imported': 'feast' in sys.modules,\n"
        "                  'providers': [type(provider).__module__ for provider in registry]}))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script + report],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[3],
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_feast_request_headers_are_kept_out_of_mlflow_calls():
    """Feast's provider (an entry point of the installed Feast) would import all of Feast on the first HTTP call
    and send a mounted Kubernetes token to the MLflow server; the hook keeps it out, before or after MLflow
    loaded it."""
    # What MLflow does on its own in this environment (so the test can fail): Feast's provider is registered.
    mlflow_alone = _request_header_providers("import mlflow.tracking.request_header.registry")
    assert mlflow_alone["feast_imported"]
    assert any(module.startswith("feast.") for module in mlflow_alone["providers"])

    before = _request_header_providers(
        "from mlops_ops.hooks.mlflow import without_foreign_request_headers\nwithout_foreign_request_headers()"
    )
    assert not before["feast_imported"]
    assert not any(module.startswith("feast.") for module in before["providers"])
    assert "mlflow.tracking.request_header.default_request_header_provider" in before["providers"]

    after = _request_header_providers(
        "import mlflow.tracking.request_header.registry\n"
        "from mlops_ops.hooks.mlflow import without_foreign_request_headers\nwithout_foreign_request_headers()"
    )
    assert not any(module.startswith("feast.") for module in after["providers"])
    assert "mlflow.tracking.request_header.default_request_header_provider" in after["providers"]


def test_outside_the_embedded_profile_a_connection_must_say_where_the_registry_and_the_alias_log_are(
    monkeypatch, tmp_path
):
    """The embedded settings file ships mlflow_default without a host: elsewhere that would be a registry per host;
    a trust connection without alias_log would be a log per host."""
    from airflow.sdk.exceptions import AirflowNotFoundException

    from mlops_ops.hooks.trust import TrustHook

    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    monkeypatch.delenv("MLOPS_PROFILE", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_EMPTY", json.dumps({"conn_type": "mlflow"}))
    monkeypatch.setenv("AIRFLOW_CONN_TRUST_NO_LOG", json.dumps({"conn_type": "mlops_trust", "extra": {}}))
    with pytest.raises(AirflowNotFoundException, match="'mlflow_empty' has no host"):
        _ = MlflowHook(mlflow_conn_id="mlflow_empty").tracking_uri
    with pytest.raises(AirflowNotFoundException, match="'trust_no_log' names no alias_log"):
        _ = TrustHook(trust_conn_id="trust_no_log").alias_log
    monkeypatch.setenv("MLOPS_PROFILE", "embedded")  # the development machine: both fall back to .mlops/
    assert MlflowHook(mlflow_conn_id="mlflow_empty").tracking_uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
