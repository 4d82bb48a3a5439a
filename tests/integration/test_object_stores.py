"""Azure Blob Storage (``abfs://``) and Google Cloud Storage (``gs://``) behind their Airflow connections, on real
emulators (Azurite, fake-gcs-server): the same storage layer, scoring workflow and operators that the ``s3://``
tests run on moto, with nothing but the URI and the connection changed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pandas as pd
import pyarrow as pa
import pytest

from mlops_ops.core import scoring, storage, training
from mlops_ops.core.model_artifacts import ModelInput, PinnedModel
from mlops_ops.core.modelspec import ModelSpec
from mlops_ops.hooks.object_storage import object_store_for
from tests.object_store_emulators import azurite, fake_gcs
from tests.unit import synthetic

PINNED = PinnedModel(synthetic.MODEL, "3", "champion", "run", "src", "sha256:abc")
MARCH_2 = scoring.Interval(datetime(2024, 3, 2, tzinfo=UTC), datetime(2024, 3, 3, tzinfo=UTC))


@pytest.fixture(params=["abfs", "gs"])
def lake(request, monkeypatch, tmp_path):
    """One emulator per test, with a container (bucket) ``lake`` and its connection set."""
    start = azurite if request.param == "abfs" else fake_gcs
    with start(monkeypatch, "lake", tmp_path / "logs") as emulator:
        yield emulator


@pytest.fixture(scope="module")
def spec() -> ModelSpec:
    return ModelSpec.from_dict(synthetic.spec())


@pytest.fixture(scope="module")
def visits() -> pd.DataFrame:
    """March 1-4 2024, one visit every 4 minutes."""
    return synthetic.visits(4 * 360, seed=5, start="2024-03-01", minutes=4)


@pytest.fixture(scope="module")
def model(spec, visits):
    return training.fit(spec, visits[visits[spec.target].notna()], params={"max_iter": 20}, seed=1)


def _files_under(uri: str, object_store) -> list[str]:
    import pyarrow.fs as pafs

    filesystem, path = storage.resolve(uri, object_store)
    selector = pafs.FileSelector(path, recursive=True, allow_not_found=True)
    return sorted(i.path for i in filesystem.get_file_info(selector) if i.type == pafs.FileType.File)


def test_files_are_written_read_moved_and_deleted_through_the_connection(lake):
    uri = lake.uri("raw", "month=2024-03", "part-0.parquet")
    object_store = object_store_for(uri, lake.conn_id)
    assert object_store.scheme == lake.scheme and object_store.endpoint == lake.endpoint
    frame = pd.DataFrame({"id": [1, 2, 3], "name": ["a", "b", "c"]})

    assert storage.write_parquet_atomic(frame, uri, object_store) == uri
    assert storage.exists(uri, object_store)
    pd.testing.assert_frame_equal(storage.read_parquet([uri], object_store), frame)
    storage.write_bytes_atomic(b'{"ok": true}', lake.uri("raw", "result.json"), object_store)

    moved = lake.uri("published", "part-0.parquet")
    scoring.move(uri, moved, object_store)  # what publishing a partition does: copy, then delete the source
    assert not storage.exists(uri, object_store) and storage.exists(moved, object_store)
    pd.testing.assert_frame_equal(storage.read_parquet([moved], object_store), frame)

    assert storage.delete_tree(lake.uri("raw"), object_store) == 1  # the JSON file; the Parquet file moved
    assert _files_under(lake.uri("raw"), object_store) == []
    assert _files_under(lake.uri("published"), object_store) == ["lake/published/part-0.parquet"]
    storage.delete_file(moved, object_store)
    storage.delete_file(moved, object_store)  # gone already: nothing to do, no error
    assert not storage.exists(moved, object_store)


def test_sharded_scoring_reads_the_store_and_publishes_the_same_rows_as_locally(
    lake, spec, visits, model, tmp_path
):
    inputs = [ModelInput(c, "string") for c in spec.categorical_features] + [
        ModelInput(c, "double") for c in spec.numerical_features
    ]
    config = scoring.ScoringConfig(
        features=inputs, key_columns=list(synthetic.KEY), time_column=synthetic.TIME_COLUMN, chunk_rows=200
    )

    def score(source: str, out: str, object_store, token: str) -> scoring.PublishedPartition:
        staging = scoring.staging_folder(out, PINNED.name, MARCH_2, token)
        for index in range(2):
            scoring.score_shard(
                model=model,
                pinned=PINNED,
                config=config,
                interval=MARCH_2,
                source_uri=source,
                destination_uri=scoring.shard_uri(staging, index, 2),
                shard_index=index,
                shard_count=2,
                object_store=object_store,
            )
        return scoring.publish(
            staging=staging,
            destination_uri=scoring.partition_uri(out, PINNED.name, MARCH_2),
            pinned=PINNED,
            interval=MARCH_2,
            shard_count=2,
            object_store=object_store,
        )

    object_store = object_store_for(lake.uri("visits"), lake.conn_id)
    for day, rows in visits.groupby(visits[synthetic.TIME_COLUMN].dt.day):
        storage.write_parquet_atomic(
            pa.Table.from_pandas(rows, preserve_index=False),
            lake.uri("visits", f"day={day}", "x.parquet"),
            object_store,
        )
        storage.write_parquet_atomic(rows, str(tmp_path / "visits" / f"day={day}" / "x.parquet"))

    remote = score(lake.uri("visits"), lake.uri("predictions"), object_store, "run-1")
    local = score(str(tmp_path / "visits"), str(tmp_path / "predictions"), None, "run-1")

    assert remote.uri == scoring.partition_uri(lake.uri("predictions"), PINNED.name, MARCH_2)
    assert remote.uri.startswith(f"{lake.scheme}://lake/predictions/")
    in_interval = visits[synthetic.TIME_COLUMN].dt.day == 2
    assert remote.rows == local.rows == int(in_interval.sum()) > 0
    # The same predictions row for row; only the time each was scored differs.
    published = storage.read_parquet([remote.uri], object_store).drop(columns="scored_at")
    expected = storage.read_parquet([local.uri]).drop(columns="scored_at")
    published, expected = (f.sort_values(list(synthetic.KEY)) for f in (published, expected))
    pd.testing.assert_frame_equal(published.reset_index(drop=True), expected.reset_index(drop=True))
    # The staged shards are gone: the partition is the only file under predictions/.
    assert _files_under(lake.uri("predictions"), object_store) == [remote.uri.partition("://")[2]]

    again = score(lake.uri("visits"), lake.uri("predictions"), object_store, "run-2")
    assert again.uri == remote.uri and again.rows == remote.rows
    assert _files_under(lake.uri("predictions"), object_store) == [remote.uri.partition("://")[2]]


def test_the_validation_operator_reads_landed_files_through_its_storage_connection(lake, tmp_path):
    from airflow.sdk.exceptions import AirflowFailException

    from mlops_ops.operators.validation import DataValidationOperator

    synthetic.config_files(tmp_path / "include")
    suite = str(tmp_path / "include" / "visits_raw.json")
    object_store = object_store_for(lake.uri("landing"), lake.conn_id)
    good = lake.uri("landing", "month=2024-01", "part-0.parquet")
    storage.write_parquet_atomic(synthetic.visits(500, seed=1, start="2024-01-01"), good, object_store)
    bad_rows = synthetic.visits(500, seed=2, start="2024-02-01")
    bad_rows.loc[3, "store"] = "XXX"
    bad = lake.uri("landing", "month=2024-02", "part-0.parquet")
    storage.write_parquet_atomic(bad_rows, bad, object_store)

    def validate(files: list[str]) -> dict:
        version = {
            "fingerprint": "sha256:abc",
            "source": lake.uri("landing"),
            "kind": "parquet",
            "files": files,
        }
        operator = DataValidationOperator(
            task_id="validate", data_version=version, suite=suite, storage_conn_id=lake.conn_id
        )
        return operator.execute(context={"ti": _TaskInstance()})

    assert validate([good]) == {
        "suite": "visits_raw",
        "data_version": "sha256:abc",
        "success": True,
        "files": 1,
        "rows": 500,
        "failed": [],
    }
    with pytest.raises(
        AirflowFailException,
        match=f"(?s)in 1 of 2 files:\n{bad}: .*expect_column_values_to_be_in_set on store",
    ):
        validate([good, bad])


def test_a_connection_for_another_store_is_refused_naming_the_type_it_needs(lake, monkeypatch):
    from mlops_ops.operators.validation import DataValidationOperator

    operator = DataValidationOperator(
        task_id="validate",
        data_version={"fingerprint": "f", "source": "s", "kind": "parquet", "files": [lake.uri("x.parquet")]},
        suite="unused.json",
        storage_conn_id="aws_default",
    )
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", '{"conn_type": "aws", "login": "k", "password": "s"}')
    with pytest.raises(
        ValueError, match=r"connection 'aws_default' is of type 'aws'; .*:// URIs need a connection"
    ):
        operator.object_store([lake.uri("x.parquet")])


async def _first_event(trigger):
    async for event in trigger.run():
        return event
    raise AssertionError("the trigger ended without an event")


class _TaskInstance:
    """What the operator's ``execute`` uses of a task instance: pushing the summary of a failed validation."""

    def __init__(self) -> None:
        self.pushed: dict[str, object] = {}

    def xcom_push(self, key: str, value: object) -> None:
        self.pushed[key] = value


