"""DataVersionSensor: poke once, return a new version, defer otherwise; S3 against moto."""

from __future__ import annotations

import inspect
import json
import socket
import sys
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
from airflow.sdk.exceptions import AirflowSensorTimeout, TaskDeferred

from mlops_ops.core.lineage import DATA_VERSION as DATA_VERSION_TAG
from mlops_ops.core.optional import MissingExtraError
from mlops_ops.core.versions import local_version
from mlops_ops.hooks.mlflow import MlflowHook
from mlops_ops.sensors.data_version import DataSourceError, DataVersionSensor
from mlops_ops.triggers.data_version import DataVersionTrigger


@pytest.fixture
def data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "part-0.csv").write_text("x,y\n1,2\n")
    (folder / "_SUCCESS").write_text("")
    return folder


def fingerprint(path: Path) -> str:
    return local_version(str(path)).fingerprint


def test_constructor_stores_arguments_and_does_no_io():
    sensor = DataVersionSensor(task_id="wait", source="/does/not/exist", registered_model_name="m")
    assert sensor.kind == "auto" and sensor.accept_seen is False and sensor.seen_fingerprints is None
    init_args = inspect.signature(DataVersionSensor.__init__).parameters
    for name in DataVersionSensor.template_fields:
        assert name in init_args


def test_unknown_kind_fails_at_parse_time():
    with pytest.raises(ValueError, match="kind must be one of"):
        DataVersionSensor(task_id="wait", source="/x", kind="ftp")


def test_returns_a_new_version(data: Path):
    result = DataVersionSensor(task_id="wait", source=str(data)).execute(context={})
    assert json.loads(json.dumps(result)) == result
    assert result["fingerprint"] == fingerprint(data)
    assert result["kind"] == "local"
    assert result["files"] == [str(data / "part-0.csv")]


def test_seen_version_defers_with_a_serializable_trigger(data: Path):
    sensor = DataVersionSensor(
        task_id="wait",
        source=str(data),
        seen_fingerprints=[fingerprint(data)],
        deferrable=True,
        poke_interval=7,
        timeout=600,
    )
    with pytest.raises(TaskDeferred) as excinfo:
        sensor.execute(context={})
    deferred = excinfo.value
    assert deferred.method_name == "execute_complete"
    assert deferred.timeout == timedelta(seconds=600)
    trigger = deferred.trigger
    assert isinstance(trigger, DataVersionTrigger)
    classpath, kwargs = trigger.serialize()
    assert classpath == "mlops_ops.triggers.data_version.DataVersionTrigger"
    assert kwargs["seen_fingerprints"] == [fingerprint(data)]
    assert kwargs["poke_interval"] == 7
    json.dumps(kwargs)
    assert DataVersionTrigger(**kwargs).serialize() == (classpath, kwargs)


def test_not_deferrable_pokes_until_timeout(data: Path):
    sensor = DataVersionSensor(
        task_id="wait",
        source=str(data),
        seen_fingerprints=[fingerprint(data)],
        deferrable=False,
        poke_interval=0.05,
        timeout=0.2,
    )
    with pytest.raises(AirflowSensorTimeout):
        sensor.execute(context={})
    (data / "part-1.csv").write_text("x,y\n3,4\n")
    poked = sensor.poke(context={})
    assert poked.is_done and poked.xcom_value["fingerprint"] == fingerprint(data)


def test_not_deferrable_returns_the_version_found_by_poking(data: Path):
    sensor = DataVersionSensor(
        task_id="wait", source=str(data), seen_fingerprints=[fingerprint(data)], deferrable=False
    )
    original = sensor.poke

    def poke_after_new_data(context):
        (data / "part-1.csv").write_text("x,y\n3,4\n")
        return original(context)

    with mock.patch.object(sensor, "poke", side_effect=poke_after_new_data):
        result = sensor.execute(context={})
    assert result["fingerprint"] == fingerprint(data)
    assert len(result["files"]) == 2


@pytest.mark.parametrize(
    "seen", ["{fp}", '["{fp}", "sha256:other"]', "sha256:other, {fp}"], ids=["plain", "json", "csv"]
)
def test_seen_fingerprints_rendered_as_a_string(data: Path, seen: str):
    sensor = DataVersionSensor(
        task_id="wait", source=str(data), seen_fingerprints=seen.format(fp=fingerprint(data)), deferrable=True
    )
    with pytest.raises(TaskDeferred):
        sensor.execute(context={})


