"""verify_unchanged: the files a task reads are still the data version the sensor found."""

from __future__ import annotations

import json

import pytest

from mlops_ops.core.errors import DataError
from mlops_ops.core.versions import local_version, s3_version
from mlops_ops.hooks.data_sources import list_s3_objects, verify_unchanged


def test_local_version_unchanged_passes_and_a_relanded_file_fails(tmp_path):
    for month in (1, 2):
        (tmp_path / f"month={month}").mkdir()
        (tmp_path / f"month={month}" / "part-0.parquet").write_bytes(f"month {month}".encode())
    version = local_version(str(tmp_path)).to_dict()
    verify_unchanged(version, None)

    # A new month landing beside it does not change the files of this version.
    (tmp_path / "month=3").mkdir()
    (tmp_path / "month=3" / "part-0.parquet").write_bytes(b"month 3")
    verify_unchanged(version, None)

    (tmp_path / "month=2" / "part-0.parquet").write_bytes(b"month 2, corrected")
    with pytest.raises(DataError, match="changed since it was found"):
        verify_unchanged(version, None)
    (tmp_path / "month=1" / "part-0.parquet").unlink()
    with pytest.raises(DataError, match="is gone"):
        verify_unchanged(version, None)


def test_s3_version_checked_by_etag(monkeypatch):
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        monkeypatch.setenv(
            "AIRFLOW_CONN_AWS_SOURCES",
            json.dumps(
                {"conn_type": "aws", "login": "k", "password": "s", "extra": {"endpoint_url": endpoint}}
            ),
        )
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="k",
            aws_secret_access_key="s",
            region_name="us-east-1",
        )
        s3.create_bucket(Bucket="land")
        s3.put_object(Bucket="land", Key="flights/a.parquet", Body=b"a")
        version = s3_version(
            list_s3_objects("s3://land/flights", "aws_sources"), "s3://land/flights"
        ).to_dict()
        verify_unchanged(version, "aws_sources")
        s3.put_object(Bucket="land", Key="flights/a.parquet", Body=b"a, corrected")
        with pytest.raises(DataError, match="changed since it was found"):
            verify_unchanged(version, "aws_sources")
        s3.delete_object(Bucket="land", Key="flights/a.parquet")
        with pytest.raises(DataError, match="are gone"):
            verify_unchanged(version, "aws_sources")
    finally:
        server.stop()
