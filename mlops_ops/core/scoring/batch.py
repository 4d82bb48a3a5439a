"""Scoring one shard: record batches of the interval, checked against the model's signature, scored and
streamed to a staging file."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mlops_ops.core import storage, tasks
from mlops_ops.core.errors import DataError
from mlops_ops.core.scoring.inputs import InputUnit, find_input_units, plan_shards
from mlops_ops.core.scoring.interval import Interval
from mlops_ops.core.tasks import TaskMismatchError

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.fs as pafs

    from mlops_ops.core.model_artifacts import ModelInput, PinnedModel
    from mlops_ops.core.storage import ObjectStore
    from mlops_ops.core.tasks import Task, TaskType

log = logging.getLogger(__name__)

DEFAULT_CHUNK_ROWS = 65_536
#: Parquet key-value metadata of every predictions file: who wrote it, from which model, for which interval.
METADATA_KEY = b"mlops.scoring"
#: Parquet footer entry written when a file is complete: what scoring it found (rows, unseen categories).
SUMMARY_KEY = b"mlops.scoring.summary"
#: How many distinct unseen values per column a report names (the most frequent first).
MAX_UNSEEN_VALUES = 10
#: The columns every predictions file holds after the key columns and its task's prediction columns
#: (:attr:`ScoredTask.columns`).
RECORD_COLUMNS = ("model_name", "model_version", "interval_start", "interval_end", "scored_at")


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
    :param task: the task the model spec declares (the model is checked against it); ``None``: the model's own
        (:func:`~mlops_ops.core.tasks.infer_task`), for a caller without a model spec.
    :param threshold: a binary model's probability at or above which ``prediction`` is 1 (other tasks ignore it).
    :param chunk_rows: rows per record batch read, scored and written; bounds memory.
    :param categories: per categorical input column, the values the model saw in training
        (:func:`training_categories`); values outside them are scored (the model treats them as missing) and
        counted. Empty: nothing is counted.
    :param also_read: columns read beside the key, time and feature columns when no ``prepare`` or ``join``
        asks for whole rows (a label, for performance monitoring).
    """

    features: Sequence[ModelInput]
    key_columns: Sequence[str]
    time_column: str
    prepare: Callable[[Any], Any] | None = None
    join: Callable[[Any], Any] | None = None
    threshold: float = 0.5
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    categories: Mapping[str, frozenset[str]] = field(default_factory=dict)
    also_read: Sequence[str] = ()
    task: TaskType | None = None

    def read_columns(self, schema: pa.Schema) -> list[str] | None:
        """The columns to read: everything when a ``prepare`` or ``join`` function needs raw rows, else only
        those used."""
        if self.prepare is not None or self.join is not None:
            return None
        wanted = dict.fromkeys(
            [*self.key_columns, self.time_column, *(f.name for f in self.features), *self.also_read]
        )
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
    :param positive_rate: the share of rows predicted 1 (binary); ``None`` for another task or no rows.
    :param task: the task the shard was scored for (:class:`ScoredTask`).
    :param classes: a multiclass model's classes (the order of its probability columns), else ``None``.
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
    task: str = "binary"
    classes: list[Any] | None = None

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


