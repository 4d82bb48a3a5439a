"""Data validation of landed Parquet files against a plain-JSON Great Expectations suite.

A suite is a JSON file::

    {
      "name": "flights_raw",
      "columns": {"month": "int64", "time_hour": ["datetime64[ns, UTC]", "datetime64[us, UTC]"]},
      "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "month"}},
        ...
      ]
    }

``columns`` is optional: each listed column must exist and have one of the given pandas dtypes, compared
exactly with ``str(frame[column].dtype)``. ``expectations`` are Great Expectations 1.x expectation types with
their kwargs.

Types are also judged on the Arrow schema (of the Parquet file, or inferred from a frame's ``object`` columns),
because a pandas dtype hides what a column holds: ``object`` is what text, bytes, dicts (Arrow ``struct``) and
arrays (Arrow ``list``) all become. An expected dtype accepts only the Arrow types pandas reads into it as that
kind of value:

* ``object`` / ``string`` / ``str``: ``string``, ``large_string``, ``string_view``, an all-null column, or a
  dictionary of those (``binary``, ``struct``, ``list``, ``map``, ``decimal``, ``date``, a dictionary of
  numbers... are refused);
* ``int*`` / ``uint*``: integers; ``float*``: floating point or integers (an integer column with nulls reads
  as ``float64``); ``bool``: booleans; ``datetime64[...]``: timestamps; ``timedelta64[...]``: durations;
  ``category``: dictionaries; any other dtype name: no Arrow constraint;
* an entry ``"arrow:<type>"`` (e.g. ``"arrow:decimal128(12, 2)"``, ``"arrow:date32[day]"``) accepts exactly that
  Arrow type, written as pyarrow prints it, whatever pandas makes of it.

Every text column of a file (listed in ``columns`` or not) is bounded in length: a value longer than
``max_string_length_per_column[column]``, else the ``max_string_length`` argument, else the suite's
``"max_string_length"``, else :data:`DEFAULT_MAX_STRING_LENGTH` characters fails the file, reported with its
row and length, never with the value (a short escaped prefix at most)::

    {"name": "...", "max_string_length": 256, "max_string_length_per_column": {"comment": 20000}, ...}

Structural checks that GX reports poorly (a column that is missing, a dtype that is wrong, a table that is
empty) are evaluated here in pandas, before GX, and reported as outcomes of the same report:

* ``columns`` entries and the ``expect_column_to_exist`` / ``expect_column_values_to_be_of_type``
  expectations name the column and, for a dtype, the expected and the actual dtype;
* ``expect_table_row_count_to_be_between`` is evaluated in pandas; a file with zero rows always fails (an
  implicit ``min_value: 1``) unless the suite has its own row-count expectation;
* expectations about a missing column are not sent to GX (it would only repeat "column does not exist"); the
  missing column is reported once, by name;
* an empty table is not sent to GX (value expectations hold vacuously on zero rows);
* expectations about a column whose Arrow type was refused are not sent to GX either (values of another kind
  only make it fail with exceptions); the column is reported once, by the type check.

File names, Arrow type names and clipped example values are escaped
(:func:`~mlops_ops.core.printable.printable`) in every summary line, since they come from whoever landed the
file. With a landing root, a file that is a symbolic link leading out of it is refused before it is read.

No Airflow import here; great_expectations, pandas and pyarrow are imported inside the functions that use
them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_ops.core.errors import DataError
from mlops_ops.core.json_values import to_json_safe
from mlops_ops.core.optional import import_optional
from mlops_ops.core.printable import printable

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

#: How many unexpected values (with their row numbers) a failed outcome keeps.
MAX_EXAMPLES = 5
#: Characters of an example value kept in a report (values can be megabytes long).
MAX_EXAMPLE_CHARS = 64
#: Characters of an over-long value shown in a report, escaped.
LONG_VALUE_PREFIX_CHARS = 16
#: Longest text value accepted, in characters, unless the suite or the caller says otherwise.
DEFAULT_MAX_STRING_LENGTH = 1024
#: Prefix of a ``columns`` entry naming an Arrow type rather than a pandas dtype.
ARROW_PREFIX = "arrow:"

#: Expectation types evaluated in pandas before GX (see the module docstring).
_COLUMN_EXISTS = "expect_column_to_exist"
_COLUMN_TYPE = "expect_column_values_to_be_of_type"
_ROW_COUNT = "expect_table_row_count_to_be_between"
#: Reported for a text value over its length bound (the GX type of the same check).
_VALUE_LENGTHS = "expect_column_value_lengths_to_be_between"

#: pandas dtypes that hold text; ``object`` is what pandas reads an Arrow string column into.
_TEXT_DTYPES = frozenset(
    {"object", "str", "string", "string[python]", "string[pyarrow]", "string[pyarrow_numpy]"}
)

#: Kwargs that name columns, for skipping GX expectations whose columns are missing.
_COLUMN_KWARGS = ("column", "column_A", "column_B")
_COLUMN_LIST_KWARGS = ("column_list", "column_set")


@dataclass(frozen=True)
class ExpectationOutcome:
    """The result of one expectation on one file.

    :param expectation: the expectation type, e.g. ``expect_column_values_to_be_in_set``.
    :param column: the column it is about, ``None`` for table-level expectations (compound ones name their
        columns joined by ``,``).
    :param success: whether the expectation held.
    :param observed: what was observed, JSON-safe: a dtype, a row count, ``{"unexpected_count": ...,
        "unexpected_percent": ...}``, GX's ``observed_value`` or ``{"exception": message}``.
    :param unexpected_examples: up to :data:`MAX_EXAMPLES` offending values as ``{"row": n, "value": v}``.
    :param kwargs: the expectation's kwargs as written in the suite.
    """

    expectation: str
    column: str | None
    success: bool
    observed: Any = None
    unexpected_examples: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of this outcome."""
        return {
            "expectation": self.expectation,
            "column": self.column,
            "success": self.success,
            "observed": to_json_safe(self.observed),
            "unexpected_examples": to_json_safe(self.unexpected_examples),
            "kwargs": to_json_safe(self.kwargs),
        }

    def describe(self) -> str:
        """One line saying what failed (or held): expectation, column, observation and examples."""
        where = f" on {printable(self.column)}" if self.column else ""
        text = f"{self.expectation}{where}: {_describe_observed(self)}"
        if self.unexpected_examples:
            text += f"; examples: {_describe_examples(self.unexpected_examples)}"
        return text


