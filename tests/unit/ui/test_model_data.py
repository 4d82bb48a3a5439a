"""The drift result files the Models view reads beside the latest report: in a local folder or an object store."""

from __future__ import annotations

import json
import time

import pytest

from mlops_ops.core import storage
from mlops_ops.ui.model_data import interval_drift_results


def _result(columns: dict[str, bool], run: str) -> bytes:
    payload = {
        "airflow_run": run,
        "columns": [{"column": name, "drifted": drifted} for name, drifted in columns.items()],
        "new_categories": {"store": ["XXX"]},
    }
    return json.dumps(payload).encode()


def _land_results(root: str, object_store=None) -> str:
    """Two intervals checked with v1, the second again with v2; the latest report is the second's."""
    folder = storage.join(root, "model=visits")
    first, second = "20240301T0000Z_20240302T0000Z", "20240302T0000Z_20240303T0000Z"
    storage.write_bytes_atomic(
        _result({"age": True, "store": False}, "monitor/run-1"),
        storage.join(folder, f"interval={first}", "drift_v1.json"),
        object_store,
    )
    storage.write_bytes_atomic(
        _result({"age": False}, "monitor/run-2"),
        storage.join(folder, f"interval={second}", "drift_v1.json"),
        object_store,
    )
    storage.write_bytes_atomic(
        _result({"age": True, "store": True}, "monitor/run-3"),
        storage.join(folder, f"interval={second}", "drift_v2.json"),
        object_store,
    )
    return storage.join(folder, f"interval={second}", "drift_report_v2.html")


VERSIONS = {"20240301T0000Z_20240302T0000Z": ["1"], "20240302T0000Z_20240303T0000Z": ["1", "2"]}


def _check(found) -> None:
    first, second = (found[key] for key in VERSIONS)
    assert first.drifted_columns == ("age",) and first.airflow_run == "monitor/run-1"
    # The newest version that checked the interval wins.
    assert second.drifted_columns == ("age", "store") and second.airflow_run == "monitor/run-3"
    assert second.new_categories == {"store": ["XXX"]}


def test_results_in_a_local_report_root(tmp_path):
    _check(interval_drift_results(_land_results(str(tmp_path)), VERSIONS))


def test_results_in_an_s3_report_root_are_read_through_the_storage_connection(monkeypatch):
    from tests.moto_s3 import moto_s3

    with moto_s3(monkeypatch, "reports"):
        from mlops_ops.hooks.object_storage import object_store_for

        report = _land_results("s3://reports/monitoring", object_store_for("s3://reports/x", "aws_default"))
        _check(interval_drift_results(report, VERSIONS, "aws_default"))
        assert interval_drift_results(report, {"20240303T0000Z_20240304T0000Z": ["2"]}, "aws_default") == {}


def test_a_store_that_does_not_answer_leaves_the_facts_out_at_once(monkeypatch, caplog):
    from tests.airflow_rest import free_port

    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_GONE",
        json.dumps(
            {"conn_type": "aws", "login": "k", "password": "s", "extra": {"region_name": "us-east-1"}}
        ),
    )
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    started = time.monotonic()
    versions = {f"2024{month:02d}01T0000Z_2024{month:02d}02T0000Z": ["1"] for month in range(1, 13)}
    found = interval_drift_results(
        "s3://reports/model=visits/interval=k/drift_report_v1.html", versions, "aws_gone"
    )
    assert found == {}
    assert time.monotonic() - started < 30  # one failed request stops the rest, not a timeout per interval
    assert "drift results under reports/model=visits not read" in caplog.text
    asked = [record for record in caplog.records if "not read" in record.getMessage()]
    assert len(asked) == 1  # the first interval's request failed; the other eleven were not made


@pytest.mark.parametrize("report_uri", [None, ""])
def test_no_report_no_results(report_uri):
    assert interval_drift_results(report_uri, VERSIONS) == {}


def test_the_views_connections_come_from_airflows_mlops_section(monkeypatch):
    from mlops_ops.ui.plugin import models_view_connections

    assert models_view_connections() == {
        "mlflow_conn_id": "mlflow_default",
        "trust_conn_id": "mlops_trust_default",
        "storage_conn_id": "aws_default",
    }
    monkeypatch.setenv("AIRFLOW__MLOPS__MODELS_VIEW_STORAGE_CONN_ID", "azure_lake")
    monkeypatch.setenv("AIRFLOW__MLOPS__MODELS_VIEW_MLFLOW_CONN_ID", "mlflow_prod")
    assert models_view_connections() == {
        "mlflow_conn_id": "mlflow_prod",
        "trust_conn_id": "mlops_trust_default",
        "storage_conn_id": "azure_lake",
    }


def test_the_provider_declares_the_views_options_with_their_defaults():
    from mlops_ops.get_provider_info import get_provider_info

    options = get_provider_info()["config"]["mlops"]["options"]
    assert {name: option["default"] for name, option in options.items()} == {
        "models_view_mlflow_conn_id": "mlflow_default",
        "models_view_trust_conn_id": "mlops_trust_default",
        "models_view_storage_conn_id": "aws_default",
    }