@dataclass(frozen=True)
class ScoredTask:
    """What a predictions file's prediction columns are: the task that scored it and, for ``multiclass``, the
    model's classes, in the order of its ``classes_`` (the order of the ``probability_<class>`` columns).

    Recorded in every file's :data:`METADATA_KEY` metadata as ``"task"`` and, for ``multiclass``, ``"classes"``
    (a JSON list); a file without ``"task"`` was written before tasks existed and is binary.

    :param task: ``"binary"``, ``"multiclass"`` or ``"regression"``.
    :param classes: a multiclass model's classes, all integers or all strings; ``None`` for the other tasks.
    """

    task: TaskType = "binary"
    classes: tuple[Any, ...] | None = None

    @classmethod
    def of_model(cls, model: Any, declared: TaskType | None, where: str) -> ScoredTask:
        """The task ``model`` is scored for: ``declared`` (the model spec's; the model is checked against it) or,
        without one, the model's own (:func:`~mlops_ops.core.tasks.infer_task`).

        :raises TaskMismatchError: naming both tasks when the model does not do the declared one, or naming the
            classes of a multiclass model whose classes are neither all integers nor all strings.
        """
        inferred = tasks.infer_task(model)
        task = inferred if declared is None else tasks.get_task(declared)
        try:
            task.check_model(model, "the model")
        except TaskMismatchError as err:
            if declared is None:
                raise TaskMismatchError(f"{where}: {err}") from err
            raise TaskMismatchError(
                f"{where}: the model spec declares task {declared!r} but the model does task {inferred.name!r} "
                f"({err})"
            ) from err
        if task.name != "multiclass":
            return cls(task.name)
        import numpy as np

        classes = tuple(np.asarray(model.classes_).tolist())
        if not (all(_is_integer(value) for value in classes) or all(isinstance(v, str) for v in classes)):
            raise TaskMismatchError(
                f"{where}: the model's classes {[str(value)[:40] for value in classes[:5]]} are neither all "
                "integers nor all strings, which a predictions file needs to type its prediction column"
            )
        return cls("multiclass", classes)

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> ScoredTask:
        """The task recorded in a file's scoring metadata (:func:`~mlops_ops.core.scoring.read_file_metadata`);
        binary when it records none.

        :raises DataError: when the metadata names an unknown task, or a multiclass file lists no classes.
        """
        task = tasks.get_task(str(metadata.get("task", "binary")), "predictions file metadata").name
        if task != "multiclass":
            return cls(task)
        classes = metadata.get("classes")
        if not isinstance(classes, list) or not classes:
            raise DataError("the metadata of a multiclass predictions file lists no classes")
        return cls(task, tuple(classes))

    def to_metadata(self) -> dict[str, Any]:
        """``{"task"}``, and ``"classes"`` (a list) for multiclass: what a file's metadata records."""
        if self.task == "multiclass":
            return {"task": self.task, "classes": list(self.classes or ())}
        return {"task": self.task}

    @property
    def columns(self) -> list[str]:
        """The prediction columns, in order (:func:`~mlops_ops.core.tasks.output_columns`)."""
        return tasks.output_columns(self.task, self.classes)

    def fields(self) -> list[pa.Field]:
        """The prediction columns' Arrow fields: binary ``prediction`` int8 and ``probability``; multiclass
        ``prediction`` (int64 or string, as the classes) and a float64 ``probability_<class>`` per class;
        regression ``prediction`` float64."""
        import pyarrow as pa

        if self.task == "binary":
            kinds = [pa.int8(), pa.float64()]
        elif self.task == "multiclass":
            label = pa.string() if self.classes and isinstance(self.classes[0], str) else pa.int64()
            kinds = [label, *[pa.float64()] * len(self.classes or ())]
        else:
            kinds = [pa.float64()]
        return [pa.field(name, kind, nullable=False) for name, kind in zip(self.columns, kinds, strict=True)]


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def output_schema(
    key_fields: Sequence[pa.Field], metadata: dict[str, Any], scored: ScoredTask | None = None
) -> pa.Schema:
    """The predictions schema: the key columns as read, then the task's prediction columns, then the record
    columns (:data:`RECORD_COLUMNS`), with file metadata (``scored``'s :meth:`ScoredTask.to_metadata` among it).

    :param scored: the task the file is scored for; default binary.
    :raises DataError: when a key column has the name of an output column.
    """
    import pyarrow as pa

    scored = scored or ScoredTask()
    taken = sorted({field.name for field in key_fields} & {*scored.columns, *RECORD_COLUMNS})
    if taken:
        raise DataError(f"key column(s) {taken} have the name of a column batch scoring writes")
    timestamp = pa.timestamp("us", tz="UTC")
    return pa.schema(
        [
            *key_fields,
            *scored.fields(),
            pa.field("model_name", pa.dictionary(pa.int32(), pa.string()), nullable=False),
            pa.field("model_version", pa.int64(), nullable=False),
            pa.field("interval_start", timestamp, nullable=False),
            pa.field("interval_end", timestamp, nullable=False),
            pa.field("scored_at", timestamp, nullable=False),
        ],
        metadata={METADATA_KEY: json.dumps({**metadata, **scored.to_metadata()}, sort_keys=True).encode()},
    )


