"""Compaction: the stream scorer's output records of one interval, as batch scoring's prediction partition.

Monitoring reads predictions one way: the partition ``<output_root>/model=<name>/interval=<start>_<end>/
predictions.parquet`` (:func:`~mlops_ops.core.scoring.partition_uri`), with batch scoring's columns (the key
columns, the task's prediction columns, ``model_name``, ``model_version``, ``interval_start``, ``interval_end``,
``scored_at``) and scoring metadata. :func:`compact_interval` writes that partition from the output stream, so the
drift and delayed-label performance checks run on streamed predictions exactly as on batch ones.

- **Which records.** Those whose ``event_time`` lies in the interval, read from the records written between the
  interval's start (less ``max_clock_skew``) and its end plus ``max_lateness``: an event scored later than that
  is left out (a later run of the same interval takes it in, while the stream still holds it). A replay of old
  events (a day of 2013 flights sent today) is written long after its time: ``max_lateness=None`` reads to the
  stream's end.
- **One row per event.** Records are deduplicated by ``event_id``, keeping the first written (a producer that
  sent an event twice gets one prediction downstream); a partition compacted before keeps its rows and gains the
  events it lacked, so a rerun never changes or drops a row, even after the stream was trimmed.
- **In one step.** The partition is written under a temporary name and moved into place; a rerun that finds
  nothing new leaves it as it is (``status`` ``"unchanged"``).
- **Beside batch scoring.** Two columns follow the key columns: ``event_id`` and ``event_time``. The metadata
  names the writer (``"writer": "stream-compaction"``), the stream, and the rows of each version
  (``model_versions``); ``model_version`` is the version that scored the latest event. A partition batch scoring
  published is never replaced (one interval, one pattern: give the stream its own ``output_root``, or score the
  interval one way).

An alias that moved during the interval leaves rows of two versions in its partition: drift is checked against
the latest version's training data, and the performance check refuses the interval, naming the versions (it
measures one version per interval). Compact hourly to keep such intervals short.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from mlops_ops.core import storage
from mlops_ops.core.errors import DataError
from mlops_ops.core.scoring import (
    Interval,
    PublishedPartition,
    ScoredTask,
    output_schema,
    partition_uri,
    read_file_metadata,
)
from mlops_ops.core.scoring.batch import _StagedWriter

if TYPE_CHECKING:
    import pyarrow as pa

    from mlops_ops.core.storage import ObjectStore

log = logging.getLogger(__name__)

#: The ``writer`` recorded in a compacted partition's metadata.
WRITER = "stream-compaction"
#: The columns a compacted partition holds after the key columns.
EVENT_COLUMNS = ("event_id", "event_time")
DEFAULT_MAX_LATENESS = timedelta(hours=1)
DEFAULT_MAX_CLOCK_SKEW = timedelta(minutes=5)
#: Records turned into columns at a time (bounds the Python objects alive at once).
CHUNK_RECORDS = 50_000


class OutputRecords(Protocol):
    """What compaction needs of a stream engine: the output records written in a time range."""

    def records(self, start_ms: int, end_ms: int | None) -> Iterator[Mapping[str, str]]:
        """The output records written from ``start_ms`` to ``end_ms`` (epoch ms, both included; ``None``: to the
        stream's end), oldest first."""

    def describe(self) -> str:
        """Where the records are read from, without credentials (recorded in the partition's metadata)."""


@dataclass(frozen=True)
class CompactionResult:
    """What compacting an interval did.

    :param partition: the partition, as batch scoring's publish reports one (``shards`` is 0; ``status``
        ``"published"``, ``"unchanged"`` or ``"empty"``).
    :param records_read: output records read from the stream.
    :param in_interval: of them, records of this model whose event lies in the interval.
    :param duplicates: of those, records of an event already kept (from the stream or the earlier partition).
    :param kept_rows: rows the earlier partition held and kept.
    :param other_models: records of other models in the stream (skipped).
    :param versions: rows per model version in the partition.
    """

    partition: PublishedPartition
    records_read: int
    in_interval: int
    duplicates: int
    kept_rows: int
    other_models: int
    versions: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The partition's fields (as :meth:`PublishedPartition.to_dict`) and the counts."""
        return {
            **self.partition.to_dict(),
            "records_read": self.records_read,
            "in_interval": self.in_interval,
            "duplicates": self.duplicates,
            "kept_rows": self.kept_rows,
            "other_models": self.other_models,
            "versions": dict(self.versions),
        }


def compact_interval(
    source: OutputRecords,
    *,
    model_name: str,
    interval: Interval,
    output_root: str,
    key_columns: Sequence[str],
    max_lateness: timedelta | None = DEFAULT_MAX_LATENESS,
    max_clock_skew: timedelta = DEFAULT_MAX_CLOCK_SKEW,
    object_store: ObjectStore | None = None,
) -> CompactionResult:
    """Write the interval's streamed predictions of ``model_name`` as its prediction partition.

    :param source: the output stream (:class:`~mlops_ops.streaming.redis_streams.RedisOutputStream`).
    :param key_columns: the columns that identify a row (what performance monitoring joins labels on); every
        record must carry them in its ``keys`` (the scorer's ``key_columns``).
    :param max_lateness: how long after the interval's end an event may have been scored and still count;
        ``None``: any time up to now (a replay of old events).
    :param max_clock_skew: how long before the interval's start a record of it may have been written (a
        producer's clock ahead of the stream server's).
    :raises DataError: naming the event and the field when a record lacks a key column or its result does not
        fit its task; naming the versions when they do different tasks; when the partition is batch scoring's.
    """
    import pyarrow as pa

    keys = list(key_columns)
    if not keys:
        raise DataError("compaction needs key columns: what joins the predictions to their labels")
    clash = sorted(set(keys) & set(EVENT_COLUMNS))
    if clash:
        raise DataError(f"key column(s) {clash} have the name of a column compaction writes")
    destination = partition_uri(output_root, model_name, interval)
    previous = _previous_partition(destination, object_store)
    start_ms, end_ms = _epoch_ms(interval.start), _epoch_ms(interval.end)
    seen: set[str] = set(previous.column("event_id").to_pylist()) if previous is not None else set()
    kept_rows = len(seen)
    counts = {"read": 0, "in_interval": 0, "duplicates": 0, "other_models": 0}
    chunks: list[pa.Table] = []
    builder = _ChunkBuilder(keys)
    read_to = None if max_lateness is None else end_ms + int(max_lateness.total_seconds() * 1000)
    records = source.records(start_ms - int(max_clock_skew.total_seconds() * 1000), read_to)
    for record in records:
        counts["read"] += 1
        if record.get("model_name") != model_name:
            counts["other_models"] += 1
            continue
        event_time = _integer(record, "event_time")
        if not start_ms <= event_time < end_ms:
            continue
        counts["in_interval"] += 1
        event_id = _field(record, "event_id")
        if event_id in seen:
            counts["duplicates"] += 1
            continue
        seen.add(event_id)
        builder.add(record, event_time)
        if builder.size >= CHUNK_RECORDS:
            chunks.append(builder.table())
    if builder.size:
        chunks.append(builder.table())

    def result(partition: PublishedPartition, versions: dict[str, int]) -> CompactionResult:
        return CompactionResult(
            partition,
            counts["read"],
            counts["in_interval"],
            counts["duplicates"],
            kept_rows,
            counts["other_models"],
            versions,
        )

    new_rows = sum(chunk.num_rows for chunk in chunks)
    if new_rows == 0:
        if previous is None:
            partition = _published(None, 0, model_name, "", interval, "empty", ScoredTask())
        else:
            before = _metadata(previous)
            partition = _published(
                destination,
                previous.num_rows,
                model_name,
                str(before.get("model_version", "")),
                interval,
                "unchanged",
                ScoredTask.from_metadata(before),
            )
        return result(partition, _versions(previous) if previous is not None else {})
    scored = _one_task(builder.tasks, previous, chunks)
    new = _partition_layout(pa.concat_tables(chunks), scored, keys, model_name, interval)
    rows = new if previous is None else pa.concat_tables([_fit(previous, new.schema), new])
    versions = _versions(rows)
    latest = str(rows.column("model_version")[_latest_row(rows)].as_py())
    metadata = {
        "model_name": model_name,
        "model_version": latest,
        "model_versions": versions,
        "interval": interval.to_dict(),
        "source": source.describe(),
        "writer": WRITER,
    }
    key_fields = [rows.schema.field(name) for name in [*keys, *EVENT_COLUMNS]]
    schema = output_schema(key_fields, metadata, scored)
    rows = rows.sort_by([("event_time", "ascending"), ("event_id", "ascending")]).select(schema.names)
    rows = rows.cast(schema)
    with _StagedWriter(destination, schema, object_store) as writer:
        for batch in rows.to_batches(max_chunksize=65_536):
            writer.write(batch)
        writer.footer = {"rows": rows.num_rows, "unseen_categories": {"rows": 0, "columns": {}}}
    log.info(
        "compacted %d new and %d kept predictions of %s for %s into %s",
        new_rows,
        kept_rows,
        model_name,
        interval.describe(),
        destination,
    )
    partition = _published(destination, rows.num_rows, model_name, latest, interval, "published", scored)
    return result(partition, versions)


def _published(
    uri: str | None,
    rows: int,
    model_name: str,
    version: str,
    interval: Interval,
    status: str,
    scored: ScoredTask,
) -> PublishedPartition:
    return PublishedPartition(
        uri,
        rows,
        model_name,
        version,
        interval.to_dict(),
        0,
        status,
        {"rows": 0, "share": 0.0, "columns": {}},
        scored.task,
        scored.to_metadata().get("classes"),
    )


class _ChunkBuilder:
    """Output records -> columns: the keys, the event, the result by its task, the record columns."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys
        #: per version: its task and, for multiclass, its classes as the records name them
        self.tasks: dict[str, tuple[str, tuple[str, ...] | None]] = {}
        self._reset()

    def _reset(self) -> None:
        self.columns: dict[str, list[Any]] = {
            name: [] for name in [*self.keys, *EVENT_COLUMNS, "model_version", "scored_at", "task"]
        }
        self.results: list[dict[str, Any]] = []

    @property
    def size(self) -> int:
        return len(self.results)

    def add(self, record: Mapping[str, str], event_time: int) -> None:
        event_id = _field(record, "event_id")
        where = f"output record of event {event_id[:128]!r}"
        try:
            keys = json.loads(record.get("keys") or "{}")
            result = json.loads(_field(record, "result"))
        except ValueError as err:
            raise DataError(f"{where}: keys or result is not JSON ({err})") from err
        if not isinstance(keys, dict) or not isinstance(result, dict):
            raise DataError(f"{where}: keys and result must be JSON objects")
        missing = [name for name in self.keys if name not in keys]
        if missing:
            raise DataError(
                f"{where} lacks key column(s) {missing} (it has {sorted(keys)[:10]}): start the scorer with "
                f"--key-columns {','.join(self.keys)}, and send them in the request or the event's keys"
            )
        version = _field(record, "model_version")
        task = _field(record, "task")
        if task not in ("binary", "multiclass", "regression"):
            raise DataError(f"{where}: unknown task {task[:40]!r}")
        classes = tuple(result.get("probabilities") or {}) if task == "multiclass" else None
        known = self.tasks.setdefault(version, (task, classes))
        if known != (task, classes):
            raise DataError(
                f"{where}: version {version} scored it as {task} {classes or ''}, other events as {known[0]} "
                f"{known[1] or ''}"
            )
        if "prediction" not in result or (task == "binary" and "probability" not in result):
            raise DataError(f"{where}: its result lacks the {task} prediction (it has {sorted(result)[:10]})")
        for name in self.keys:
            self.columns[name].append(keys[name])
        self.columns["event_id"].append(event_id)
        self.columns["event_time"].append(event_time)
        self.columns["model_version"].append(int(version))
        self.columns["scored_at"].append(_integer(record, "scored_at"))
        self.columns["task"].append(task)
        self.results.append(result)

    def table(self) -> pa.Table:
        import pyarrow as pa

        arrays: dict[str, pa.Array] = {}
        for name in self.keys:
            try:
                arrays[name] = pa.array(self.columns[name])
            except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
                raise DataError(
                    f"key column {name!r} holds values of mixed types in the output records"
                ) from err
        arrays["event_id"] = pa.array(self.columns["event_id"], pa.string())
        arrays["event_time"] = pa.array(self.columns["event_time"], pa.int64()).cast(
            pa.timestamp("ms", tz="UTC")
        )
        arrays["model_version"] = pa.array(self.columns["model_version"], pa.int64())
        arrays["scored_at"] = pa.array(self.columns["scored_at"], pa.int64()).cast(
            pa.timestamp("ms", tz="UTC")
        )
        arrays["prediction"] = pa.array([result["prediction"] for result in self.results])
        arrays["probability"] = pa.array([result.get("probability") for result in self.results], pa.float64())
        # Multiclass: one column per class the records name, as the partition's probability_<class> columns.
        names = dict.fromkeys(name for _, classes in self.tasks.values() for name in classes or ())
        for name in names:
            arrays[f"probabilities.{name}"] = pa.array(
                [(result.get("probabilities") or {}).get(name) for result in self.results], pa.float64()
            )
        arrays["task"] = pa.array(self.columns["task"], pa.string())
        table = pa.table(arrays)
        self._reset()
        return table


def _one_task(
    tasks: Mapping[str, tuple[str, tuple[str, ...] | None]], previous: pa.Table | None, chunks: list[pa.Table]
) -> ScoredTask:
    """The partition's task and classes: the same for every version that scored its events, and for the
    partition compacted before.

    :raises DataError: naming the versions and their tasks when they differ.
    """
    seen = {version: (task, classes) for version, (task, classes) in tasks.items()}
    before = ScoredTask.from_metadata(_metadata(previous)) if previous is not None else None
    if before is not None:
        classes = tuple(str(value) for value in before.classes) if before.classes else None
        seen.setdefault("compacted before", (before.task, classes))
    distinct = {value for value in seen.values()}
    if len(distinct) > 1:
        described = {
            version: f"{task} {list(classes)}" if classes else task
            for version, (task, classes) in seen.items()
        }
        raise DataError(
            f"the interval's events were scored for different tasks or classes: {described}; a partition holds "
            "one task's prediction columns"
        )
    task, classes = distinct.pop()
    if task != "multiclass":
        return ScoredTask(task)  # type: ignore[arg-type]
    if before is not None:
        return before
    labels = [value for chunk in chunks for value in chunk.column("prediction").to_pylist()]
    if all(isinstance(value, int) and not isinstance(value, bool) for value in labels):
        return ScoredTask("multiclass", tuple(int(value) for value in classes or ()))
    return ScoredTask("multiclass", tuple(classes or ()))


def _partition_layout(
    table: pa.Table, scored: ScoredTask, keys: list[str], model_name: str, interval: Interval
) -> pa.Table:
    """The builder's columns as a partition's: keys, event, the task's prediction columns, record columns."""
    import pyarrow as pa

    columns: dict[str, Any] = {name: table.column(name) for name in [*keys, *EVENT_COLUMNS]}
    columns["prediction"] = table.column("prediction")
    if scored.task == "binary":
        columns["probability"] = table.column("probability")
    for value in scored.classes or ():
        columns[f"probability_{value}"] = table.column(f"probabilities.{value}")
    rows = table.num_rows
    columns["model_name"] = pa.array([model_name] * rows, pa.string())
    columns["model_version"] = table.column("model_version")
    columns["interval_start"] = pa.array([interval.start] * rows, pa.timestamp("us", tz="UTC"))
    columns["interval_end"] = pa.array([interval.end] * rows, pa.timestamp("us", tz="UTC"))
    columns["scored_at"] = table.column("scored_at").cast(pa.timestamp("us", tz="UTC"))
    columns["event_time"] = table.column("event_time").cast(pa.timestamp("us", tz="UTC"))
    laid_out = pa.table(columns)
    missing = [
        name
        for name in laid_out.column_names
        if name.startswith("probability") and laid_out.column(name).null_count
    ]
    if missing:
        raise DataError(f"some output records lack the {scored.task} result value(s) {missing[:5]}")
    return laid_out


def _fit(previous: pa.Table, schema: pa.Schema) -> pa.Table:
    """The earlier partition's rows in the new rows' column types.

    :raises DataError: naming the column whose type changed (a key sent as text, now as a number).
    """
    import pyarrow as pa

    kept = previous.replace_schema_metadata(None)
    columns = []
    for target in schema:
        if target.name not in kept.column_names:
            raise DataError(f"the partition compacted before has no column {target.name!r}")
        try:
            columns.append(kept.column(target.name).cast(target.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as err:
            raise DataError(
                f"column {target.name!r} is {kept.schema.field(target.name).type} in the partition compacted "
                f"before and {target.type} in the new records"
            ) from err
    return pa.table(columns, schema=schema)


def _versions(table: pa.Table) -> dict[str, int]:
    import pyarrow.compute as pc

    counted = pc.value_counts(table.column("model_version"))
    return {str(item["values"].as_py()): int(item["counts"].as_py()) for item in counted}


def _latest_row(table: pa.Table) -> int:
    import pyarrow.compute as pc

    return int(pc.index(table.column("scored_at"), pc.max(table.column("scored_at"))).as_py())


def _previous_partition(uri: str, object_store: ObjectStore | None) -> pa.Table | None:
    """The partition compacted before (with its metadata), or ``None``.

    :raises DataError: when batch scoring published it.
    """
    import pyarrow.parquet as pq

    if not storage.exists(uri, object_store):
        return None
    metadata = read_file_metadata(uri, object_store)
    if metadata.get("writer") != WRITER:
        raise DataError(
            f"{uri} was published by batch scoring (model version {metadata.get('model_version')}): compaction "
            "never replaces it; write the stream's partitions to another output_root, or score this interval one "
            "way"
        )
    filesystem, path = storage.resolve(uri, object_store)
    return pq.read_table(path, filesystem=filesystem)


def _metadata(table: pa.Table) -> dict[str, Any]:
    from mlops_ops.core.scoring import METADATA_KEY

    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    return json.loads(raw) if raw else {}


def _epoch_ms(moment: Any) -> int:
    return int(moment.timestamp() * 1000)


def _field(record: Mapping[str, str], name: str) -> str:
    value = record.get(name)
    if not value:
        described = f"event {record.get('event_id', '?')[:128]!r}"
        raise DataError(
            f"the output record of {described} has no {name!r}: was it written by mlops-ops stream?"
        )
    return value


def _integer(record: Mapping[str, str], name: str) -> int:
    value = _field(record, name)
    if not value.isdigit():
        raise DataError(
            f"the output record of event {record.get('event_id', '?')[:128]!r}: {name} is not epoch milliseconds"
        )
    return int(value)
