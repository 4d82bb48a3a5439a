"""The scoring interval and where its predictions, staging folders and shards are written."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from mlops_ops.core import storage
from mlops_ops.core.errors import DataError

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

PARTITION_FILE = "predictions.parquet"
STAGING_FOLDER = "_staging"


@dataclass(frozen=True)
class Interval:
    """A half-open time interval ``[start, end)`` in UTC.

    :param start: inclusive start, time-zone aware.
    :param end: exclusive end, time-zone aware, after ``start``.
    """

    start: datetime
    end: datetime

    @classmethod
    def parse(cls, start: Any, end: Any) -> Interval:
        """Build from datetimes or ISO-8601 strings (what Airflow templates render).

        A value without a time zone (``"2013-07-01"``) is taken as UTC.

        :raises DataError: naming the value that is not a timestamp, or an end not after the start.
        """
        parsed = cls(_utc(start, "interval start"), _utc(end, "interval end"))
        if parsed.end <= parsed.start:
            raise DataError(
                f"interval end {parsed.end.isoformat()} is not after its start {parsed.start.isoformat()}"
            )
        return parsed

    @property
    def key(self) -> str:
        """The partition name, e.g. ``20130701T0000Z_20130702T0000Z``."""
        return f"{self.start:%Y%m%dT%H%MZ}_{self.end:%Y%m%dT%H%MZ}"

    def describe(self) -> str:
        """``[start, end)`` in ISO-8601, for messages."""
        return f"[{self.start.isoformat()}, {self.end.isoformat()})"

    def to_dict(self) -> dict[str, str]:
        """``{"start", "end"}`` as ISO-8601 strings."""
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}


def resolve_interval(
    *,
    requested_start: Any,
    requested_end: Any,
    data_interval_start: Any,
    data_interval_end: Any,
    run_after: Any,
    period: timedelta,
) -> Interval:
    """The interval a batch-scoring run scores.

    1. ``requested_start``/``requested_end`` (a manual trigger's params), when both are given;
    2. else the run's data interval, when it has a length (scheduled and backfill runs);
    3. else (a run triggered by an asset event or by hand without params) the last complete ``period``
       before ``run_after``, aligned to the period (yesterday for a daily DAG, the last full hour for hourly).

    :raises DataError: when only one of the requested bounds is given, or a bound is not a timestamp.
    """
    if requested_start or requested_end:
        if not (requested_start and requested_end):
            raise DataError("give both interval_start and interval_end, or neither")
        return Interval.parse(requested_start, requested_end)
    if data_interval_start is not None and data_interval_end is not None:
        start, end = (
            _utc(data_interval_start, "data_interval_start"),
            _utc(data_interval_end, "data_interval_end"),
        )
        if end > start:
            return Interval(start, end)
    anchor = _utc(run_after, "run_after")
    seconds = int(period.total_seconds())
    if seconds <= 0:
        raise ValueError(f"period must be positive, got {period}")
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    end = epoch + timedelta(seconds=(int((anchor - epoch).total_seconds()) // seconds) * seconds)
    return Interval(end - period, end)


def _utc(value: Any, what: str) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError as err:
            raise DataError(f"{what} {value!r} is not an ISO-8601 timestamp") from err
    if not isinstance(value, datetime):
        raise DataError(f"{what} {value!r} is not a timestamp")
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def partition_uri(output_root: str, model_name: str, interval: Interval) -> str:
    """Where the predictions of ``model_name`` for ``interval`` are published."""
    return storage.join(output_root, f"model={model_name}", f"interval={interval.key}", PARTITION_FILE)


def staging_folder(output_root: str, model_name: str, interval: Interval, run_token: str) -> str:
    """The staging folder of one run (all its tries and shards) for ``interval``."""
    return storage.join(output_root, STAGING_FOLDER, model_name, f"interval={interval.key}", run_token)


def shard_uri(folder: str, shard_index: int, shard_count: int) -> str:
    """The staged output of one shard."""
    return storage.join(folder, f"shard-{shard_index:04d}-of-{shard_count:04d}.parquet")
