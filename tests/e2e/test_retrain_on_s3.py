"""The same lifecycle with the landing zone on S3: moto's S3 server on 127.0.0.1 behind an Airflow ``aws``
connection and ``AWS_ENDPOINT_URL``, as the compose stack configures MinIO."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

MODEL = "flight_delay_s3"


@pytest.fixture
def s3_landing(monkeypatch, airflow_db):
    from tests.moto_s3 import moto_s3

    with moto_s3(monkeypatch, "landing") as (endpoint, _):
        monkeypatch.setenv("MLOPS_DATA_ROOT", "s3://landing/data")
        yield endpoint


def test_ingest_and_retrain_read_and_write_s3(s3_landing, tmp_path):
    import boto3
    from airflow.dag_processing.dagbag import DagBag

    from mlops_dev.demo import task_result
    from mlops_ops.hooks.mlflow import MlflowHook

    bag = DagBag(dag_folder=str(Path(__file__).resolve().parents[2] / "dags"))
    assert bag.import_errors == {}
    ingest = bag.dags["ingest_flights"].test(run_conf={"through_month": 2})
    assert str(ingest.state) == "success"
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_landing,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    )
    keys = sorted(item["Key"] for item in s3.list_objects_v2(Bucket="landing")["Contents"])
    assert keys == ["data/flights/month=2013-01/part-0.parquet", "data/flights/month=2013-02/part-0.parquet"]

    # The retrain DAG names its model in the module; train this one under another name so it cannot collide
    # with the local-landing test's registry state.
    retrain = bag.dags["retrain"]
    for task_id in ("wait_for_data", "evaluate_gate", "register"):
        retrain.get_task(task_id).registered_model_name = MODEL
    run = retrain.test(run_conf={"reason": "s3 landing", "force": True})
    assert str(run.state) == "success"

    version = task_result(run, "wait_for_data")
    assert version["kind"] == "s3"
    assert version["files"] == [f"s3://landing/{key}" for key in keys]
    training = task_result(run, "train")
    assert training["evaluation_uri"].startswith("s3://landing/data/evaluation/")
    registered = task_result(run, "register")
    hook = MlflowHook()
    assert hook.get_aliases(MODEL) == {"challenger": registered["version"]}
    tags = hook.client.get_model_version(MODEL, registered["version"]).tags
    assert tags["mlops.data_version"] == version["fingerprint"]
    assert (
        json.loads(hook.client.get_run(training["run_id"]).data.tags["mlops.data_files"]) == version["files"]
    )
