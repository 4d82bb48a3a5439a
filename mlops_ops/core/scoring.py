"""Batch scoring that streams Parquet to Parquet and publishes one interval's predictions atomically.

The input is read in record batches (never the whole interval in memory), filtered to the interval on its time
column, checked against the model's signature, scored, and written batch by batch to a staging file. Publishing
then replaces the interval's partition in one step: ``os.replace`` locally, a server-side copy of one object on
S3. A reader therefore sees the previous partition or the complete new one, never part of a file, and a re-run of
an interval replaces its rows instead of adding to them.

Layout under the output root::

    <root>/model=<name>/interval=<start>_<end>/predictions.parquet     the published partition
    <root>/_staging/<name>/interval=<...>/<run token>/shard-<i>-of-<n>.parquet

The model version is a column and a file property, not a path segment: a re-run under a newer champion must
replace the interval's predictions, not sit beside them. Readers such as ``pyarrow.dataset`` (hive
partitioning) skip ``_staging`` because of its leading underscore.

Large intervals split into shards scored in parallel (Airflow mapped task instances); the unit of a shard is a
Parquet row group, so an interval held in a single row group is scored by one shard and the others stay empty.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_ops.core import storage
from mlops_ops.core.errors import DataError
from mlops_ops.core.printable import printable

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.fs as pafs

    from mlops_ops.core.model_artifacts import ModelInput, PinnedModel

log = logging.getLogger(__name__)

PARTITION_FILE = "predictions.parquet"
STAGING_FOLDER = "_staging"
DEFAULT_CHUNK_ROWS = 65_536
#: Parquet key-value metadata of every predictions file: who wrote it, from which model, for which interval.
METADATA_KEY = b"mlops.scoring"
#: Parquet footer entry written when a file is complete: what scoring it found (rows, unseen categories).
SUMMARY_KEY = b"mlops.scoring.summary"
#: How many distinct unseen values per column a report names (the most frequent first).
MAX_UNSEEN_VALUES = 10
OUTPUT_COLUMNS = (
    "prediction",
    "probability",
    "model_name",
    "model_version",
    "interval_start",
    "interval_end",
    "scored_at",
)


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


# --------------------------------------------------------------------------------------------------- input


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
    s3_options: dict[str, Any] | None = None,
) -> InputScan:
    """The row groups under ``source_uri`` whose ``time_column`` statistics overlap ``interval``, and the files
    that cannot be placed in time at all (see :class:`InputScan`).

    Row groups without statistics are kept (their rows are filtered while reading).

    :raises DataError: when ``source_uri`` does not exist.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    filesystem, path = storage.resolve(source_uri, s3_options)
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
    s3_options: dict[str, Any] | None = None,
) -> list[InputUnit]:
    """The row groups under ``source_uri`` whose ``time_column`` statistics overlap ``interval``.

    Row groups without statistics are kept (their rows are filtered while reading).

    :raises DataError: naming the file when it is not Parquet, lacks ``time_column``, or stores it without a
        time zone (a naive timestamp cannot be placed in a UTC interval without guessing).
    """
    scan = scan_input(source_uri, interval, time_column, s3_options)
    if scan.unplaceable:
        raise DataError(next(iter(scan.unplaceable.values())))
    return scan.units


def _display(source_uri: str, path: str) -> str:
    # Escaped: the name was chosen by whoever landed the file, and it goes into logs and error messages.
    return printable(f"s3://{path}" if storage.is_s3(source_uri) else path)


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


# --------------------------------------------------------------------------------------------------- scoring


