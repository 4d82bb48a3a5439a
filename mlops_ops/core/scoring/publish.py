"""Publishing an interval: the shards merged into one partition, replacing the previous one in one step."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_ops.core import storage
from mlops_ops.core.errors import DataError, required

# The partition is moved into place through the batch module's ``move``: one function to patch when a test kills
# a task just before or after a shard or a partition is moved.
from mlops_ops.core.scoring import batch as batch_scoring
from mlops_ops.core.scoring.batch import (
    DEFAULT_CHUNK_ROWS,
    METADATA_KEY,
    SUMMARY_KEY,
    ScoredTask,
    UnseenCategories,
    _StagedWriter,
)
from mlops_ops.core.scoring.interval import Interval, shard_uri

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.fs as pafs

    from mlops_ops.core.model_artifacts import PinnedModel
    from mlops_ops.core.storage import ObjectStore

log = logging.getLogger(__name__)


class UnseenCategoriesRejected(DataError):
    """Too many of an interval's rows hold categories the model never saw in training; nothing was published.

    :param message: names the model version, the share against its limit, and the unseen values.
    :param unseen: the interval's count, as in :attr:`PublishedPartition.unseen_categories`.
    """

    def __init__(self, message: str, unseen: dict[str, Any]) -> None:
        super().__init__(message)
        self.unseen = unseen


@dataclass(frozen=True)
class PublishedPartition:
    """An interval's published predictions.

    :param uri: the partition file, or ``None`` when the interval had no rows (nothing is published).
    :param rows: rows in it.
    :param model_version: the version that scored every row.
    :param shards: shards merged into it.
    :param unseen_categories: ``{"rows", "share", "columns": {column: {value: rows}}}``: the rows scored with
        categories the model never saw in training (the model treats them as missing).
    :param task: the task the partition was scored for, which says its prediction columns (:class:`ScoredTask`).
    :param classes: a multiclass model's classes, in the order of its ``probability_<class>`` columns; else
        ``None``.
    """

    uri: str | None
    rows: int
    model_name: str
    model_version: str
    interval: dict[str, str]
    shards: int
    status: str
    unseen_categories: dict[str, Any] = field(default_factory=dict)
    task: str = "binary"
    classes: list[Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe mapping."""
        return asdict(self)


def read_file_metadata(uri: str, object_store: ObjectStore | None = None) -> dict[str, Any]:
    """The scoring metadata stored in a predictions file (``{}`` when it has none)."""
    import pyarrow.parquet as pq

    filesystem, path = storage.resolve(uri, object_store)
    metadata = pq.ParquetFile(path, filesystem=filesystem).schema_arrow.metadata or {}
    raw = metadata.get(METADATA_KEY)
    return json.loads(raw) if raw else {}


def read_file_summary(uri: str, object_store: ObjectStore | None = None) -> dict[str, Any]:
    """What scoring found, stored in a complete predictions file's footer (``{}`` when it has none)."""
    import pyarrow.parquet as pq

    filesystem, path = storage.resolve(uri, object_store)
    raw = (pq.ParquetFile(path, filesystem=filesystem).metadata.metadata or {}).get(SUMMARY_KEY)
    return json.loads(raw) if raw else {}


def _unseen_report(unseen: UnseenCategories, rows: int) -> dict[str, Any]:
    return {**unseen.to_dict(), "share": round(unseen.rows / rows, 6) if rows else 0.0}