@dataclass(frozen=True)
class ValidationReport:
    """The outcomes of a suite on one file.

    :param suite: the suite name.
    :param file: the file (path or URI) that was validated, as given (:meth:`summary` escapes it).
    :param rows: its row count.
    :param success: whether every expectation held.
    :param outcomes: one outcome per evaluated expectation, structural checks first.
    """

    suite: str
    file: str
    rows: int
    success: bool
    outcomes: tuple[ExpectationOutcome, ...]

    @property
    def failures(self) -> tuple[ExpectationOutcome, ...]:
        """The outcomes that did not hold."""
        return tuple(outcome for outcome in self.outcomes if not outcome.success)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of the report."""
        return {
            "suite": self.suite,
            "file": self.file,
            "rows": int(self.rows),
            "success": bool(self.success),
            "outcomes": [outcome.to_dict() for outcome in self.outcomes],
        }

    def summary(self) -> str:
        """Human summary naming the file and listing each failed expectation with its examples."""
        file = printable(self.file)
        if self.success:
            checked = f"{len(self.outcomes)} expectations, {self.rows} rows"
            return f"{file}: suite {self.suite!r} passed ({checked})"
        lines = [
            f"{file}: suite {self.suite!r} failed {len(self.failures)} of {len(self.outcomes)} "
            f"expectations ({self.rows} rows)"
        ]
        lines += [f"  - {outcome.describe()}" for outcome in self.failures]
        return "\n".join(lines)


def failure_message(reports: Iterable[ValidationReport]) -> str:
    """The summaries of the failed reports, one block per file; empty when all passed."""
    return "\n".join(report.summary() for report in reports if not report.success)


# --------------------------------------------------------------------------------------------- suites


def load_suite(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check a plain-JSON expectation suite.

    :param path: the suite file.
    :return: the suite as a dict with ``name``, ``columns`` (possibly empty) and ``expectations``.
    :raises DataError: naming the file, if it is missing, not JSON, malformed, or names an unknown expectation
        type or invalid kwargs.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise DataError(f"{source}: cannot read expectation suite ({err})") from err
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{source}: expectation suite is not valid JSON ({err})") from err
    if isinstance(raw, dict):
        raw.setdefault("name", Path(path).stem)
    return check_suite(raw, source=source)


def check_suite(suite: Any, source: str = "<suite>") -> dict[str, Any]:
    """Check a suite's shape and that every expectation type and its kwargs are known to GX.

    :param suite: the parsed suite.
    :param source: where it came from, for error messages.
    :return: a normalised copy: ``name``, ``columns`` (column -> list of accepted dtypes), ``expectations``
        (each with ``type`` and ``kwargs``), ``max_string_length`` (``None``: not set) and
        ``max_string_length_per_column`` (column -> characters, possibly empty).
    :raises DataError: naming ``source`` and what is wrong.
    """
    normalised = _normalise_suite(suite, source)
    if normalised["expectations"]:
        _gx_module()
        for position, item in enumerate(normalised["expectations"]):
            _to_gx_expectation(item["type"], item["kwargs"], position, source)
    return normalised


def _normalise_suite(suite: Any, source: str) -> dict[str, Any]:
    """Check the suite's JSON shape (no GX) and return a normalised copy; idempotent."""
    if not isinstance(suite, Mapping):
        raise DataError(f"{source}: expectation suite must be a JSON object, got {type(suite).__name__}")
    name = suite.get("name")
    if not isinstance(name, str) or not name:
        raise DataError(f"{source}: expectation suite needs a non-empty string 'name'")
    columns_raw = suite.get("columns") or {}
    if not isinstance(columns_raw, Mapping):
        raise DataError(f"{source}: 'columns' must map column names to dtypes")
    columns: dict[str, list[str]] = {}
    for column, dtypes in columns_raw.items():
        accepted = [dtypes] if isinstance(dtypes, str) else dtypes
        if not isinstance(accepted, list) or not accepted or not all(isinstance(d, str) for d in accepted):
            raise DataError(f"{source}: 'columns'.{column} must be a dtype string or a list of them")
        columns[str(column)] = list(accepted)
    max_length = suite.get("max_string_length")
    if max_length is not None and not _positive_int(max_length):
        raise DataError(f"{source}: 'max_string_length' must be a positive integer, got {max_length!r}")
    per_column_raw = suite.get("max_string_length_per_column") or {}
    if not isinstance(per_column_raw, Mapping) or not all(_positive_int(v) for v in per_column_raw.values()):
        raise DataError(
            f"{source}: 'max_string_length_per_column' must map column names to positive integers"
        )
    expectations_raw = suite.get("expectations", [])
    if not isinstance(expectations_raw, list):
        raise DataError(f"{source}: 'expectations' must be a list")
    expectations = []
    for position, item in enumerate(expectations_raw):
        if not isinstance(item, Mapping) or not isinstance(item.get("type"), str):
            raise DataError(f"{source}: expectation #{position} must be an object with a string 'type'")
        kwargs = item.get("kwargs", {})
        if not isinstance(kwargs, Mapping):
            raise DataError(f"{source}: expectation #{position} ({item['type']}): 'kwargs' must be an object")
        expectations.append({"type": item["type"], "kwargs": dict(kwargs)})
    return {
        "name": name,
        "columns": columns,
        "expectations": expectations,
        "max_string_length": max_length,
        "max_string_length_per_column": {str(column): int(n) for column, n in per_column_raw.items()},
    }


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _gx_module() -> Any:
    # GX reads these at import/context creation; respect a value the user set.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    return import_optional("great_expectations", "validation")