@dataclass
class ScoringConfig:
    """How rows are turned into model inputs and what the output keeps.

    :param features: the model's input columns, from its signature (:func:`model_artifacts.model_inputs`).
    :param key_columns: columns that identify a row (kept in the output; a flight: date, carrier, number, origin).
    :param time_column: the UTC timestamp column that places a row in an interval.
    :param prepare: an optional function turning raw rows (a pandas frame) into feature rows, the same one used
        in training (the model spec's ``prepare``); it must work row by row.
    :param join: an optional function adding feature-store columns to raw rows before ``prepare`` (a
        point-in-time join of the model's feature service); it must keep every row, in order.
    :param threshold: probability at or above which ``prediction`` is 1.
    :param chunk_rows: rows per record batch read, scored and written; bounds memory.
    :param categories: per categorical input column, the values the model saw in training
        (:func:`training_categories`); values outside them are scored (the model treats them as missing) and
        counted. Empty: nothing is counted.
    """

    features: Sequence[ModelInput]
    key_columns: Sequence[str]
    time_column: str
    prepare: Callable[[Any], Any] | None = None
    join: Callable[[Any], Any] | None = None
    threshold: float = 0.5
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    categories: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def read_columns(self, schema: pa.Schema) -> list[str] | None:
        """The columns to read: everything when a ``prepare`` or ``join`` function needs raw rows, else only
        those used."""
        if self.prepare is not None or self.join is not None:
            return None
        wanted = dict.fromkeys([*self.key_columns, self.time_column, *(f.name for f in self.features)])
        return [name for name in wanted if schema.get_field_index(name) >= 0]


def training_categories(model: Any) -> dict[str, frozenset[str]]:
    """The text categories a fitted scikit-learn model saw in training, per input column.

    Read from the fitted encoders (``categories_`` with ``feature_names_in_``: ``OrdinalEncoder``,
    ``OneHotEncoder``) inside a ``Pipeline`` or ``ColumnTransformer``, where :func:`training.build_estimator`
    puts them. Empty for a model that exposes none: its unseen categories go uncounted.
    """
    found: dict[str, frozenset[str]] = {}

    def visit(estimator: Any) -> None:
        for _, step in getattr(estimator, "steps", None) or ():
            visit(step)
        for _, transformer, _ in getattr(estimator, "transformers_", None) or ():
            if not isinstance(transformer, str):  # "drop" / "passthrough"
                visit(transformer)
        categories = getattr(estimator, "categories_", None)
        names = getattr(estimator, "feature_names_in_", None)
        if categories is None or names is None or len(names) != len(categories):
            return
        for name, values in zip(names, categories, strict=True):
            strings = [value for value in values if isinstance(value, str)]
            if strings:
                found[str(name)] = frozenset(strings)

    visit(model)
    return found


@dataclass
class UnseenCategories:
    """Rows holding categories the model never saw in training, and how often each unseen value occurred.

    :param rows: rows with at least one unseen value.
    :param columns: per column, each unseen value and its row count.
    """

    rows: int = 0
    columns: dict[str, dict[str, int]] = field(default_factory=dict)

    def count(self, inputs: Any, categories: Mapping[str, frozenset[str]]) -> None:
        """Add the unseen values of ``inputs`` (a pandas frame of model inputs); nulls are missing, not unseen."""
        import pandas as pd

        any_unseen = None
        for column, known in categories.items():
            if column not in inputs:
                continue
            values = inputs[column]
            # One hashing pass over the column; rows are only masked in the rare chunk that holds a new value.
            new = [value for value in pd.unique(values) if isinstance(value, str) and value not in known]
            if not new:
                continue
            unseen = values.isin(new)
            counts = self.columns.setdefault(column, {})
            for value, rows in values[unseen].value_counts().items():
                counts[str(value)] = counts.get(str(value), 0) + int(rows)
            any_unseen = unseen if any_unseen is None else any_unseen | unseen
        if any_unseen is not None:
            self.rows += int(any_unseen.sum())

    def add(self, other: Mapping[str, Any]) -> None:
        """Add another count given as :meth:`to_dict` output (a shard's)."""
        self.rows += int(other.get("rows", 0))
        for column, values in (other.get("columns") or {}).items():
            counts = self.columns.setdefault(column, {})
            for value, rows in values.items():
                counts[value] = counts.get(value, 0) + int(rows)

    def to_dict(self) -> dict[str, Any]:
        """``{"rows", "columns": {column: {value: rows}}}``, JSON-safe, most frequent values first."""
        return {
            "rows": self.rows,
            "columns": {
                column: dict(sorted(values.items(), key=lambda item: (-item[1], item[0])))
                for column, values in sorted(self.columns.items())
            },
        }

    def describe(self, limit: int = MAX_UNSEEN_VALUES) -> str:
        """``dest 'XXX' (40), 'YYY' (2); carrier 'ZZ' (5)``: each column's most frequent unseen values."""
        parts = []
        for column, values in self.to_dict()["columns"].items():
            named = ", ".join(f"{value!r} ({rows})" for value, rows in list(values.items())[:limit])
            more = len(values) - limit
            parts.append(f"{column} {named}" + (f" and {more} more value(s)" if more > 0 else ""))
        return "; ".join(parts)


