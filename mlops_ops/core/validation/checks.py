"""Validating a file: read it (refusing links out of the landing root), then the checks pandas and Arrow
evaluate before GX (columns, types, lengths, row count) and GX for the rest."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from mlops_ops.core.errors import DataError
from mlops_ops.core.printable import printable
from mlops_ops.core.validation.expectations import (
    _COLUMN_EXISTS,
    _COLUMN_TYPE,
    _FAMILY_BOOL,
    _FAMILY_DICTIONARY,
    _FAMILY_DURATION,
    _FAMILY_INTEGER,
    _FAMILY_NUMBER,
    _FAMILY_TEXT,
    _FAMILY_TIMESTAMP,
    _ROW_COUNT,
    _TEXT_DTYPES,
    _VALUE_LENGTHS,
    ARROW_PREFIX,
    DEFAULT_MAX_STRING_LENGTH,
    _arrow_family,
    _referenced_columns,
)
from mlops_ops.core.validation.gx import _run_gx
from mlops_ops.core.validation.report import (
    LONG_VALUE_PREFIX_CHARS,
    MAX_EXAMPLES,
    ExpectationOutcome,
    ValidationReport,
)
from mlops_ops.core.validation.suite import _normalise_suite, _positive_int

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from mlops_ops.core.storage import ObjectStore


def read_table(uri: str, object_store: ObjectStore | None = None, root: str | None = None) -> pd.DataFrame:
    """Read one Parquet file into a pandas DataFrame.

    :param uri: a local path or ``s3://bucket/key``.
    :param object_store: how to reach an object-store URI (see
        :func:`mlops_ops.hooks.object_storage.object_store_for`).
    :param root: the landing root a local ``uri`` was found under; when given, a file that is a symbolic link
        leading out of it is refused without being read. ``None``: no such check.
    :return: the table as a DataFrame.
    :raises DataError: ``"<uri>: not a readable Parquet file (<error>)"`` when it is missing, not a single
        file, or not Parquet; :class:`~mlops_ops.core.storage.OutsideRoot` for a link leading out of ``root``.
        The file name is escaped in both. Other I/O errors (a network failure) propagate, so Airflow retries
        them.
    """
    return _read_arrow(uri, object_store, root).to_pandas()


def _read_arrow(uri: str, object_store: ObjectStore | None, root: str | None) -> pa.Table:
    import pyarrow as pa
    import pyarrow.parquet as pq

    filesystem, path = _existing_file(uri, object_store, root, "Parquet")
    try:
        return pq.read_table(path, filesystem=filesystem)
    except (ValueError, pa.ArrowInvalid) as err:
        # Arrow's message quotes the path: escaped like the name in front of it.
        raise DataError(f"{printable(uri)}: not a readable Parquet file ({printable(err)})") from err


def read_csv_table(
    uri: str,
    suite: Mapping[str, Any],
    object_store: ObjectStore | None = None,
    root: str | None = None,
) -> pd.DataFrame:
    """Read one CSV file into a pandas DataFrame typed by ``suite``'s ``columns`` (a sample committed for CI;
    the DAGs land and read Parquet only).

    A CSV carries no types, so each column the suite declares is read as it says where its text converts: a
    text column stays text (``"007"`` is not read as 7), a timestamp column is parsed (as UTC when the declared
    dtype has a timezone), an integer column becomes float where the suite declares a float (a Parquet column
    with missing values is float). A column whose values do not convert is left as pandas infers it, so the
    suite's type check names it; undeclared columns are inferred by pandas.

    :param uri: a local path or ``s3://bucket/key``.
    :param suite: a suite from :func:`load_suite` (or a dict of the same shape).
    :param object_store: how to reach object-store URIs, see :func:`read_table`.
    :param root: the landing root of a local ``uri``, see :func:`read_table`.
    :return: the table as a DataFrame.
    :raises DataError: ``"<uri>: not a readable CSV file (<error>)"`` when it is missing, not a single file, or
        not CSV text; :class:`~mlops_ops.core.storage.OutsideRoot` for a link leading out of ``root``.
    """
    import pandas as pd

    declared = _normalise_suite(suite, source=f"suite {suite.get('name')!r}")["columns"]
    text = [column for column, accepted in declared.items() if _FAMILY_TEXT in map(_arrow_family, accepted)]
    filesystem, path = _existing_file(uri, object_store, root, "CSV")
    try:
        with filesystem.open_input_file(path) as handle:
            frame = pd.read_csv(handle, dtype=dict.fromkeys(text, object))
    except ValueError as err:  # pandas' ParserError and EmptyDataError, a UnicodeDecodeError: all ValueErrors
        raise DataError(f"{printable(uri)}: not a readable CSV file ({printable(err)})") from err
    for column, accepted in declared.items():
        if column in frame.columns:
            frame[column] = _as_declared(frame[column], accepted)
    return frame


def _as_declared(values: pd.Series, accepted: list[str]) -> pd.Series:
    """``values`` converted to the first accepted timestamp or float dtype they convert to; as they are when
    none is declared or none converts (the type check then names the column)."""
    import pandas as pd

    for dtype in accepted:
        family = _arrow_family(dtype)
        try:
            if family == _FAMILY_TIMESTAMP:
                # A timezone-aware dtype names its zone after the unit: "datetime64[ns, UTC]".
                parsed = pd.to_datetime(values, utc="," in dtype)
                return parsed.astype(dtype)
            if family == _FAMILY_NUMBER and pd.api.types.is_integer_dtype(values.dtype):
                return values.astype(dtype)
        except (ValueError, TypeError, OverflowError):
            continue
    return values


def _existing_file(
    uri: str, object_store: ObjectStore | None, root: str | None, kind: str
) -> tuple[Any, str]:
    """The filesystem and path of ``uri``, refused unless it is a file (and, with ``root``, within it)."""
    import pyarrow.fs as pafs

    from mlops_ops.core import storage

    filesystem, path = storage.resolve(uri, object_store)
    if root is not None and not storage.is_remote(uri):
        storage.real_path_within(path, root)
    found = filesystem.get_file_info(path).type
    if found != pafs.FileType.File:
        what = "nothing" if found == pafs.FileType.NotFound else "a directory"
        raise DataError(f"{printable(uri)}: not a readable {kind} file (found {what} there)")
    return filesystem, path


def validate_files(
    files: Iterable[str],
    suite: Mapping[str, Any],
    object_store: ObjectStore | None = None,
    root: str | None = None,
    max_string_length: int | None = None,
) -> list[ValidationReport]:
    """Validate each file in turn, holding one file in memory at a time.

    :param files: paths or URIs of Parquet files.
    :param suite: a suite from :func:`load_suite` (or a dict of the same shape).
    :param object_store: how to reach object-store URIs, see :func:`read_table`.
    :param root: the landing root of local files, see :func:`read_table`.
    :param max_string_length: see :func:`validate_frame`.
    :return: one report per file, in order.
    :raises DataError: naming the first file that cannot be read.
    """
    return [
        validate_file(uri, suite, object_store=object_store, root=root, max_string_length=max_string_length)
        for uri in files
    ]


def validate_file(
    uri: str,
    suite: Mapping[str, Any],
    object_store: ObjectStore | None = None,
    root: str | None = None,
    max_string_length: int | None = None,
) -> ValidationReport:
    """Read one Parquet file and validate it, its Arrow schema included; see :func:`read_table` and
    :func:`validate_frame`."""
    table = _read_arrow(uri, object_store, root)
    schema = table.schema
    frame = table.to_pandas()
    del table  # one copy of the data in memory while GX runs
    return validate_frame(frame, suite, file=uri, schema=schema, max_string_length=max_string_length)


def validate_csv_file(
    uri: str,
    suite: Mapping[str, Any],
    object_store: ObjectStore | None = None,
    root: str | None = None,
    max_string_length: int | None = None,
) -> ValidationReport:
    """Read one CSV file typed by the suite and validate it; see :func:`read_csv_table` and
    :func:`validate_frame` (the Arrow types of text columns are inferred from their values)."""
    frame = read_csv_table(uri, suite, object_store=object_store, root=root)
    return validate_frame(frame, suite, file=uri, max_string_length=max_string_length)


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