def test_a_landing_prefix_is_versioned_by_content_through_the_sensors_connection(lake):
    from mlops_ops.core.errors import DataError
    from mlops_ops.hooks.data_sources import verify_unchanged
    from mlops_ops.sensors.data_version import DataVersionSensor
    from mlops_ops.triggers.data_version import DataVersionTrigger

    object_store = object_store_for(lake.uri("landing"), lake.conn_id)
    january = lake.uri("landing", "month=01", "part-0.parquet")
    storage.write_parquet_atomic(synthetic.visits(300, seed=1, start="2024-01-01"), january, object_store)
    storage.write_bytes_atomic(b"", lake.uri("landing", "month=01", "_SUCCESS"), object_store)  # a marker
    storage.write_bytes_atomic(
        b"partial", lake.uri("landing", ".part-1.tmp"), object_store
    )  # a write under way

    def sensor(**kwargs):
        return DataVersionSensor(
            task_id="wait",
            source=lake.uri("landing"),
            storage_conn_id=lake.conn_id,
            deferrable=False,
            **kwargs,
        )

    first = sensor().execute(context={})
    assert first["kind"] == lake.scheme and first["files"] == [january]
    assert first["details"] == {"root": lake.uri("landing")}
    # Writing the same bytes again is the same version (content, not modification times); a new month is not.
    storage.write_parquet_atomic(synthetic.visits(300, seed=1, start="2024-01-01"), january, object_store)
    assert sensor().execute(context={})["fingerprint"] == first["fingerprint"]
    verify_unchanged(first, lake.conn_id)
    assert sensor(seen_fingerprints=[first["fingerprint"]]).poke(context={}).is_done is False
    february = lake.uri("landing", "month=02", "part-0.parquet")
    storage.write_parquet_atomic(synthetic.visits(300, seed=2, start="2024-02-01"), february, object_store)
    second = sensor(seen_fingerprints=[first["fingerprint"]]).execute(context={})
    assert second["files"] == [january, february] and second["fingerprint"] != first["fingerprint"]
    # Deferred, the sensor's trigger reads the store through the same connection, in the triggerer.
    trigger = DataVersionTrigger(
        source=lake.uri("landing"),
        seen_fingerprints=[first["fingerprint"]],
        storage_conn_id=lake.conn_id,
        poke_interval=0.05,
        timeout_seconds=30,
    )
    event = asyncio.run(_first_event(trigger))
    assert event.payload["status"] == "success"
    assert event.payload["version"]["fingerprint"] == second["fingerprint"]

    # January re-landed with other rows between the sensor and training: refused, naming both versions.
    storage.write_parquet_atomic(synthetic.visits(300, seed=9, start="2024-01-01"), january, object_store)
    with pytest.raises(DataError, match=f"the files of data version {second['fingerprint']} changed since"):
        verify_unchanged(second, lake.conn_id)
    storage.delete_file(february, object_store)
    with pytest.raises(DataError, match=f"{february} is gone since its data version was found"):
        verify_unchanged(second, lake.conn_id)