def _to_gx_expectation(type_: str, kwargs: dict[str, Any], position: int, source: str) -> Any:
    """Build the GX expectation object, turning GX's errors into a DataError naming the suite."""
    from great_expectations.exceptions.exceptions import ExpectationNotFoundError
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    config = ExpectationConfiguration(type=type_, kwargs=dict(kwargs), meta={"mlops_position": position})
    try:
        return config.to_domain_obj()
    except ExpectationNotFoundError as err:
        raise DataError(f"{source}: unknown expectation type {type_!r} (expectation #{position})") from err
    except (ValueError, TypeError) as err:  # pydantic's ValidationError is a ValueError
        raise DataError(f"{source}: invalid kwargs for {type_} (expectation #{position}): {err}") from err


def without_columns(suite: Mapping[str, Any], columns: Iterable[str]) -> dict[str, Any]:
    """The suite less what it says about ``columns`` alone: their dtype entries and every expectation whose
    columns are all among them (a compound expectation that also names other columns is kept).

    For input that legitimately lacks some columns' values: batch scoring's rows, whose labels arrive later.

    :param suite: a suite from :func:`load_suite` or a dict of the same shape.
    :param columns: the columns not to judge.
    :return: a normalised copy.
    """
    suite = _normalise_suite(suite, source=f"suite {suite.get('name')!r}")
    excluded = set(columns)
    return {
        "name": suite["name"],
        "columns": {column: dtypes for column, dtypes in suite["columns"].items() if column not in excluded},
        "expectations": [
            item
            for item in suite["expectations"]
            if not (referenced := _referenced_columns(item["kwargs"])) or not set(referenced) <= excluded
        ],
        "max_string_length": suite["max_string_length"],
        "max_string_length_per_column": dict(suite["max_string_length_per_column"]),
    }


# --------------------------------------------------------------------------------------------- reading


def read_table(
    uri: str, s3_options: Mapping[str, Any] | None = None, root: str | None = None
) -> pd.DataFrame:
    """Read one Parquet file into a pandas DataFrame.

    :param uri: a local path or ``s3://bucket/key``.
    :param s3_options: ``pyarrow.fs.S3FileSystem`` arguments for ``s3://`` URIs (see
        :func:`mlops_ops.hooks.object_storage.s3_options_for`).
    :param root: the landing root a local ``uri`` was found under; when given, a file that is a symbolic link
        leading out of it is refused without being read. ``None``: no such check.
    :return: the table as a DataFrame.
    :raises DataError: ``"<uri>: not a readable Parquet file (<error>)"`` when it is missing, not a single
        file, or not Parquet; :class:`~mlops_ops.core.storage.OutsideRoot` for a link leading out of ``root``.
        The file name is escaped in both. Other I/O errors (a network failure) propagate, so Airflow retries
        them.
    """
    return _read_arrow(uri, s3_options, root).to_pandas()