class _BatchScorer:
    """Turns one input record batch into one predictions record batch."""

    def __init__(
        self,
        model: Any,
        pinned: PinnedModel,
        config: ScoringConfig,
        interval: Interval,
        where: str,
        task: Task,
    ) -> None:
        import pyarrow as pa

        self.model = model
        self.task = task
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
        predicted = self.task.predict(self.model, inputs, self.config.threshold).columns()
        rows = len(inputs)
        columns = []
        for key_field in (schema.field(index) for index in range(key_count)):
            column = batch.column(key_field.name)
            columns.append(column if column.type == key_field.type else column.cast(key_field.type))
        for name, values in predicted.items():
            columns.append(pa.array(values, type=schema.field(name).type))
        columns += [
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
    object_store: ObjectStore | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> ShardResult:
    """Score shard ``shard_index`` of ``shard_count`` of ``interval``'s rows and write it to ``destination_uri``.

    The file is written under a temporary name and moved into place only once complete, so a retry or a crash
    never leaves a partial shard where :func:`publish` looks. A shard with no rows still writes an empty file,
    which records that it was done.

    The prediction columns are the task's (:class:`ScoredTask`): ``config.task`` when the caller has the model
    spec, else the model's own; the file's metadata records it.

    :param model: a fitted model of the task: ``predict_proba`` and ``classes_`` (classification) or ``predict``.
    :param pinned: the model version, written into every row and the file's metadata.
    :param progress: called after each chunk with ``(chunk_number, rows_so_far, rows_per_second)``.
    :raises DataError: naming the column and interval when the input does not fit the model's signature.
    :raises TaskMismatchError: naming both tasks when the model does not do ``config.task``.
    """
    import pyarrow.parquet as pq

    started = time.monotonic()
    filesystem, _ = storage.resolve(source_uri, object_store)
    units = find_input_units(source_uri, interval, config.time_column, object_store)
    mine = plan_shards(units, shard_count)[shard_index]
    where = f"{pinned.name} v{pinned.version} on interval {interval.describe()} of {source_uri}"
    scored_task = ScoredTask.of_model(model, config.task, f"{pinned.name} v{pinned.version}")
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
    schema = output_schema(key_fields, file_metadata, scored_task)
    scorer = _BatchScorer(model, pinned, config, interval, where, tasks.get_task(scored_task.task))
    result = ShardResult(
        uri=destination_uri,
        shard_index=shard_index,
        shard_count=shard_count,
        task=scored_task.task,
        classes=scored_task.to_metadata().get("classes"),
    )
    tracker = _Progress(progress)
    binary = scored_task.task == "binary"
    positives = 0
    with _StagedWriter(destination_uri, schema, object_store) as writer:
        batches = iter_interval_batches(mine, config, interval, filesystem, storage.is_remote(source_uri))
        for batch, rows_read in prefetch(batches, depth=PREFETCH_BATCHES):
            result.rows_read += rows_read
            if batch.num_rows == 0:
                continue
            scored = scorer.score(batch, schema, len(key_fields))
            writer.write(scored)
            if binary:
                positives += int(scored.column("prediction").to_numpy().sum())
            result.rows += scored.num_rows
            result.chunks += 1
            tracker.report(result.chunks, result.rows)
        result.unseen_categories = scorer.unseen.to_dict()
        writer.footer = {"rows": result.rows, "unseen_categories": result.unseen_categories}
    result.seconds = time.monotonic() - started
    result.positive_rate = positives / result.rows if binary and result.rows else None
    return result


class _StagedWriter:
    """A Parquet writer that publishes its file at ``uri`` only when closed without an error.

    Batches are encoded and written by a background thread (pyarrow releases the GIL), so writing overlaps
    scoring the next batch; at most two batches wait in between. A ``footer`` set before closing is stored
    under :data:`SUMMARY_KEY` (what was only known once every batch was written).
    """

    def __init__(self, uri: str, schema: pa.Schema, object_store: ObjectStore | None) -> None:
        self.uri = uri
        self.schema = schema
        self.object_store = object_store
        self.temporary = temporary_uri(uri)
        self.footer: dict[str, Any] | None = None
        self._failure: BaseException | None = None

    def __enter__(self) -> _StagedWriter:
        import queue
        import threading

        import pyarrow.parquet as pq

        self.filesystem, path = storage.resolve(self.temporary, self.object_store)
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
            _delete_quietly(self.temporary, self.object_store)
            if error is None and failure is not None:
                raise failure
            return
        move(self.temporary, self.uri, self.object_store)


def temporary_uri(uri: str) -> str:
    """A unique temporary name beside ``uri`` that dataset readers skip (leading dot)."""
    folder, _, name = uri.rpartition("/")
    return f"{folder}/.{name}.{uuid.uuid4().hex}.tmp"


def _make_parent(filesystem: pafs.FileSystem, path: str, uri: str) -> None:
    if not storage.is_remote(uri):
        filesystem.create_dir(path.rpartition("/")[0], recursive=True)


def move(source: str, destination: str, object_store: ObjectStore | None = None) -> None:
    """Put the complete file ``source`` at ``destination`` in one step, replacing what was there.

    Locally ``os.replace`` (atomic on one filesystem); on S3 a server-side copy (an object appears whole) and
    the delete of the source.
    """
    import os

    if storage.is_remote(destination):
        filesystem, source_path = storage.resolve(source, object_store)
        _, destination_path = storage.resolve(destination, object_store)
        filesystem.copy_file(source_path, destination_path)
        storage.delete_file(source, object_store)
        return
    _, source_path = storage.resolve(source)
    _, destination_path = storage.resolve(destination)
    os.makedirs(os.path.dirname(destination_path), exist_ok=True)
    os.replace(source_path, destination_path)


def _delete_quietly(uri: str, object_store: ObjectStore | None) -> None:
    try:
        storage.delete_file(uri, object_store)
    except OSError as err:
        log.warning("could not delete the temporary file %s: %s", uri, err)