@dataclass
class ShardResult:
    """What scoring one shard produced.

    :param uri: the staged file.
    :param rows: rows written (rows of the interval in this shard).
    :param rows_read: rows read from the row groups before the interval filter.
    :param chunks: record batches scored.
    :param seconds: wall time.
    :param unseen_categories: rows with categories the model never saw, by column and value
        (:meth:`UnseenCategories.to_dict`).
    """

    uri: str
    shard_index: int
    shard_count: int
    rows: int = 0
    rows_read: int = 0
    chunks: int = 0
    seconds: float = 0.0
    positive_rate: float | None = None
    unseen_categories: dict[str, Any] = field(default_factory=lambda: UnseenCategories().to_dict())

    @property
    def rows_per_second(self) -> float:
        """Scored rows per second of wall time."""
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe mapping."""
        return {**asdict(self), "rows_per_second": round(self.rows_per_second, 1)}


@dataclass
class _Progress:
    callback: Callable[[int, int, float], None] | None
    started: float = field(default_factory=time.monotonic)

    def report(self, chunk: int, rows: int) -> None:
        if self.callback is not None:
            elapsed = time.monotonic() - self.started
            self.callback(chunk, rows, rows / elapsed if elapsed > 0 else 0.0)


def output_schema(key_fields: Sequence[pa.Field], metadata: dict[str, Any]) -> pa.Schema:
    """The predictions schema: the key columns as read, then the prediction columns, with file metadata."""
    import pyarrow as pa

    timestamp = pa.timestamp("us", tz="UTC")
    return pa.schema(
        [
            *key_fields,
            pa.field("prediction", pa.int8(), nullable=False),
            pa.field("probability", pa.float64(), nullable=False),
            pa.field("model_name", pa.dictionary(pa.int32(), pa.string()), nullable=False),
            pa.field("model_version", pa.int64(), nullable=False),
            pa.field("interval_start", timestamp, nullable=False),
            pa.field("interval_end", timestamp, nullable=False),
            pa.field("scored_at", timestamp, nullable=False),
        ],
        metadata={METADATA_KEY: json.dumps(metadata, sort_keys=True).encode()},
    )


class _BatchScorer:
    """Turns one input record batch into one predictions record batch."""

    def __init__(
        self, model: Any, pinned: PinnedModel, config: ScoringConfig, interval: Interval, where: str
    ) -> None:
        import pyarrow as pa

        self.model = model
        self.config = config
        self.interval = interval
        self.where = where
        timestamp = pa.timestamp("us", tz="UTC")
        self.version = pa.scalar(int(pinned.version), pa.int64())
        self.name_dictionary = pa.array([pinned.name])
        self.interval_start = pa.scalar(interval.start, timestamp)
        self.interval_end = pa.scalar(interval.end, timestamp)
        self.scored_at = pa.scalar(datetime.now(UTC), timestamp)
        self.unseen = UnseenCategories()

    def score(self, batch: pa.RecordBatch, schema: pa.Schema, key_count: int) -> pa.RecordBatch:
        """Score ``batch``; the result has ``schema`` (its first ``key_count`` fields are the key columns)."""
        import numpy as np
        import pyarrow as pa

        raw_rows = self.config.prepare is None and self.config.join is None
        if raw_rows:
            # Only the model's inputs go through pandas; keys are copied as Arrow arrays.
            self.check_arrow(batch)
            frame = batch.select([f.name for f in self.config.features]).to_pandas()
        else:
            frame = batch.to_pandas()
            for step, function in (
                ("feature-store join", self.config.join),
                ("prepare", self.config.prepare),
            ):
                if function is None:
                    continue
                frame = function(frame)
                if len(frame) != batch.num_rows:
                    raise DataError(
                        f"{self.where}: the {step} function returned {len(frame)} rows for {batch.num_rows}; "
                        "batch scoring needs one output row per input row"
                    )
        inputs = self.model_inputs(frame, checked=raw_rows)
        if self.config.categories:
            self.unseen.count(inputs, self.config.categories)
        probability = np.asarray(self.model.predict_proba(inputs)[:, 1], dtype="float64")
        rows = len(probability)
        columns = []
        for key_field in (schema.field(index) for index in range(key_count)):
            column = batch.column(key_field.name)
            columns.append(column if column.type == key_field.type else column.cast(key_field.type))
        columns += [
            pa.array((probability >= self.config.threshold).astype("int8")),
            pa.array(probability),
            pa.DictionaryArray.from_arrays(pa.array(np.zeros(rows, dtype="int32")), self.name_dictionary),
            pa.repeat(self.version, rows),
            pa.repeat(self.interval_start, rows),
            pa.repeat(self.interval_end, rows),
            pa.repeat(self.scored_at, rows),
        ]
        return pa.RecordBatch.from_arrays(columns, schema=schema)

    def _missing(self, names: Any) -> None:
        missing = [f.name for f in self.config.features if f.name not in names]
        if missing:
            raise DataError(
                f"{self.where}: the rows lack column(s) {missing} that the model's signature requires"
            )

    def _too_many_nulls(self, feature: ModelInput, nulls: int) -> None:
        if nulls and feature.required:
            raise DataError(
                f"{self.where}: column {feature.name!r} has {nulls} null value(s), but the model was "
                "trained without nulls in it (required in its signature)"
            )

    def check_arrow(self, batch: pa.RecordBatch) -> None:
        """Check the input batch against the signature on Arrow types and null counts (no per-value work)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        self._missing(batch.schema.names)
        for feature in self.config.features:
            column = batch.column(feature.name)
            kind = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
            if feature.is_text:
                if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)):
                    raise DataError(
                        f"{self.where}: column {feature.name!r} holds {kind} values; the model's signature "
                        "expects strings"
                    )
            elif not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
                raise DataError(
                    f"{self.where}: column {feature.name!r} is {kind}; the model's signature expects "
                    f"{feature.type} numbers"
                )
            nulls = column.null_count
            if pa.types.is_floating(kind):
                nulls += int(pc.sum(pc.is_nan(column)).as_py() or 0)
            self._too_many_nulls(feature, nulls)

    def model_inputs(self, frame: Any, checked: bool = False) -> Any:
        """The model's input columns with the types its signature names; bad input raises :class:`DataError`.

        :param checked: the rows already passed :meth:`check_arrow`; only convert types.
        """
        import pandas as pd

        self._missing(frame.columns)
        inputs = frame[[f.name for f in self.config.features]]
        converted = {}
        for feature in self.config.features:
            values = inputs[feature.name]
            if not checked:
                self._too_many_nulls(feature, int(values.isna().sum()))
            if feature.is_text:
                if values.dtype != object:
                    kind = pd.api.types.infer_dtype(values, skipna=True)
                    if kind not in ("string", "empty"):
                        raise DataError(
                            f"{self.where}: column {feature.name!r} holds {kind} values ({values.dtype}); "
                            "the model's signature expects strings"
                        )
                    values = values.astype(object).where(values.notna(), None)
                elif not checked and (kind := pd.api.types.infer_dtype(values, skipna=True)) not in (
                    "string",
                    "empty",
                ):
                    raise DataError(
                        f"{self.where}: column {feature.name!r} holds {kind} values; the model's signature "
                        "expects strings"
                    )
            else:
                if not (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)):
                    raise DataError(
                        f"{self.where}: column {feature.name!r} is {values.dtype}; the model's signature "
                        f"expects {feature.type} numbers"
                    )
                if values.dtype != "float64":
                    values = values.astype("float64")
            converted[feature.name] = values
        return pd.DataFrame(converted, index=inputs.index, copy=False)