def _read_arrow(uri: str, s3_options: Mapping[str, Any] | None, root: str | None) -> pa.Table:
    import pyarrow as pa
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    from mlops_ops.core import storage

    filesystem, path = storage.resolve(uri, dict(s3_options) if s3_options else None)
    if root is not None and not storage.is_s3(uri):
        storage.real_path_within(path, root)
    kind = filesystem.get_file_info(path).type
    if kind != pafs.FileType.File:
        found = "nothing" if kind == pafs.FileType.NotFound else "a directory"
        raise DataError(f"{printable(uri)}: not a readable Parquet file (found {found} there)")
    try:
        return pq.read_table(path, filesystem=filesystem)
    except (ValueError, pa.ArrowInvalid) as err:
        # Arrow's message quotes the path: escaped like the name in front of it.
        raise DataError(f"{printable(uri)}: not a readable Parquet file ({printable(err)})") from err


def validate_files(
    files: Iterable[str],
    suite: Mapping[str, Any],
    s3_options: Mapping[str, Any] | None = None,
    root: str | None = None,
    max_string_length: int | None = None,
) -> list[ValidationReport]:
    """Validate each file in turn, holding one file in memory at a time.

    :param files: paths or URIs of Parquet files.
    :param suite: a suite from :func:`load_suite` (or a dict of the same shape).
    :param s3_options: S3 access for ``s3://`` URIs, see :func:`read_table`.
    :param root: the landing root of local files, see :func:`read_table`.
    :param max_string_length: see :func:`validate_frame`.
    :return: one report per file, in order.
    :raises DataError: naming the first file that cannot be read.
    """
    return [
        validate_file(uri, suite, s3_options=s3_options, root=root, max_string_length=max_string_length)
        for uri in files
    ]


def validate_file(
    uri: str,
    suite: Mapping[str, Any],
    s3_options: Mapping[str, Any] | None = None,
    root: str | None = None,
    max_string_length: int | None = None,
) -> ValidationReport:
    """Read one Parquet file and validate it, its Arrow schema included; see :func:`read_table` and
    :func:`validate_frame`."""
    table = _read_arrow(uri, s3_options, root)
    schema = table.schema
    frame = table.to_pandas()
    del table  # one copy of the data in memory while GX runs
    return validate_frame(frame, suite, file=uri, schema=schema, max_string_length=max_string_length)


def validate_frame(
    frame: pd.DataFrame,
    suite: Mapping[str, Any],
    file: str,
    *,
    schema: pa.Schema | None = None,
    max_string_length: int | None = None,
) -> ValidationReport:
    """Validate a DataFrame against a suite: structural checks (dtypes and Arrow types, row count, text
    lengths), then one GX run.

    :param frame: the data; its index is ignored (rows are numbered from 0 in examples).
    :param suite: a suite from :func:`load_suite` or a dict of the same shape.
    :param file: the file the frame came from, named in the report.
    :param schema: the Arrow schema the frame was read from (a Parquet file's); ``None``: the Arrow types of
        ``object`` columns are inferred from their values.
    :param max_string_length: the longest text value accepted, in characters, in a column the suite's
        ``max_string_length_per_column`` does not name; ``None``: the suite's ``max_string_length``, else
        :data:`DEFAULT_MAX_STRING_LENGTH`.
    :return: the report; ``success`` is true only if every outcome held.
    :raises DataError: if the suite or ``max_string_length`` is malformed.
    """
    suite = _normalise_suite(suite, source=f"suite {suite.get('name')!r}")
    if max_string_length is not None and not _positive_int(max_string_length):
        raise DataError(f"max_string_length must be a positive integer, got {max_string_length!r}")
    rows = len(frame)
    outcomes: list[ExpectationOutcome] = []
    missing: set[str] = set()
    refused: set[str] = set()
    arrow = _ArrowTypes(frame, schema)

    for column, accepted in suite["columns"].items():
        outcomes.append(_dtype_outcome(frame, column, accepted, missing, refused, arrow))

    gx_items: list[tuple[int, dict[str, Any]]] = []
    has_row_count = False
    for position, item in enumerate(suite["expectations"]):
        type_, kwargs = item["type"], item["kwargs"]
        if type_ == _COLUMN_EXISTS:
            outcomes.append(_exists_outcome(frame, kwargs, missing))
        elif type_ == _COLUMN_TYPE:
            outcomes.append(
                _dtype_outcome(frame, kwargs["column"], [kwargs["type_"]], missing, refused, arrow, kwargs)
            )
        elif type_ == _ROW_COUNT:
            has_row_count = True
            outcomes.append(_row_count_outcome(rows, kwargs))
        else:
            gx_items.append((position, item))

    if rows == 0 and not has_row_count:
        outcomes.append(_row_count_outcome(0, {"min_value": 1}))

    outcomes.extend(_length_outcomes(frame, arrow, suite, max_string_length))

    runnable = []
    for position, item in gx_items:
        referenced = _referenced_columns(item["kwargs"])
        absent = [c for c in referenced if c not in frame.columns]
        for column in absent:
            if column not in missing:
                missing.add(column)
                outcomes.append(_missing_outcome(column, {"column": column}, frame))
        if not absent and not refused.intersection(referenced):
            runnable.append((position, item))

    if runnable and rows > 0:
        outcomes.extend(_run_gx(frame, suite["name"], runnable))

    return ValidationReport(
        suite=suite["name"],
        file=file,
        rows=rows,
        success=all(outcome.success for outcome in outcomes),
        outcomes=tuple(outcomes),
    )


