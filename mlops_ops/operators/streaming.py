"""Streamed predictions into batch scoring's partitions: one monitoring path for both patterns."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from mlops_ops.core.errors import MlopsError
from mlops_ops.hooks.redis_streams import RedisStreamsHook
from mlops_ops.operators.base import ObjectStorageBaseOperator
from mlops_ops.streaming.compaction import DEFAULT_MAX_CLOCK_SKEW, DEFAULT_MAX_LATENESS

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlops_ops.core.scoring import Interval
    from mlops_ops.streaming.compaction import CompactionResult


class StreamCompactionFailed(MlopsError, AirflowFailException):
    """The output records do not make a partition (a record lacks a key column, versions of different tasks,
    the interval is batch scoring's): retrying will not help."""


class CompactStreamOperator(ObjectStorageBaseOperator, BaseOperator):
    """Compact the stream scorer's output records of one interval into the interval's prediction partition.

    Reads the records of ``model_name`` whose event time lies in ``[interval_start, interval_end)`` from the
    output stream, keeps one per ``event_id`` (the first written), and writes them with batch scoring's columns
    and metadata to ``<output_root>/model=<name>/interval=<start>_<end>/predictions.parquet`` in one step (see
    :mod:`mlops_ops.streaming.compaction`). Safe to rerun: a partition compacted before keeps its rows and gains
    the events it lacked; nothing new leaves it untouched. A partition batch scoring published is never replaced.

    When the task has outlets and the interval has rows, each asset event carries what
    :class:`~mlops_ops.operators.scoring.PublishPredictionsOperator`'s carry (``model_name``, ``model_version``,
    ``interval``, ``rows``, ``uri``, ``task``, ``classes``): a monitor DAG scheduled on the predictions asset
    checks the streamed interval as a batch-scored one.

    :param model_name: the registered model whose records are compacted. Templated.
    :param interval_start: inclusive start (ISO-8601; no zone is UTC). Templated.
    :param interval_end: exclusive end. Templated.
    :param key_columns: the columns that identify a row, as the scorer's ``--key-columns`` writes them (what the
        performance check joins labels on).
    :param output_stream: the scorer's output stream. Templated.
    :param output_root: where partitions go (default ``<data root>/predictions``). Templated.
    :param max_lateness: how long after the interval's end an event may have been scored and still count; run
        the task after that (a later rerun takes in later events while the stream holds them). ``None``: read
        to the stream's end (a replay of old events, written long after their time). Templated: a number of
        seconds, or ``None``/an empty string, is accepted too (what a plan task of a DAG renders).
    :param max_clock_skew: how long before the interval's start a record of it may have been written.
    :param redis_conn_id: Airflow connection of the Redis server (see
        :class:`~mlops_ops.hooks.redis_streams.RedisStreamsHook`).
    :param storage_conn_id: the connection of ``s3://``, ``gs://`` or ``abfs://`` data (see
        :class:`~mlops_ops.operators.base.ObjectStorageBaseOperator`).
    :return: (XCom) ``{"uri", "rows", "model_name", "model_version", "interval", "status" ("published",
        "unchanged" or "empty"), "task", "classes", "records_read", "in_interval", "duplicates", "kept_rows",
        "other_models", "versions"}``.
    """

    template_fields: Sequence[str] = (
        "model_name",
        "interval_start",
        "interval_end",
        "output_stream",
        "output_root",
        "max_lateness",
    )
    ui_color = "#dcecf9"

    def __init__(
        self,
        *,
        model_name: str,
        interval_start: Any,
        interval_end: Any,
        key_columns: Sequence[str],
        output_stream: str = "predictions",
        output_root: str | None = None,
        max_lateness: timedelta | float | str | None = DEFAULT_MAX_LATENESS,
        max_clock_skew: timedelta = DEFAULT_MAX_CLOCK_SKEW,
        redis_conn_id: str = RedisStreamsHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.interval_start = interval_start
        self.interval_end = interval_end
        self.key_columns = list(key_columns)
        self.output_stream = output_stream
        self.output_root = output_root
        self.max_lateness = max_lateness
        self.max_clock_skew = max_clock_skew
        self.redis_conn_id = redis_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_ops.core.errors import DataError
        from mlops_ops.core.scoring import Interval
        from mlops_ops.hooks.object_storage import store_unreachable_as
        from mlops_ops.operators.scoring import announce_partition, default_output_root
        from mlops_ops.streaming.compaction import compact_interval

        root = self.output_root or default_output_root()
        object_store = self.object_store(root)
        try:
            interval = Interval.parse(self.interval_start, self.interval_end)
            max_lateness = _lateness(self.max_lateness)
            source = RedisStreamsHook(self.redis_conn_id).output_stream(self.output_stream)
            with store_unreachable_as(object_store, f"compacting the predictions of {interval.describe()}"):
                result = compact_interval(
                    source,
                    model_name=self.model_name,
                    interval=interval,
                    output_root=root,
                    key_columns=self.key_columns,
                    max_lateness=max_lateness,
                    max_clock_skew=self.max_clock_skew,
                    object_store=object_store,
                )
        except (DataError, ValueError) as err:
            raise StreamCompactionFailed(f"cannot compact {self.output_stream}: {err}") from err
        self._log_result(result, interval)
        announce_partition(self, context, result.partition)
        return result.to_dict()

    def _log_result(self, result: CompactionResult, interval: Interval) -> None:
        self.log.info(
            "%s: %d records read, %d of %s in %s, %d duplicate events dropped, %d rows kept from before, "
            "%d rows in %s (versions %s)",
            result.partition.status,
            result.records_read,
            result.in_interval,
            self.model_name,
            interval.describe(),
            result.duplicates,
            result.kept_rows,
            result.partition.rows,
            result.partition.uri,
            result.versions,
        )
        if len(result.versions) > 1:
            self.log.warning(
                "The interval was scored by versions %s (the alias moved): the performance check measures one "
                "version per interval and will refuse it",
                sorted(result.versions),
            )


def _lateness(value: Any) -> timedelta | None:
    """``max_lateness`` as given or rendered: a timedelta, seconds, or nothing (read to the stream's end).

    :raises ValueError: naming the value that is none of them.
    """
    if value is None or isinstance(value, timedelta):
        return value
    if isinstance(value, str) and value.strip().lower() in ("", "none"):
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"max_lateness must be a timedelta or seconds, got {str(value)[:40]!r}") from None
    if seconds < 0:
        raise ValueError(f"max_lateness must not be negative, got {seconds}")
    return timedelta(seconds=seconds)