def _key_fields(config: ScoringConfig, input_schema: pa.Schema, where: str) -> list[pa.Field]:
    fields = []
    missing = []
    for name in config.key_columns:
        index = input_schema.get_field_index(name)
        if index >= 0:
            fields.append(input_schema.field(name))
        elif config.prepare is None and config.join is None:
            missing.append(name)
        else:
            raise DataError(
                f"{where}: key column {name!r} is not in the input; with a prepare or join function, key "
                "columns must be raw input columns"
            )
    if missing:
        raise DataError(f"{where}: the input lacks key column(s) {missing}")
    return fields


def iter_interval_batches(
    units: Sequence[InputUnit],
    config: ScoringConfig,
    interval: Interval,
    filesystem: pafs.FileSystem,
    pre_buffer: bool,
) -> Iterator[tuple[pa.RecordBatch, int]]:
    """Record batches of the interval's rows from ``units``, with the number of rows read for each."""
    import pyarrow.parquet as pq

    by_file: dict[str, list[int]] = {}
    for unit in units:
        by_file.setdefault(unit.path, []).append(unit.row_group)
    scorer_filter = _IntervalFilter(config.time_column, interval)
    for path, row_groups in by_file.items():
        parquet = pq.ParquetFile(path, filesystem=filesystem, pre_buffer=pre_buffer)
        columns = config.read_columns(parquet.schema_arrow)
        for batch in parquet.iter_batches(
            batch_size=config.chunk_rows, row_groups=row_groups, columns=columns
        ):
            yield scorer_filter(batch), batch.num_rows