def test_a_delta_table_on_azure_is_versioned_through_the_wasb_connection(monkeypatch, tmp_path):
    import deltalake

    from mlops_ops.hooks.data_sources import find_data_version
    from mlops_ops.hooks.object_storage import delta_storage_options

    with azurite(monkeypatch, "tables", tmp_path / "logs") as emulator:
        table = emulator.uri("visits")
        options = delta_storage_options(table, emulator.conn_id)
        assert options["azure_storage_endpoint"] == f"{emulator.endpoint}/devstoreaccount1"
        deltalake.write_deltalake(
            table, synthetic.visits(100, seed=1, start="2024-01-01"), storage_options=options
        )
        first = find_data_version(table, "delta", emulator.conn_id)
        assert (first.kind, first.details["delta_version"]) == ("delta", 0)
        assert len(first.files) == 1 and first.files[0].startswith("abfs://tables/visits/")
        assert find_data_version(table, "delta", emulator.conn_id).fingerprint == first.fingerprint
        deltalake.write_deltalake(
            table, synthetic.visits(100, seed=2, start="2024-02-01"), mode="append", storage_options=options
        )
        second = find_data_version(table, "delta", emulator.conn_id)
        assert second.details["delta_version"] == 1 and len(second.files) == 2
        assert second.fingerprint != first.fingerprint
