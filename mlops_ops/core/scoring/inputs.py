"""The input of an interval: its Parquet files, their row groups as scoring units, and the shard plan."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mlops_ops.core import storage
from mlops_ops.core.errors import DataError
from mlops_ops.core.printable import printable
from mlops_ops.core.scoring.interval import Interval, _utc

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.fs as pafs

    from mlops_ops.core.storage import ObjectStore


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InputUnit:
    """One Parquet row group that may hold rows of the interval.

    :param path: the file's path inside its filesystem.
    :param row_group: the row group's index in the file.
    :param rows: its row count (an upper bound of the interval's rows in it).
    """

    path: str
    row_group: int
    rows: int


def list_parquet_files(source_uri: str, filesystem: pafs.FileSystem, path: str) -> list[str]:
    """The Parquet files at ``source_uri``: the file itself, or every ``*.parquet`` below a folder, sorted.

    Names starting with ``.`` or ``_`` (temporary and staging files) are skipped at any depth. Locally, a file
    or folder that is a symbolic link leading outside the source folder (a named file's folder) is refused
    before anything is read; links inside it are followed (see
    :func:`~mlops_ops.core.storage.real_path_within`).

    :raises DataError: when nothing exists there, or (:class:`~mlops_ops.core.storage.OutsideRoot`) naming a
        link that leads outside the source.
    """
    import pyarrow.fs as pafs

    local = isinstance(filesystem, pafs.LocalFileSystem)
    info = filesystem.get_file_info(path)
    if info.type == pafs.FileType.File:
        if local:
            storage.real_path_within(path, str(Path(path).parent))
        return [path]
    if info.type == pafs.FileType.NotFound:
        raise DataError(f"the scoring input {printable(source_uri)} does not exist")
    selector = pafs.FileSelector(path, recursive=True)
    files = []
    # Arrow's local listing follows linked folders, so a link is judged wherever it sits, folders included.
    for entry in filesystem.get_file_info(selector):
        relative = entry.path[len(path.rstrip("/")) + 1 :]
        if any(part.startswith((".", "_")) for part in relative.split("/")):
            continue
        if local:
            storage.real_path_within(entry.path, path)
        if entry.type != pafs.FileType.File or not entry.path.endswith(".parquet"):
            continue
        files.append(entry.path)
    return sorted(files)


@dataclass(frozen=True)
class InputScan:
    """What :func:`scan_input` found under a source for an interval.

    :param units: the row groups that may hold rows of the interval.
    :param unplaceable: files that cannot be placed in any interval, each with the reason: not readable as
        Parquet, no time column, or a time column that is not a UTC-placeable timestamp. They may hold rows of
        the interval, so a planner lists them for validation rather than guessing.
    """

    units: list[InputUnit]
    unplaceable: dict[str, str]

    @property
    def files(self) -> list[str]:
        """Every file that may hold rows of the interval: those of ``units`` and the unplaceable ones, sorted."""
        return sorted({unit.path for unit in self.units} | set(self.unplaceable))


def scan_input(
    source_uri: str,
    interval: Interval,
    time_column: str,
    object_store: ObjectStore | None = None,
) -> InputScan:
    """The row groups under ``source_uri`` whose ``time_column`` statistics overlap ``interval``, and the files
    that cannot be placed in time at all (see :class:`InputScan`).

    Row groups without statistics are kept (their rows are filtered while reading).

    :raises DataError: when ``source_uri`` does not exist.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    filesystem, path = storage.resolve(source_uri, object_store)
    units = []
    unplaceable = {}
    for file in list_parquet_files(source_uri, filesystem, path):
        where = _display(source_uri, file)
        try:
            metadata = pq.ParquetFile(file, filesystem=filesystem).metadata
        except pa.ArrowInvalid as err:  # other OSErrors (the network) propagate, so Airflow retries them
            unplaceable[file] = f"{where}: not a readable Parquet file ({printable(err)})"
            continue
        schema = metadata.schema.to_arrow_schema()
        problem = _time_column_problem(schema, time_column, where)
        if problem:
            unplaceable[file] = problem
            continue
        column_index = schema.get_field_index(time_column)
        for index in range(metadata.num_row_groups):
            group = metadata.row_group(index)
            statistics = group.column(column_index).statistics
            if statistics is not None and statistics.has_min_max:
                low, high = _utc(statistics.min, time_column), _utc(statistics.max, time_column)
                if high < interval.start or low >= interval.end:
                    continue
            units.append(InputUnit(path=file, row_group=index, rows=group.num_rows))
    return InputScan(units=units, unplaceable=unplaceable)


def find_input_units(
    source_uri: str,
    interval: Interval,
    time_column: str,
    object_store: ObjectStore | None = None,
) -> list[InputUnit]:
    """The row groups under ``source_uri`` whose ``time_column`` statistics overlap ``interval``.

    Row groups without statistics are kept (their rows are filtered while reading).

    :raises DataError: naming the file when it is not Parquet, lacks ``time_column``, or stores it without a
        time zone (a naive timestamp cannot be placed in a UTC interval without guessing).
    """
    scan = scan_input(source_uri, interval, time_column, object_store)
    if scan.unplaceable:
        raise DataError(next(iter(scan.unplaceable.values())))
    return scan.units


def _display(source_uri: str, path: str) -> str:
    # Escaped: the name was chosen by whoever landed the file, and it goes into logs and error messages.
    scheme = storage.scheme_of(source_uri)
    return printable(f"{scheme}://{path}" if scheme else path)


def _time_column_problem(schema: pa.Schema, time_column: str, where: str) -> str | None:
    import pyarrow as pa

    if schema.get_field_index(time_column) < 0:
        return f"{where}: no time column {time_column!r} to select the interval's rows"
    column_type = schema.field(time_column).type
    if not pa.types.is_timestamp(column_type):
        return f"{where}: time column {time_column!r} is {printable(column_type)}, not a timestamp"
    if column_type.tz is None:
        return (
            f"{where}: time column {time_column!r} is a timestamp without a time zone; store it in UTC "
            "(timestamp[..., tz=UTC]) so its rows can be placed in the interval"
        )
    return None


def plan_shards(units: Sequence[InputUnit], shard_count: int) -> list[list[InputUnit]]:
    """Split ``units`` into ``shard_count`` contiguous groups of about equal row counts, in order.

    Deterministic: every shard computes the same plan from the same input.
    """
    if shard_count < 1:
        raise ValueError(f"shard_count must be >= 1, got {shard_count}")
    total = sum(unit.rows for unit in units)
    shards: list[list[InputUnit]] = [[] for _ in range(shard_count)]
    done = 0
    for unit in units:
        # A unit goes to the shard its midpoint falls in, so shards balance by rows, not by unit count.
        midpoint = done + unit.rows / 2
        index = min(int(midpoint * shard_count / total), shard_count - 1) if total else 0
        shards[index].append(unit)
        done += unit.rows
    return shards
