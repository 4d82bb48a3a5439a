"""S3 access for pyarrow and deltalake resolved from the Airflow connection the way boto3 resolves it."""

from __future__ import annotations

import json

import pytest

from mlops_ops.hooks.object_storage import aws_access, delta_storage_options, s3_options_for


@pytest.fixture(scope="module")
def moto_endpoint():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def _connection(monkeypatch, **extra):
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_UNIT",
        json.dumps({"conn_type": "aws", "login": "key", "password": "secret", "extra": extra}),
    )


def test_local_paths_need_no_connection():
    assert s3_options_for(["/data/a.parquet", "relative/b.parquet"], "no_such_connection") is None
    assert delta_storage_options("/tables/flights", "no_such_connection") is None


def test_endpoint_from_the_connection_extra(monkeypatch, moto_endpoint):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    _connection(monkeypatch, endpoint_url=moto_endpoint, region_name="eu-west-3")
    options = s3_options_for("s3://bucket/key", "aws_unit")
    assert options["endpoint_override"] == moto_endpoint.removeprefix("http://")
    assert options["scheme"] == "http"
    assert options["region"] == "eu-west-3"
    assert (options["access_key"], options["secret_key"]) == ("key", "secret")


def test_endpoint_from_the_environment_reaches_pyarrow(monkeypatch, moto_endpoint):
    """The compose stack sets AWS_ENDPOINT_URL, not the connection: pyarrow must still talk to it."""
    import boto3
    import pyarrow as pa

    from mlops_ops.core import storage

    _connection(monkeypatch, region_name="us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        aws_access_key_id="key",
        aws_secret_access_key="secret",
        region_name="us-east-1",
    ).create_bucket(Bucket="env-endpoint")
    options = s3_options_for("s3://env-endpoint/t.parquet", "aws_unit")
    assert options["endpoint_override"] == moto_endpoint.removeprefix("http://")
    storage.write_parquet_atomic(pa.table({"a": [1, 2]}), "s3://env-endpoint/t.parquet", options)
    assert storage.read_parquet(["s3://env-endpoint/t.parquet"], options)["a"].tolist() == [1, 2]
    delta = delta_storage_options("s3://env-endpoint/table", "aws_unit")
    assert delta["AWS_ENDPOINT_URL"] == moto_endpoint and delta["AWS_ALLOW_HTTP"] == "true"


def test_aws_itself_gets_no_endpoint_override(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    _connection(monkeypatch, region_name="us-west-2")
    access = aws_access("aws_unit")
    assert access.endpoint_url is None
    assert access.region == "us-west-2"


def test_s3_endpoint_names_the_store_or_aws():
    from mlops_ops.hooks.object_storage import s3_endpoint

    assert s3_endpoint({"endpoint_override": "minio:9000", "scheme": "http"}) == "http://minio:9000"
    assert s3_endpoint({"region": "eu-west-1"}) == "https://s3.eu-west-1.amazonaws.com"


def test_a_stopped_s3_endpoint_fails_naming_it_and_local_paths_are_left_alone(monkeypatch, tmp_path):
    import pyarrow as pa
    from moto.server import ThreadedMotoServer

    from mlops_ops.core import storage
    from mlops_ops.core.services import ServiceUnavailable
    from mlops_ops.hooks.object_storage import s3_unreachable_as

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    server.stop()
    server._server.server_close()  # stop() leaves the socket listening: close it, as a dead endpoint is
    endpoint = f"http://{host}:{port}"
    _connection(monkeypatch, endpoint_url=endpoint, region_name="us-east-1")
    options = s3_options_for("s3://bucket/predictions", "aws_unit")
    table = pa.table({"a": [1]})
    with (
        pytest.raises(ServiceUnavailable) as raised,
        s3_unreachable_as(options, "publishing the predictions of [2013-01-10, 2013-01-11)"),
    ):
        storage.write_parquet_atomic(table, "s3://bucket/predictions/p.parquet", options)
    assert str(raised.value).startswith(
        f"S3 endpoint {endpoint} unreachable while publishing the predictions of [2013-01-10, 2013-01-11): "
    )
    with s3_unreachable_as(None, "writing locally"):
        storage.write_parquet_atomic(table, str(tmp_path / "p.parquet"))