#: Batches read ahead while the current one is scored: reading (pyarrow, GIL released) overlaps prediction.
PREFETCH_BATCHES = 2


def prefetch(items: Iterator[Any], depth: int) -> Iterator[Any]:
    """Yield ``items`` while a background thread produces up to ``depth`` ahead of the consumer.

    An exception in the producer is raised in the consumer; when the consumer stops early (an error while
    scoring), the producer is told to stop and nothing is left running.
    """
    import queue
    import threading

    if depth < 1:
        yield from items
        return
    ready: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        ready.put((True, item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ready.put((True, done))
        except BaseException as error:  # handed to the consumer, which raises it
            ready.put((False, error))

    producer = threading.Thread(target=produce, name="mlops-scoring-prefetch", daemon=True)
    producer.start()
    try:
        while True:
            ok, item = ready.get()
            if not ok:
                raise item
            if item is done:
                return
            yield item
    finally:
        stop.set()
        while producer.is_alive():  # unblock a producer waiting on a full queue
            try:
                ready.get_nowait()
            except queue.Empty:
                producer.join(timeout=0.1)


class _IntervalFilter:
    def __init__(self, time_column: str, interval: Interval) -> None:
        self.time_column = time_column
        self.interval = interval

    def __call__(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        import pyarrow as pa
        import pyarrow.compute as pc

        column = batch.column(self.time_column)
        start = pa.scalar(self.interval.start, type=column.type)
        end = pa.scalar(self.interval.end, type=column.type)
        bounds = pc.min_max(column)
        low, high = bounds["min"], bounds["max"]
        if (
            column.null_count == 0
            and low.is_valid
            and pc.greater_equal(low, start).as_py()
            and pc.less(high, end).as_py()
        ):
            return batch  # wholly inside: no copy
        return batch.filter(pc.and_(pc.greater_equal(column, start), pc.less(column, end)))


def score_shard(
    *,
    model: Any,
    pinned: PinnedModel,
    config: ScoringConfig,
    interval: Interval,
    source_uri: str,
    destination_uri: str,
    shard_index: int = 0,
    shard_count: int = 1,
    metadata: dict[str, Any] | None = None,
    s3_options: dict[str, Any] | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> ShardResult:
    """Score shard ``shard_index`` of ``shard_count`` of ``interval``'s rows and write it to ``destination_uri``.

    The file is written under a temporary name and moved into place only once complete, so a retry or a crash
    never leaves a partial shard where :func:`publish` looks. A shard with no rows still writes an empty file,
    which records that it was done.

    :param model: a fitted model with ``predict_proba``.
    :param pinned: the model version, written into every row and the file's metadata.
    :param progress: called after each chunk with ``(chunk_number, rows_so_far, rows_per_second)``.
    :raises DataError: naming the column and interval when the input does not fit the model's signature.
    """
    import pyarrow.parquet as pq

    started = time.monotonic()
    filesystem, _ = storage.resolve(source_uri, s3_options)
    units = find_input_units(source_uri, interval, config.time_column, s3_options)
    mine = plan_shards(units, shard_count)[shard_index]
    where = f"{pinned.name} v{pinned.version} on interval {interval.describe()} of {source_uri}"
    # Key columns are typed as in the first file; a later file with another integer width is cast to it.
    input_schema = pq.ParquetFile(units[0].path, filesystem=filesystem).schema_arrow if units else None
    key_fields = _key_fields(config, input_schema, where) if input_schema is not None else []
    file_metadata = {
        **(metadata or {}),
        "model_name": pinned.name,
        "model_version": pinned.version,
        "artifact_sha256": pinned.artifact_sha256,
        "interval": interval.to_dict(),
        "shard": [shard_index, shard_count],
        "source": source_uri,
        # The staging folder is the run's: publish refuses shards another run left there.
        "run_token": destination_uri.rstrip("/").rsplit("/", 2)[-2],
    }
    schema = output_schema(key_fields, file_metadata)
    scorer = _BatchScorer(model, pinned, config, interval, where)
    result = ShardResult(uri=destination_uri, shard_index=shard_index, shard_count=shard_count)
    tracker = _Progress(progress)
    positives = 0
    with _StagedWriter(destination_uri, schema, s3_options) as writer:
        batches = iter_interval_batches(mine, config, interval, filesystem, storage.is_s3(source_uri))
        for batch, rows_read in prefetch(batches, depth=PREFETCH_BATCHES):
            result.rows_read += rows_read
            if batch.num_rows == 0:
                continue
            scored = scorer.score(batch, schema, len(key_fields))
            writer.write(scored)
            positives += int(scored.column("prediction").to_numpy().sum())
            result.rows += scored.num_rows
            result.chunks += 1
            tracker.report(result.chunks, result.rows)
        result.unseen_categories = scorer.unseen.to_dict()
        writer.footer = {"rows": result.rows, "unseen_categories": result.unseen_categories}
    result.seconds = time.monotonic() - started
    result.positive_rate = positives / result.rows if result.rows else None
    return result


class _StagedWriter:
    """A Parquet writer that publishes its file at ``uri`` only when closed without an error.

    Batches are encoded and written by a background thread (pyarrow releases the GIL), so writing overlaps
    scoring the next batch; at most two batches wait in between. A ``footer`` set before closing is stored
    under :data:`SUMMARY_KEY` (what was only known once every batch was written).
    """

    def __init__(self, uri: str, schema: pa.Schema, s3_options: dict[str, Any] | None) -> None:
        self.uri = uri
        self.schema = schema
        self.s3_options = s3_options
        self.temporary = temporary_uri(uri)
        self.footer: dict[str, Any] | None = None
        self._failure: BaseException | None = None

    def __enter__(self) -> _StagedWriter:
        import queue
        import threading

        import pyarrow.parquet as pq

        self.filesystem, path = storage.resolve(self.temporary, self.s3_options)
        _make_parent(self.filesystem, path, self.temporary)
        self.writer = pq.ParquetWriter(path, self.schema, filesystem=self.filesystem, compression="snappy")
        self._pending: queue.Queue[Any] = queue.Queue(maxsize=2)
        self._thread = threading.Thread(target=self._drain, name="mlops-scoring-writer", daemon=True)
        self._thread.start()
        return self

    def _drain(self) -> None:
        while (batch := self._pending.get()) is not None:
            if self._failure is None:
                try:
                    self.writer.write_batch(batch)
                except BaseException as failure:  # raised in the scoring thread by write() or __exit__
                    self._failure = failure

    def write(self, batch: pa.RecordBatch) -> None:
        if self._failure is not None:
            raise self._failure
        self._pending.put(batch)

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> None:
        self._pending.put(None)
        self._thread.join()
        if error is None and self._failure is None and self.footer is not None:
            self.writer.add_key_value_metadata(
                {SUMMARY_KEY: json.dumps(self.footer, sort_keys=True).encode()}
            )
        self.writer.close()
        failure = self._failure
        if error is not None or failure is not None:
            _delete_quietly(self.temporary, self.s3_options)
            if error is None and failure is not None:
                raise failure
            return
        move(self.temporary, self.uri, self.s3_options)


def temporary_uri(uri: str) -> str:
    """A unique temporary name beside ``uri`` that dataset readers skip (leading dot)."""
    folder, _, name = uri.rpartition("/")
    return f"{folder}/.{name}.{uuid.uuid4().hex}.tmp"


def _make_parent(filesystem: pafs.FileSystem, path: str, uri: str) -> None:
    if not storage.is_s3(uri):
        filesystem.create_dir(path.rpartition("/")[0], recursive=True)


def move(source: str, destination: str, s3_options: dict[str, Any] | None = None) -> None:
    """Put the complete file ``source`` at ``destination`` in one step, replacing what was there.

    Locally ``os.replace`` (atomic on one filesystem); on S3 a server-side copy (an object appears whole) and
    the delete of the source.
    """
    import os

    if storage.is_s3(destination):
        filesystem, source_path = storage.resolve(source, s3_options)
        _, destination_path = storage.resolve(destination, s3_options)
        filesystem.copy_file(source_path, destination_path)
        storage.delete_file(source, s3_options)
        return
    _, source_path = storage.resolve(source)
    _, destination_path = storage.resolve(destination)
    os.makedirs(os.path.dirname(destination_path), exist_ok=True)
    os.replace(source_path, destination_path)


def _delete_quietly(uri: str, s3_options: dict[str, Any] | None) -> None:
    try:
        storage.delete_file(uri, s3_options)
    except OSError as err:
        log.warning("could not delete the temporary file %s: %s", uri, err)


# --------------------------------------------------------------------------------------------------- publish


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
    """

    uri: str | None
    rows: int
    model_name: str
    model_version: str
    interval: dict[str, str]
    shards: int
    status: str
    unseen_categories: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe mapping."""
        return asdict(self)


def read_file_metadata(uri: str, s3_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The scoring metadata stored in a predictions file (``{}`` when it has none)."""
    import pyarrow.parquet as pq

    filesystem, path = storage.resolve(uri, s3_options)
    metadata = pq.ParquetFile(path, filesystem=filesystem).schema_arrow.metadata or {}
    raw = metadata.get(METADATA_KEY)
    return json.loads(raw) if raw else {}


def read_file_summary(uri: str, s3_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """What scoring found, stored in a complete predictions file's footer (``{}`` when it has none)."""
    import pyarrow.parquet as pq

    filesystem, path = storage.resolve(uri, s3_options)
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
    s3_options: dict[str, Any] | None = None,
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

    filesystem, _ = storage.resolve(staging, s3_options)
    shards = [shard_uri(staging, index, shard_count) for index in range(shard_count)]
    present = [
        filesystem.get_file_info(storage.resolve(uri, s3_options)[1]).type == pafs.FileType.File
        for uri in shards
    ]
    run_token = staging.rstrip("/").rpartition("/")[2]

    def partition(uri: str | None, rows: int, status: str, unseen: dict[str, Any]) -> PublishedPartition:
        return PublishedPartition(
            uri, rows, pinned.name, pinned.version, interval.to_dict(), shard_count, status, unseen
        )

    if not any(present) and storage.exists(destination_uri, s3_options):
        existing = read_file_metadata(destination_uri, s3_options)
        if existing.get("run_token") == run_token:
            rows = _row_count(destination_uri, filesystem, s3_options)
            unseen = UnseenCategories()
            unseen.add(read_file_summary(destination_uri, s3_options).get("unseen_categories") or {})
            return partition(destination_uri, rows, "already published", _unseen_report(unseen, rows))
    missing = [uri for uri, here in zip(shards, present, strict=True) if not here]
    if missing:
        raise DataError(f"cannot publish interval {interval.describe()}: shard file(s) {missing} are missing")

    total = 0
    unseen = UnseenCategories()
    for uri in shards:
        _check_shard(uri, pinned, interval, run_token, s3_options)
        total += _row_count(uri, filesystem, s3_options)
        unseen.add(read_file_summary(uri, s3_options).get("unseen_categories") or {})
    report = _unseen_report(unseen, total)
    if total == 0:
        _clear_staging(staging, s3_options)
        return partition(None, 0, "empty", report)
    if max_unseen_share is not None and report["share"] > max_unseen_share:
        raise UnseenCategoriesRejected(
            f"{pinned.name} v{pinned.version}: {unseen.rows} of {total} rows ({report['share']:.1%}) of interval "
            f"{interval.describe()} hold categories the model never saw in training, above the limit of "
            f"{max_unseen_share:.1%}: {unseen.describe()}; nothing is published",
            report,
        )

    if shard_count == 1:
        move(shards[0], destination_uri, s3_options)
        _clear_staging(staging, s3_options)
        return partition(destination_uri, total, "published", report)

    schema = pq.ParquetFile(storage.resolve(shards[0], s3_options)[1], filesystem=filesystem).schema_arrow
    metadata = {**json.loads(schema.metadata[METADATA_KEY]), "shard": [0, 1], "shards": shard_count}
    schema = schema.with_metadata({METADATA_KEY: json.dumps(metadata, sort_keys=True).encode()})
    merged = storage.join(staging, "merged.parquet")
    with _StagedWriter(merged, schema, s3_options) as writer:
        for uri in shards:
            shard_file = pq.ParquetFile(storage.resolve(uri, s3_options)[1], filesystem=filesystem)
            for batch in shard_file.iter_batches(batch_size=DEFAULT_CHUNK_ROWS * 4):
                writer.write(batch.replace_schema_metadata(schema.metadata))
        writer.footer = {"rows": total, "unseen_categories": unseen.to_dict()}
    move(merged, destination_uri, s3_options)
    _clear_staging(staging, s3_options)
    return partition(destination_uri, total, "published", report)


def _check_shard(
    uri: str, pinned: PinnedModel, interval: Interval, run_token: str, s3_options: dict[str, Any] | None
) -> None:
    metadata = read_file_metadata(uri, s3_options)
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


def _row_count(uri: str, filesystem: pafs.FileSystem, s3_options: dict[str, Any] | None) -> int:
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(storage.resolve(uri, s3_options)[1], filesystem=filesystem).metadata.num_rows)


def _clear_staging(staging: str, s3_options: dict[str, Any] | None) -> None:
    """Remove this run's staging folder (other runs' folders are theirs), and its parents once empty."""
    storage.delete_tree(staging, s3_options)
    if not storage.is_s3(staging):
        parent = Path(staging).parent
        for folder in (parent, parent.parent):  # interval=..., then the model's staging folder
            try:
                folder.rmdir()
            except OSError:
                break  # not empty: another run of this interval is staging there
