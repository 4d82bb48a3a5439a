"""OpenLineage facets of TrainOperator and RegisterOperator, with the OpenLineage provider installed."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from mlops_ops.core.lineage import dataset_identity
from mlops_ops.operators.registry import RegisterOperator
from mlops_ops.operators.training import TrainOperator

pytest.importorskip("airflow.providers.openlineage", reason="the OpenLineage provider is not installed")

TRACKING = "http://mlflow.test:5000"


@pytest.fixture(autouse=True)
def mlflow_connection(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps({"conn_type": "mlflow", "host": TRACKING}))


def _ti(task_id: str, result: dict | None) -> SimpleNamespace:
    """The task instance the OpenLineage listener hands over: its own result in XCom."""
    return SimpleNamespace(
        task_id=task_id,
        xcom_pull=lambda task_ids, key: result if (task_ids, key) == (task_id, "return_value") else None,
    )


def _ids(datasets) -> list[tuple[str, str]]:
    return [(dataset.namespace, dataset.name) for dataset in datasets]


def test_dataset_identity_follows_openlineage_naming(tmp_path):
    assert dataset_identity("s3://landing/flights/month=01.parquet") == (
        "s3://landing",
        "flights/month=01.parquet",
    )
    assert dataset_identity(str(tmp_path / "a.parquet")) == ("file", str(tmp_path / "a.parquet"))
    assert dataset_identity((tmp_path / "a.parquet").as_uri()) == ("file", str(tmp_path / "a.parquet"))


def test_training_reports_the_files_it_read_and_the_model_it_logged():
    from airflow.providers.openlineage.extractors import OperatorLineage

    files = ["/data/flights/month=01.parquet", "s3://landing/flights/month=02.parquet"]
    train = TrainOperator(
        task_id="train", model_spec="spec.yaml", data_version={"fingerprint": "sha256:aa", "files": files}
    )
    lineage = train.get_openlineage_facets_on_complete(
        _ti("train", {"model_uri": "models:/m-1", "run_id": "r"})
    )
    assert isinstance(lineage, OperatorLineage)
    assert _ids(lineage.inputs) == [
        ("file", "/data/flights/month=01.parquet"),
        ("s3://landing", "flights/month=02.parquet"),
    ]
    assert _ids(lineage.outputs) == [(TRACKING, "models:/m-1")]


def test_registration_reports_the_model_version_it_registered():
    register = RegisterOperator(
        task_id="register",
        training={"model_uri": "models:/m-1", "run_id": "r", "model_name": "flight_delay"},
        decision={"passed": True, "run_id": "r"},
    )
    lineage = register.get_openlineage_facets_on_complete(
        _ti("register", {"model_name": "flight_delay", "version": "3", "run_id": "r"})
    )
    assert _ids(lineage.inputs) == [(TRACKING, "models:/m-1")]
    assert _ids(lineage.outputs) == [(TRACKING, "flight_delay/versions/3")]
    # A task that registered nothing (no result) reports no lineage rather than a guess.
    nothing = register.get_openlineage_facets_on_complete(_ti("register", None))
    assert (nothing.inputs, nothing.outputs) == ([], [])


def test_without_the_provider_there_is_no_lineage(monkeypatch):
    import sys

    from mlops_ops.operators import openlineage

    monkeypatch.setitem(sys.modules, "airflow.providers.openlineage.extractors", None)
    assert openlineage.operator_lineage([("file", "/x")], []) is None
