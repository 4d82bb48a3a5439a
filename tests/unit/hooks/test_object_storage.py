"""S3 access for pyarrow and deltalake resolved from the Airflow connection the way boto3 resolves it."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from mlops_ops.hooks.object_storage import aws_access, delta_storage_options, object_store_for


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
    assert object_store_for(["/data/a.parquet", "relative/b.parquet"], "no_such_connection") is None
    assert delta_storage_options("/tables/flights", "no_such_connection") is None
    assert delta_storage_options("gs://lake/table", "no_such_connection") is None


def test_endpoint_from_the_connection_extra(monkeypatch, moto_endpoint):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    _connection(monkeypatch, endpoint_url=moto_endpoint, region_name="eu-west-3")
    store = object_store_for("s3://bucket/key", "aws_unit")
    assert store.endpoint == moto_endpoint
    options = store.options
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
    options = object_store_for("s3://env-endpoint/t.parquet", "aws_unit")
    assert options.options["endpoint_override"] == moto_endpoint.removeprefix("http://")
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


def test_the_s3_store_names_aws_regional_endpoint_and_hides_its_secrets(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    _connection(monkeypatch, region_name="eu-west-1")
    store = object_store_for("s3://bucket/key", "aws_unit")
    assert store.endpoint == "https://s3.eu-west-1.amazonaws.com"
    assert store.service == "S3 endpoint"
    assert "secret" not in repr(store) and "s3" in repr(store)


def test_a_stopped_s3_endpoint_fails_naming_it_and_local_paths_are_left_alone(monkeypatch, tmp_path):
    import pyarrow as pa
    from moto.server import ThreadedMotoServer

    from mlops_ops.core import storage
    from mlops_ops.core.services import ServiceUnavailable
    from mlops_ops.hooks.object_storage import store_unreachable_as

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    server.stop()
    server._server.server_close()  # stop() leaves the socket listening: close it, as a dead endpoint is
    endpoint = f"http://{host}:{port}"
    _connection(monkeypatch, endpoint_url=endpoint, region_name="us-east-1")
    options = object_store_for("s3://bucket/predictions", "aws_unit")
    table = pa.table({"a": [1]})
    with (
        pytest.raises(ServiceUnavailable) as raised,
        store_unreachable_as(options, "publishing the predictions of [2013-01-10, 2013-01-11)"),
    ):
        storage.write_parquet_atomic(table, "s3://bucket/predictions/p.parquet", options)
    assert str(raised.value).startswith(
        f"S3 endpoint {endpoint} unreachable while publishing the predictions of [2013-01-10, 2013-01-11): "
    )
    with store_unreachable_as(None, "writing locally"):
        storage.write_parquet_atomic(table, str(tmp_path / "p.parquet"))


def _set_connection(monkeypatch, conn_id, **fields):
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


def test_an_azure_store_from_a_wasb_connection_with_an_account_key(monkeypatch):
    _set_connection(
        monkeypatch,
        "lake",
        conn_type="wasb",
        login="teamaccount",
        password="a2V5",  # pragma: allowlist secret
        host="http://127.0.0.1:10000",
    )
    store = object_store_for(["abfs://scores/2024/p.parquet", "/local/also.parquet"], "lake")
    assert store.scheme == "abfs" and store.service == "Azure Blob endpoint"
    assert store.endpoint == "http://127.0.0.1:10000"
    assert dict(store.options) == {
        "account_name": "teamaccount",
        "account_key": "a2V5",  # pragma: allowlist secret
        "blob_storage_authority": "127.0.0.1:10000",
        "blob_storage_scheme": "http",
        "dfs_storage_authority": "127.0.0.1:10000",
        "dfs_storage_scheme": "http",
    }
    assert "a2V5" not in repr(store)


def test_an_azure_store_from_a_sas_token_or_a_service_principal_on_azure_itself(monkeypatch):
    _set_connection(
        monkeypatch, "sas", conn_type="wasb", extra={"account_name": "acct", "sas_token": "sv=1&sig=x"}
    )
    store = object_store_for("abfs://c/p", "sas")
    assert dict(store.options) == {"account_name": "acct", "sas_token": "sv=1&sig=x"}
    assert store.endpoint == "https://acct.blob.core.windows.net"
    _set_connection(
        monkeypatch,
        "principal",
        conn_type="wasb",
        login="acct",
        extra={"tenant_id": "t", "client_id": "c", "client_secret": "s"},  # pragma: allowlist secret
    )
    assert dict(object_store_for("abfs://c/p", "principal").options) == {
        "account_name": "acct",
        "tenant_id": "t",
        "client_id": "c",
        "client_secret": "s",  # pragma: allowlist secret
    }


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"conn_type": "aws", "login": "k"},
            "connection 'bad' is of type 'aws'; abfs:// URIs need a connection of type adls or wasb",
        ),
        (
            {"conn_type": "wasb"},
            "connection 'bad' names no storage account: set its login or extra account_name",
        ),
        (
            {"conn_type": "wasb", "login": "a", "password": "k", "extra": {"sas_token": "t"}},
            "connection 'bad' sets both an account key and a sas_token: keep one",
        ),
    ],
)
def test_an_azure_connection_that_cannot_work_is_refused_naming_what_is_wrong(monkeypatch, fields, message):
    _set_connection(monkeypatch, "bad", **fields)
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)") + "$"):
        object_store_for("abfs://c/p", "bad")


def test_abfs_without_a_connection_is_refused_and_gs_falls_back_to_default_credentials():
    with pytest.raises(ValueError, match="there is no connection 'missing_conn'"):
        object_store_for("abfs://c/p", "missing_conn")
    store = object_store_for("gs://bucket/p", "missing_conn")
    assert (store.scheme, store.endpoint) == ("gs", "https://storage.googleapis.com")
    assert dict(store.options) == {"retry_time_limit": timedelta(seconds=60)}


def test_a_gcs_store_from_a_google_connection(monkeypatch):
    _set_connection(
        monkeypatch,
        "gcp",
        conn_type="google_cloud_platform",
        host="http://127.0.0.1:4443",
        extra={"project": "ml", "retry_time_limit_seconds": 5},
    )
    store = object_store_for("gs://bucket/p.parquet", "gcp")
    assert dict(store.options) == {
        "retry_time_limit": timedelta(seconds=5),
        "project_id": "ml",
        "endpoint_override": "127.0.0.1:4443",
        "scheme": "http",
        "anonymous": True,
    }
    assert store.service == "GCS endpoint" and store.endpoint == "http://127.0.0.1:4443"
    _set_connection(
        monkeypatch, "keyed", conn_type="google_cloud_platform", extra={"key_path": "/secrets/sa.json"}
    )
    with pytest.raises(
        ValueError, match="holds a service account key, which pyarrow's GCS filesystem cannot take"
    ):
        object_store_for("gs://bucket/p", "keyed")


def test_an_s3_uri_with_an_azure_connection_is_refused(monkeypatch):
    _set_connection(monkeypatch, "lake", conn_type="wasb", login="acct", password="k")
    with pytest.raises(
        ValueError, match=r"^connection 'lake' is of type 'wasb'; s3:// URIs need a connection of type aws$"
    ):
        object_store_for("s3://bucket/key", "lake")


def test_uris_in_two_kinds_of_store_need_two_connections():
    with pytest.raises(
        ValueError,
        match=r"^one storage connection configures one object store, but these URIs are in abfs:// and s3://$",
    ):
        object_store_for(["s3://a/b", "abfs://c/d"], "aws_default")


def test_s3_deletes_go_through_the_connections_client_and_leave_no_directory_marker(
    monkeypatch, moto_endpoint
):
    import boto3
    import pandas as pd

    from mlops_ops.core import storage

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    _connection(monkeypatch, endpoint_url=moto_endpoint, region_name="us-east-1")
    client = boto3.client(
        "s3", endpoint_url=moto_endpoint, aws_access_key_id="key", aws_secret_access_key="secret"
    )  # pragma: allowlist secret
    client.create_bucket(Bucket="markers")
    store = object_store_for("s3://markers/x", "aws_unit")
    assert store.remover is not None
    frame = pd.DataFrame({"a": [1, 2]})
    for name in ("staging/run-1/part-0.parquet", "staging/run-1/part-1.parquet", "published/part-0.parquet"):
        storage.write_parquet_atomic(frame, f"s3://markers/{name}", store)

    assert storage.delete_tree("s3://markers/staging/run-1", store) == 2
    storage.delete_file("s3://markers/published/part-0.parquet", store)
    storage.delete_file("s3://markers/published/part-0.parquet", store)  # gone already: no error

    # Not even an empty "staging/" or "published/" object is left, as pyarrow's deletes would leave.
    assert client.list_objects_v2(Bucket="markers").get("KeyCount") == 0


def test_an_s3_delete_the_store_refuses_fails_naming_how_many_and_the_first_key():
    from mlops_ops.hooks.object_storage import S3Remover

    class Refusing:
        def get_paginator(self, name):
            class Pages:
                def paginate(self, **kwargs):
                    return [{"Contents": [{"Key": "p/a"}, {"Key": "p/b"}]}]

            return Pages()

        def delete_objects(self, **kwargs):
            return {"Errors": [{"Key": "p/b", "Code": "AccessDenied"}]}

    remover = S3Remover("aws_unit")
    object.__setattr__(remover, "_client", lambda: Refusing())

    with pytest.raises(
        OSError, match=r"refused to delete 1 of 2 objects under s3://bucket/p/, first p/b: AccessDenied"
    ):
        remover.delete_prefix("bucket", "p/")