def sensor_that_saw(data: Path, **kwargs) -> DataVersionSensor:
    """A deferrable sensor on ``data`` whose current version counts as seen."""
    return DataVersionSensor(
        task_id="wait", source=str(data), seen_fingerprints=[fingerprint(data)], deferrable=True, **kwargs
    )


@pytest.mark.parametrize("accept_seen", [True, "True", "true"])
def test_accept_seen_takes_any_existing_version(data: Path, accept_seen):
    sensor = sensor_that_saw(data, accept_seen=accept_seen)
    assert sensor.execute(context={})["fingerprint"] == fingerprint(data)


def test_no_data_yet_defers(tmp_path: Path):
    sensor = DataVersionSensor(task_id="wait", source=str(tmp_path / "later" / "*.csv"), deferrable=True)
    with pytest.raises(TaskDeferred):
        sensor.execute(context={})


class TestAliasedModels:
    def aliases(self, mapping: dict[str, str | None]):
        def get_version_by_alias(self, model_name, alias):
            assert model_name == "flights"
            fp = mapping.get(alias)
            return None if fp is None else SimpleNamespace(version="3", tags={DATA_VERSION_TAG: fp})

        return mock.patch.object(
            MlflowHook, "get_version_by_alias", autospec=True, side_effect=get_version_by_alias
        )

    def test_data_of_the_champion_is_seen(self, data: Path):
        sensor = DataVersionSensor(
            task_id="wait", source=str(data), registered_model_name="flights", deferrable=True
        )
        with self.aliases({"champion": fingerprint(data)}) as lookup, pytest.raises(TaskDeferred) as excinfo:
            sensor.execute(context={})
        assert [call.args[2] for call in lookup.call_args_list] == ["champion", "challenger"]
        assert excinfo.value.trigger.seen_fingerprints == [fingerprint(data)]

    def test_data_newer_than_the_champion_is_returned(self, data: Path):
        sensor = DataVersionSensor(
            task_id="wait",
            source=str(data),
            registered_model_name="flights",
            skip_aliases=["champion"],
            deferrable=True,
        )
        with self.aliases({"champion": "sha256:older", "challenger": fingerprint(data)}) as lookup:
            assert sensor.execute(context={})["fingerprint"] == fingerprint(data)
        assert lookup.call_count == 1

    def test_accept_seen_does_not_ask_mlflow(self, data: Path):
        sensor = DataVersionSensor(
            task_id="wait", source=str(data), registered_model_name="flights", accept_seen=True
        )
        with self.aliases({"champion": fingerprint(data)}) as lookup:
            assert sensor.execute(context={})["fingerprint"] == fingerprint(data)
        lookup.assert_not_called()


class TestExecuteComplete:
    sensor = DataVersionSensor(task_id="wait", source="/data")

    def test_success_returns_the_version(self):
        version = {
            "fingerprint": "sha256:a",
            "source": "/data",
            "kind": "local",
            "files": [],
            "size_bytes": 0,
        }
        assert self.sensor.execute_complete({}, {"status": "success", "version": version}) == version

    @pytest.mark.parametrize(
        "event, error, message",
        [
            (None, DataSourceError, "without an event"),
            (
                {"status": "error", "message": "Cannot read data source '/data': boom"},
                DataSourceError,
                "boom",
            ),
            ({"status": "timeout", "message": "No new data version"}, AirflowSensorTimeout, "No new data"),
            ({"status": "success"}, DataSourceError, "returned"),
        ],
    )
    def test_failures_raise_with_the_message(self, event, error, message):
        with pytest.raises(error, match=message):
            self.sensor.execute_complete({}, event)

    def test_with_soft_fail_a_timeout_skips_but_a_broken_source_fails(self):
        from airflow.sdk.exceptions import AirflowSkipException

        sensor = DataVersionSensor(task_id="wait", source="/data", soft_fail=True)
        timeout = {"status": "timeout", "message": "No new data version"}
        with pytest.raises(AirflowSkipException):
            sensor.resume_execution("execute_complete", {"event": timeout}, context={})
        error = {"status": "error", "message": "Cannot read data source '/data': AccessDenied"}
        with pytest.raises(DataSourceError, match="AccessDenied"):
            sensor.resume_execution("execute_complete", {"event": error}, context={})


def test_missing_amazon_provider_names_the_extra(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "airflow.providers.amazon.aws.hooks.s3", None)
    with pytest.raises(MissingExtraError, match=r"mlops-ops\[aws\]"):
        DataVersionSensor(task_id="wait", source="s3://bucket-x/prefix").execute(context={})