def _referenced_columns(kwargs: Mapping[str, Any]) -> list[str]:
    columns = [kwargs[key] for key in _COLUMN_KWARGS if isinstance(kwargs.get(key), str)]
    for key in _COLUMN_LIST_KWARGS:
        value = kwargs.get(key)
        if isinstance(value, list | tuple):
            columns.extend(str(c) for c in value)
    return columns


def _missing_outcome(column: str, kwargs: dict[str, Any], frame: pd.DataFrame) -> ExpectationOutcome:
    return ExpectationOutcome(
        expectation=_COLUMN_EXISTS,
        column=column,
        success=False,
        observed={"missing": True, "columns": [str(c) for c in frame.columns]},
        kwargs=dict(kwargs),
    )


def _exists_outcome(frame: pd.DataFrame, kwargs: dict[str, Any], missing: set[str]) -> ExpectationOutcome:
    column = kwargs["column"]
    if column in frame.columns:
        return ExpectationOutcome(_COLUMN_EXISTS, column, True, {"missing": False}, kwargs=dict(kwargs))
    missing.add(column)
    return _missing_outcome(column, kwargs, frame)


def _dtype_outcome(
    frame: pd.DataFrame,
    column: str,
    accepted: list[str],
    missing: set[str],
    refused: set[str],
    arrow: _ArrowTypes,
    kwargs: dict[str, Any] | None = None,
) -> ExpectationOutcome:
    """The type check of one column: its pandas dtype, and the Arrow type behind it (module docstring).

    ``observed`` is the pandas dtype, or ``{"dtype", "arrow_type"}`` on a failure where the Arrow type is known
    (from the schema, or inferred because an ``object`` column had to be looked into). A column whose pandas
    dtype was accepted but whose Arrow type was not is added to ``refused``.
    """
    kwargs = dict(kwargs) if kwargs is not None else {"column": column, "type_": " | ".join(accepted)}
    if column not in frame.columns:
        missing.add(column)
        return _missing_outcome(column, kwargs, frame)
    actual = str(frame[column].dtype)
    dtype_accepted = False
    for entry in accepted:
        if entry.startswith(ARROW_PREFIX):
            found = arrow.type_of(column, force=True)
            if not isinstance(found, str) and str(found) == entry[len(ARROW_PREFIX) :].strip():
                return ExpectationOutcome(_COLUMN_TYPE, column, True, actual, kwargs=kwargs)
        elif entry == actual:
            dtype_accepted = True
            family = _arrow_family(entry)
            found = arrow.type_of(column) if family else None
            if family is None or found is None or _in_arrow_family(family, found):
                return ExpectationOutcome(_COLUMN_TYPE, column, True, actual, kwargs=kwargs)
    if dtype_accepted:
        refused.add(column)
    known = arrow.known(column)
    observed: Any = actual if known is None else {"dtype": actual, "arrow_type": known}
    return ExpectationOutcome(_COLUMN_TYPE, column, False, observed, kwargs=kwargs)


#: Arrow families accepted for an expected pandas dtype, by name (see the module docstring).
_FAMILY_TEXT = "string"
_FAMILY_INTEGER = "integer"
_FAMILY_NUMBER = "floating point or integer"
_FAMILY_BOOL = "bool"
_FAMILY_TIMESTAMP = "timestamp"
_FAMILY_DURATION = "duration"
_FAMILY_DICTIONARY = "dictionary"


def _arrow_family(dtype: str) -> str | None:
    """The Arrow family an expected pandas dtype accepts; ``None``: no Arrow constraint."""
    name = dtype.strip()
    lowered = name.lower()
    if name in _TEXT_DTYPES:
        return _FAMILY_TEXT
    if lowered.startswith(("int", "uint")):
        return _FAMILY_INTEGER
    if lowered.startswith("float"):
        return _FAMILY_NUMBER
    if lowered in ("bool", "boolean"):
        return _FAMILY_BOOL
    if lowered.startswith("datetime64"):
        return _FAMILY_TIMESTAMP
    if lowered.startswith("timedelta64"):
        return _FAMILY_DURATION
    if lowered == "category":
        return _FAMILY_DICTIONARY
    return None