def publish(
    *,
    staging: str,
    destination_uri: str,
    pinned: PinnedModel,
    interval: Interval,
    shard_count: int,
    object_store: ObjectStore | None = None,
    max_unseen_share: float | None = None,
) -> PublishedPartition:
    """Merge the staged shards of one run into the interval's partition and publish it in one step.

    Every shard must be present and written by ``pinned``'s version for ``interval``; otherwise nothing is
    published. Safe to retry: a run whose partition is already published (its staging gone, the partition
    carrying the same run token) returns that partition. When the interval had no rows nothing is written and
    an existing partition is left as it is.

    :param max_unseen_share: the largest share of the interval's rows that may hold categories the model never
        saw in training (counted by the shards); above it nothing is published. ``None``: count and report only.
    :raises DataError: naming the missing or mismatched shards.
    :raises UnseenCategoriesRejected: when the unseen share is above ``max_unseen_share`` (the staged shards
        are kept, for inspection or a retry under another limit).
    """
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    filesystem, _ = storage.resolve(staging, object_store)
    shards = [shard_uri(staging, index, shard_count) for index in range(shard_count)]
    present = [
        filesystem.get_file_info(storage.resolve(uri, object_store)[1]).type == pafs.FileType.File
        for uri in shards
    ]
    run_token = staging.rstrip("/").rpartition("/")[2]

    def partition(
        uri: str | None, rows: int, status: str, unseen: dict[str, Any], scored: ScoredTask
    ) -> PublishedPartition:
        return PublishedPartition(
            uri,
            rows,
            pinned.name,
            pinned.version,
            interval.to_dict(),
            shard_count,
            status,
            unseen,
            scored.task,
            scored.to_metadata().get("classes"),
        )

    if not any(present) and storage.exists(destination_uri, object_store):
        existing = read_file_metadata(destination_uri, object_store)
        if existing.get("run_token") == run_token:
            rows = _row_count(destination_uri, filesystem, object_store)
            unseen = UnseenCategories()
            unseen.add(read_file_summary(destination_uri, object_store).get("unseen_categories") or {})
            report = _unseen_report(unseen, rows)
            return partition(
                destination_uri, rows, "already published", report, ScoredTask.from_metadata(existing)
            )
    missing = [uri for uri, here in zip(shards, present, strict=True) if not here]
    if missing:
        raise DataError(f"cannot publish interval {interval.describe()}: shard file(s) {missing} are missing")

    total = 0
    unseen = UnseenCategories()
    first: tuple[ScoredTask, pa.Schema] | None = None
    for uri in shards:
        first = _check_shard(uri, pinned, interval, run_token, object_store, first)
        total += _row_count(uri, filesystem, object_store)
        unseen.add(read_file_summary(uri, object_store).get("unseen_categories") or {})
    scored = required(first, "the first shard")[0]  # shard_count >= 1
    report = _unseen_report(unseen, total)
    if total == 0:
        _clear_staging(staging, object_store)
        return partition(None, 0, "empty", report, scored)
    if max_unseen_share is not None and report["share"] > max_unseen_share:
        raise UnseenCategoriesRejected(
            f"{pinned.name} v{pinned.version}: {unseen.rows} of {total} rows ({report['share']:.1%}) of interval "
            f"{interval.describe()} hold categories the model never saw in training, above the limit of "
            f"{max_unseen_share:.1%}: {unseen.describe()}; nothing is published",
            report,
        )

    if shard_count == 1:
        batch_scoring.move(shards[0], destination_uri, object_store)
        _clear_staging(staging, object_store)
        return partition(destination_uri, total, "published", report, scored)

    schema = pq.ParquetFile(storage.resolve(shards[0], object_store)[1], filesystem=filesystem).schema_arrow
    metadata = {**json.loads(schema.metadata[METADATA_KEY]), "shard": [0, 1], "shards": shard_count}
    schema = schema.with_metadata({METADATA_KEY: json.dumps(metadata, sort_keys=True).encode()})
    merged = storage.join(staging, "merged.parquet")
    with _StagedWriter(merged, schema, object_store) as writer:
        for uri in shards:
            shard_file = pq.ParquetFile(storage.resolve(uri, object_store)[1], filesystem=filesystem)
            for batch in shard_file.iter_batches(batch_size=DEFAULT_CHUNK_ROWS * 4):
                writer.write(batch.replace_schema_metadata(schema.metadata))
        writer.footer = {"rows": total, "unseen_categories": unseen.to_dict()}
    batch_scoring.move(merged, destination_uri, object_store)
    _clear_staging(staging, object_store)
    return partition(destination_uri, total, "published", report, scored)


def _check_shard(
    uri: str,
    pinned: PinnedModel,
    interval: Interval,
    run_token: str,
    object_store: ObjectStore | None,
    first: tuple[ScoredTask, pa.Schema] | None,
) -> tuple[ScoredTask, pa.Schema]:
    """Refuse a shard of another model, interval or run, or one whose task or columns differ from the ``first``
    shard's; return the first shard's task and schema (this one's, when it is the first)."""
    import pyarrow.parquet as pq

    metadata = read_file_metadata(uri, object_store)
    problems = []
    if str(metadata.get("model_version")) != pinned.version or metadata.get("model_name") != pinned.name:
        problems.append(f"model {metadata.get('model_name')} v{metadata.get('model_version')}")
    if metadata.get("interval") != interval.to_dict():
        problems.append(f"interval {metadata.get('interval')}")
    if metadata.get("run_token") != run_token:
        problems.append(f"run token {metadata.get('run_token')}")
    if problems:
        raise DataError(
            f"shard {uri} was not scored by {pinned.name} v{pinned.version} for {interval.describe()} in this "
            f"run: it holds {', '.join(problems)}"
        )
    scored = ScoredTask.from_metadata(metadata)
    filesystem, path = storage.resolve(uri, object_store)
    schema = pq.ParquetFile(path, filesystem=filesystem).schema_arrow.remove_metadata()
    if first is None:
        return scored, schema
    if scored != first[0]:
        raise DataError(
            f"shard {uri} was scored for task {scored.task!r} (classes {scored.classes}), the first shard for "
            f"task {first[0].task!r} (classes {first[0].classes}): the shards cannot be merged"
        )
    if not schema.equals(first[1]):
        raise DataError(
            f"shard {uri} has columns {_describe(schema)}, the first shard {_describe(first[1])}: the shards "
            "cannot be merged"
        )
    return first


def _describe(schema: pa.Schema) -> str:
    return "[" + ", ".join(f"{field.name} {field.type}" for field in schema) + "]"


def _row_count(uri: str, filesystem: pafs.FileSystem, object_store: ObjectStore | None) -> int:
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(storage.resolve(uri, object_store)[1], filesystem=filesystem).metadata.num_rows)


def _clear_staging(staging: str, object_store: ObjectStore | None) -> None:
    """Remove this run's staging folder (other runs' folders are theirs), and its parents once empty."""
    storage.delete_tree(staging, object_store)
    if not storage.is_remote(staging):
        parent = Path(staging).parent
        for folder in (parent, parent.parent):  # interval=..., then the model's staging folder
            try:
                folder.rmdir()
            except OSError:
                break  # not empty: another run of this interval is staging there