@pytest.fixture(scope="module")
def moto_endpoint():
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_client(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch):
    connection = {
        "conn_type": "aws",
        "login": "x",
        "password": "y",
        "extra": {"endpoint_url": moto_endpoint, "region_name": "us-east-1"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_AWS_TEST", json.dumps(connection))
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id="aws_test").get_conn()


def test_s3_prefix(s3_client):
    s3_client.create_bucket(Bucket="training-data")
    s3_client.put_object(Bucket="training-data", Key="flights/part-0.parquet", Body=b"0123456789")
    s3_client.put_object(Bucket="training-data", Key="flights/_SUCCESS", Body=b"")
    s3_client.put_object(Bucket="training-data", Key="flights/.part-1.parquet.tmp", Body=b"partial")
    s3_client.put_object(Bucket="training-data", Key="flights-old/part-0.parquet", Body=b"old")

    sensor = DataVersionSensor(
        task_id="wait", source="s3://training-data/flights", storage_conn_id="aws_test"
    )
    result = sensor.execute(context={})
    json.dumps(result)
    assert result["kind"] == "s3"
    assert result["files"] == ["s3://training-data/flights/part-0.parquet"]
    assert result["size_bytes"] == 10

    again = DataVersionSensor(
        task_id="wait",
        source="s3://training-data/flights",
        storage_conn_id="aws_test",
        seen_fingerprints=[result["fingerprint"]],
        deferrable=True,
    )
    with pytest.raises(TaskDeferred) as excinfo:
        again.execute(context={})
    assert excinfo.value.trigger.storage_conn_id == "aws_test"

    s3_client.put_object(Bucket="training-data", Key="flights/part-1.parquet", Body=b"abc")
    newer = again.execute(context={})
    assert newer["fingerprint"] != result["fingerprint"]
    assert len(newer["files"]) == 2


def test_delta_table_on_s3(s3_client, moto_endpoint: str):
    import pyarrow as pa
    from deltalake import write_deltalake

    s3_client.create_bucket(Bucket="lake")
    options = {
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "y",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ALLOW_HTTP": "true",
        "AWS_S3_ALLOW_UNSAFE_RENAME": "true",
    }
    write_deltalake("s3://lake/flights", pa.table({"x": [1, 2]}), storage_options=options)
    sensor = DataVersionSensor(
        task_id="wait", source="s3://lake/flights", kind="delta", storage_conn_id="aws_test"
    )
    result = sensor.execute(context={})
    assert result["details"] == {"delta_version": 0}
    assert result["files"][0].startswith("s3://lake/flights/part-")


def test_a_pinned_data_version_is_returned_even_when_seen(data):
    pinned = fingerprint(data)
    sensor = DataVersionSensor(
        task_id="wait", source=str(data), seen_fingerprints=[pinned], pinned_fingerprint=pinned
    )
    version = sensor.execute(context={})
    assert version["fingerprint"] == pinned
    assert version["files"] == [str(data / "part-0.csv")]


def test_a_pinned_data_version_the_source_no_longer_holds_fails_without_waiting(data):
    from mlops_ops.sensors.data_version import PinnedVersionUnavailable

    pinned = fingerprint(data)
    (data / "part-1.csv").write_text("x,y\n3,4\n")
    sensor = DataVersionSensor(task_id="wait", source=str(data), pinned_fingerprint=pinned, soft_fail=True)
    with pytest.raises(PinnedVersionUnavailable) as raised:
        sensor.execute(context={})
    assert pinned in str(raised.value) and fingerprint(data) in str(raised.value)


@pytest.mark.parametrize("unpinned", ["", "None", None])
def test_an_empty_pin_waits_for_a_new_version_as_before(data, unpinned):
    sensor = sensor_that_saw(data, pinned_fingerprint=unpinned)
    with pytest.raises(TaskDeferred):
        sensor.execute(context={})


def test_a_landed_link_leading_out_fails_the_sensor_and_its_trigger_naming_it_escaped(
    data: Path, tmp_path: Path
):
    import asyncio

    from mlops_ops.core.storage import OutsideRoot

    (tmp_path / "secret.csv").write_text("not yours\n")
    (data / "part-1\n\x1b[31m.csv").symlink_to(tmp_path / "secret.csv")

    with pytest.raises(OutsideRoot) as raised:
        DataVersionSensor(task_id="wait", source=str(data)).execute(context={})

    async def first_event():
        async for event in DataVersionTrigger(source=str(data), poke_interval=0.01).run():
            return event.payload

    event = asyncio.run(first_event())
    for text in (str(raised.value), event["message"]):
        assert "part-1\\n\\x1b[31m.csv leads outside the landing root" in text
        assert "\x1b" not in text and "\n" not in text
    assert event["status"] == "error"