def _in_arrow_family(family: str, arrow_type: pa.DataType | str) -> bool:
    import pyarrow as pa

    if isinstance(arrow_type, str):  # the values have no single Arrow type
        return False
    types = pa.types
    if family == _FAMILY_TEXT:
        return (
            types.is_null(arrow_type)
            or _is_text(arrow_type)
            or (types.is_dictionary(arrow_type) and _is_text(arrow_type.value_type))
        )
    checks = {
        _FAMILY_INTEGER: types.is_integer,
        _FAMILY_NUMBER: lambda t: types.is_integer(t) or types.is_floating(t),
        _FAMILY_BOOL: types.is_boolean,
        _FAMILY_TIMESTAMP: types.is_timestamp,
        _FAMILY_DURATION: types.is_duration,
        _FAMILY_DICTIONARY: types.is_dictionary,
    }
    return bool(checks[family](arrow_type))


def _is_text(arrow_type: pa.DataType) -> bool:
    import pyarrow as pa

    return bool(
        pa.types.is_string(arrow_type)
        or pa.types.is_large_string(arrow_type)
        or pa.types.is_string_view(arrow_type)
    )


class _ArrowTypes:
    """The Arrow type and values of a frame's columns: types from the file's schema when there is one, else
    converted from the frame (only where asked, and only ``object``-like columns unless forced)."""

    def __init__(self, frame: pd.DataFrame, schema: pa.Schema | None) -> None:
        self.frame = frame
        self.schema = schema
        self._converted: dict[str, pa.Array | str] = {}
        self._known: set[str] = set()

    def declared(self, column: Any) -> pa.DataType | None:
        """The column's type in the schema; ``None`` without a schema or if the schema lacks it."""
        if self.schema is None:
            return None
        index = self.schema.get_field_index(str(column))
        return self.schema.field(index).type if index >= 0 else None

    def type_of(self, column: str, force: bool = False) -> pa.DataType | str | None:
        """The column's Arrow type; a text saying why there is none (values of several kinds); ``None`` when
        not worth knowing: no schema and a pandas dtype that says it all (numbers, timestamps), unless
        ``force``."""
        declared = self.declared(column)
        if declared is not None:
            return declared
        if not force and not _may_hold_text(self.frame[column].dtype):
            return None
        self._known.add(column)
        values = self.values(column)
        return values if isinstance(values, str) else values.type

    def known(self, column: str) -> str | None:
        """The column's Arrow type as escaped text: from the schema, or as inferred by :meth:`type_of`;
        ``None`` without a schema when :meth:`type_of` did not look into the column."""
        found: Any = self.declared(column)
        if found is None:
            values = self._converted.get(column) if column in self._known else None
            if values is None:
                return None
            found = values if isinstance(values, str) else values.type
        return printable(found)

    def values(self, column: Any) -> pa.Array | str:
        """The column's values as one Arrow array, or a text saying why they convert to none."""
        import pyarrow as pa

        if column not in self._converted:
            try:
                values = pa.array(self.frame[column], from_pandas=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as err:
                values = f"values of several kinds ({printable(err, limit=80)})"
            if isinstance(values, pa.ChunkedArray):  # text over 2 GiB comes back chunked
                values = values.combine_chunks()
            self._converted[column] = values
        return self._converted[column]


def _may_hold_text(dtype: Any) -> bool:
    name = str(dtype)
    return name in _TEXT_DTYPES or name == "category"


def _length_outcomes(
    frame: pd.DataFrame, arrow: _ArrowTypes, suite: Mapping[str, Any], max_string_length: int | None
) -> list[ExpectationOutcome]:
    """One failed outcome per text column holding a value over its length bound (module docstring); passing
    columns add nothing, like the implicit row-count check."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    default = max_string_length or suite["max_string_length"] or DEFAULT_MAX_STRING_LENGTH
    outcomes = []
    for column in frame.columns:
        name = str(column)
        declared = arrow.declared(column)
        if declared is not None and not _in_arrow_family(_FAMILY_TEXT, declared):
            continue  # binary, struct, list...: not text (and refused by the type check if listed)
        if not _may_hold_text(frame[column].dtype):
            continue
        values = arrow.values(column)
        if isinstance(values, str):
            continue  # several kinds of values: the type check refuses it if the suite lists it
        if pa.types.is_dictionary(values.type):
            values = values.dictionary_decode()
        if not _is_text(values.type):
            continue
        lengths = pc.utf8_length(pc.cast(values, pa.large_string()))
        limit = suite["max_string_length_per_column"].get(name, default)
        over = pc.fill_null(pc.greater(lengths, limit), False)
        count = int(pc.sum(over).as_py() or 0)
        if not count:
            continue
        examples = []
        for row in np.flatnonzero(over.to_numpy(zero_copy_only=False))[:MAX_EXAMPLES]:
            text = values[int(row)].as_py()
            examples.append(
                {
                    "row": int(row),
                    "length": len(text),
                    "starts_with": printable(text, limit=LONG_VALUE_PREFIX_CHARS),
                }
            )
        outcomes.append(
            ExpectationOutcome(
                expectation=_VALUE_LENGTHS,
                column=name,
                success=False,
                observed={"values_too_long": count, "longest": int(pc.max(lengths).as_py())},
                unexpected_examples=examples,
                kwargs={"column": name, "max_value": int(limit)},
            )
        )
    return outcomes


def _row_count_outcome(rows: int, kwargs: Mapping[str, Any]) -> ExpectationOutcome:
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    ok = True
    if low is not None:
        ok = ok and (rows > low if kwargs.get("strict_min") else rows >= low)
    if high is not None:
        ok = ok and (rows < high if kwargs.get("strict_max") else rows <= high)
    return ExpectationOutcome(_ROW_COUNT, None, bool(ok), rows, kwargs=dict(kwargs))


def _run_gx(
    frame: pd.DataFrame, name: str, items: list[tuple[int, dict[str, Any]]]
) -> list[ExpectationOutcome]:
    """Run the GX expectations in one ephemeral context, one batch, one validation."""
    import pandas as pd

    gx = _gx_module()
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    if not isinstance(frame.index, pd.RangeIndex) or frame.index.start != 0 or frame.index.step != 1:
        frame = frame.reset_index(drop=True)  # examples report row numbers within the file
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        progress_bars=ProgressBarsConfig(globally=False),
        analytics_enabled=False,
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    batch_definition = (
        context.data_sources.add_pandas("mlops_validation")
        .add_dataframe_asset("frame")
        .add_batch_definition_whole_dataframe("whole")
    )
    expectations = [
        _to_gx_expectation(item["type"], item["kwargs"], position, f"suite {name!r}")
        for position, item in items
    ]
    gx_suite = gx.ExpectationSuite(name=name, expectations=expectations)
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
    result = batch.validate(
        gx_suite, result_format={"result_format": "SUMMARY", "partial_unexpected_count": MAX_EXAMPLES}
    )
    by_position = {position: item for position, item in items}
    outcomes = []
    for expectation_result in result.results:
        position = expectation_result.expectation_config.meta["mlops_position"]
        outcomes.append(_gx_outcome(by_position[position], expectation_result))
    return outcomes


def _gx_outcome(item: dict[str, Any], expectation_result: Any) -> ExpectationOutcome:
    kwargs = item["kwargs"]
    columns = _referenced_columns(kwargs)
    column = ",".join(columns) if columns else None
    details = expectation_result.result or {}
    exception = _exception_message(expectation_result.exception_info)
    if exception is not None:
        observed: Any = {"exception": exception}
    elif "observed_value" in details:
        observed = details["observed_value"]
    else:
        observed = {
            "element_count": details.get("element_count"),
            "unexpected_count": details.get("unexpected_count"),
            "unexpected_percent": details.get("unexpected_percent"),
        }
    values = [_clip(value) for value in details.get("partial_unexpected_list") or []]
    rows = details.get("partial_unexpected_index_list") or []
    if len(rows) == len(values):
        examples = [{"row": row, "value": value} for row, value in zip(rows, values, strict=True)]
    else:
        examples = [{"value": value} for value in values]
    return ExpectationOutcome(
        expectation=item["type"],
        column=column,
        success=bool(expectation_result.success),
        observed=to_json_safe(observed),
        unexpected_examples=to_json_safe(examples[:MAX_EXAMPLES]),
        kwargs=dict(kwargs),
    )


def _clip(value: Any) -> Any:
    # A value can be megabytes long; a report names it, it does not carry it.
    if isinstance(value, str) and len(value) > MAX_EXAMPLE_CHARS:
        return value[:MAX_EXAMPLE_CHARS] + "…"
    if isinstance(value, bytes) and len(value) > MAX_EXAMPLE_CHARS:
        return value[:MAX_EXAMPLE_CHARS] + b"..."
    return value


def _exception_message(info: Any) -> str | None:
    """GX's exception_info is either flat or keyed by metric id; return the first raised message."""
    if not isinstance(info, Mapping):
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message"))
    for value in info.values():
        if isinstance(value, Mapping) and value.get("raised_exception"):
            return str(value.get("exception_message"))
    return None


# --------------------------------------------------------------------------------------------- across files


@dataclass(frozen=True)
class RepeatedKeys:
    """Keys of one file that an earlier file of the same data version already holds (a row landed twice).

    :param file: the later file.
    :param key: the key columns.
    :param keys: how many of its distinct keys an earlier file holds.
    :param first_seen_in: the earlier files holding them.
    :param examples: up to :data:`MAX_EXAMPLES` of those keys, as ``{"value": {column: value}}``.
    """

    file: str
    key: tuple[str, ...]
    keys: int
    first_seen_in: tuple[str, ...]
    examples: list[Any] = field(default_factory=list)

    def describe(self) -> str:
        """One line naming the file, the key, how many repeat and where they were first seen."""
        examples = ", ".join(printable(repr(example["value"]), limit=200) for example in self.examples)
        return (
            f"{printable(self.file)}: {self.keys} key(s) ({', '.join(self.key)}) already in "
            f"{', '.join(printable(file) for file in self.first_seen_in)}; examples: {examples}"
        )


def keys_repeated_across_files(
    files: Iterable[str], key: Iterable[str], s3_options: Mapping[str, Any] | None = None
) -> list[RepeatedKeys]:
    """The keys found in more than one file, reported against every file but the first (in ``files`` order)
    holding each.

    Only the key columns are read. Rows with a null in the key identify nothing and are ignored; values are
    compared as text, so a key stored as a number in one file and as text in another still matches. A key
    repeated inside one file is the suite's business (``expect_compound_columns_to_be_unique``), and a file that
    lacks a key column (or cannot be read) is left to the suite's own checks.

    :param files: paths or URIs of Parquet files, earliest first.
    :param key: the columns whose values together identify a row.
    :param s3_options: S3 access for ``s3://`` URIs, see :func:`read_table`.
    :return: one entry per file holding keys an earlier file holds, in ``files`` order.
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlops_ops.core import storage

    files, key = list(files), list(key)
    frames = []
    for position, uri in enumerate(files):
        filesystem, path = storage.resolve(uri, dict(s3_options) if s3_options else None)
        try:
            schema = pq.read_schema(path, filesystem=filesystem)
            if any(schema.get_field_index(column) < 0 for column in key):
                continue
            frame = pq.read_table(path, columns=key, filesystem=filesystem).to_pandas()
        except (FileNotFoundError, ValueError, pa.ArrowInvalid):  # other OSErrors: let Airflow retry
            continue
        frame = frame.dropna().astype(str).drop_duplicates()
        frames.append(frame.assign(_file=position))
    if len(frames) < 2:
        return []
    keys = pd.concat(frames, ignore_index=True)
    first = keys.groupby(key, sort=False)["_file"].transform("min")
    repeated = keys[keys["_file"] != first].assign(_first=first[keys["_file"] != first])
    found = []
    for position, rows in repeated.groupby("_file", sort=True):
        examples = [
            {"value": dict(zip(key, values, strict=True))} for values in rows[key].head(MAX_EXAMPLES).values
        ]
        found.append(
            RepeatedKeys(
                file=files[int(position)],
                key=tuple(key),
                keys=len(rows),
                first_seen_in=tuple(files[int(index)] for index in sorted(rows["_first"].unique())),
                examples=to_json_safe(examples),
            )
        )
    return found


# --------------------------------------------------------------------------------------------- text, JSON


def _describe_observed(outcome: ExpectationOutcome) -> str:
    observed = outcome.observed
    if outcome.expectation == _COLUMN_EXISTS:
        return "column is missing" if not outcome.success else "column exists"
    if outcome.expectation == _COLUMN_TYPE:
        expected = str(outcome.kwargs.get("type_"))
        if not isinstance(observed, Mapping):
            return f"expected dtype {expected}, actual dtype {observed}"
        dtype, arrow_type = observed.get("dtype"), observed.get("arrow_type")
        entries = [entry.strip() for entry in expected.split("|")]
        if dtype in entries:  # the dtype was right, what it holds was not
            family = _arrow_family(str(dtype))
            return f"expected dtype {expected} (Arrow {family}), actual Arrow type {arrow_type}"
        return f"expected dtype {expected}, actual dtype {dtype} (Arrow type {arrow_type})"
    if outcome.expectation == _VALUE_LENGTHS and isinstance(observed, Mapping) and "longest" in observed:
        return (
            f"{observed.get('values_too_long')} value(s) longer than {outcome.kwargs.get('max_value')} "
            f"characters (longest {observed.get('longest')})"
        )
    if outcome.expectation == _ROW_COUNT:
        bounds = f"[{outcome.kwargs.get('min_value')}, {outcome.kwargs.get('max_value')}]"
        return f"{observed} rows, expected between {bounds}"
    if isinstance(observed, Mapping) and "exception" in observed:
        return f"could not be evaluated: {observed['exception']}"
    if isinstance(observed, Mapping) and "unexpected_count" in observed:
        mostly = outcome.kwargs.get("mostly")
        percent = observed.get("unexpected_percent")
        share = f" ({percent:.3g}%)" if isinstance(percent, int | float) else ""
        text = f"{observed['unexpected_count']} of {observed.get('element_count')} values unexpected{share}"
        return text + (f", mostly={mostly}" if mostly is not None else "")
    return f"observed {observed!r}"


def _describe_examples(examples: list[Any]) -> str:
    parts = []
    for example in examples[:MAX_EXAMPLES]:
        if isinstance(example, Mapping) and "length" in example:
            parts.append(
                f"row {example.get('row')}: {example['length']} characters, "
                f"starting '{printable(example.get('starts_with'))}'"
            )
        elif isinstance(example, Mapping) and "row" in example:
            parts.append(f"row {example['row']}: {example.get('value')!r}")
        elif isinstance(example, Mapping):
            parts.append(repr(example.get("value")))
        else:
            parts.append(repr(example))
    return ", ".join(parts)
