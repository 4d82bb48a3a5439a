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

Structural checks that GX reports poorly (a column that is missing, a dtype that is wrong, a table that is
empty) are evaluated here in pandas, before GX, and reported as outcomes of the same report:

* ``columns`` entries and the ``expect_column_to_exist`` / ``expect_column_values_to_be_of_type``
  expectations name the column and, for a dtype, the expected and the actual dtype;
* ``expect_table_row_count_to_be_between`` is evaluated in pandas; a file with zero rows always fails (an
  implicit ``min_value: 1``) unless the suite has its own row-count expectation;
* expectations about a missing column are not sent to GX (it would only repeat "column does not exist"); the
  missing column is reported once, by name;
* an empty table is not sent to GX (value expectations hold vacuously on zero rows).

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

if TYPE_CHECKING:
    import pandas as pd

#: How many unexpected values (with their row numbers) a failed outcome keeps.
MAX_EXAMPLES = 5

#: Expectation types evaluated in pandas before GX (see the module docstring).
_COLUMN_EXISTS = "expect_column_to_exist"
_COLUMN_TYPE = "expect_column_values_to_be_of_type"
_ROW_COUNT = "expect_table_row_count_to_be_between"

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
    unexpected_examples: list = field(default_factory=list)
    kwargs: dict = field(default_factory=dict)

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
        where = f" on {self.column}" if self.column else ""
        text = f"{self.expectation}{where}: {_describe_observed(self)}"
        if self.unexpected_examples:
            text += f"; examples: {_describe_examples(self.unexpected_examples)}"
        return text


@dataclass(frozen=True)
class ValidationReport:
    """The outcomes of a suite on one file.

    :param suite: the suite name.
    :param file: the file (path or URI) that was validated.
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
        if self.success:
            checked = f"{len(self.outcomes)} expectations, {self.rows} rows"
            return f"{self.file}: suite {self.suite!r} passed ({checked})"
        lines = [
            f"{self.file}: suite {self.suite!r} failed {len(self.failures)} of {len(self.outcomes)} "
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
        (each with ``type`` and ``kwargs``).
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
    return {"name": name, "columns": columns, "expectations": expectations}


def _gx_module():
    # GX reads these at import/context creation; respect a value the user set.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    return import_optional("great_expectations", "validation")


def _to_gx_expectation(type_: str, kwargs: dict, position: int, source: str):
    """Build the GX expectation object, turning GX's errors into a DataError naming the suite."""
    from great_expectations.exceptions import ExpectationNotFoundError
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
    }


# --------------------------------------------------------------------------------------------- reading


def read_table(uri: str, s3_options: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Read one Parquet file into a pandas DataFrame.

    :param uri: a local path or ``s3://bucket/key``.
    :param s3_options: ``pyarrow.fs.S3FileSystem`` arguments for ``s3://`` URIs (see
        :func:`mlops_ops.hooks.object_storage.s3_options_for`).
    :return: the table as a DataFrame.
    :raises DataError: ``"<uri>: not a readable Parquet file (<error>)"`` when it is missing, not a single
        file, or not Parquet. Other I/O errors (a network failure) propagate, so Airflow retries them.
    """
    import pyarrow as pa
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    from mlops_ops.core import storage

    filesystem, path = storage.resolve(uri, dict(s3_options) if s3_options else None)
    kind = filesystem.get_file_info(path).type
    if kind != pafs.FileType.File:
        found = "nothing" if kind == pafs.FileType.NotFound else "a directory"
        raise DataError(f"{uri}: not a readable Parquet file (found {found} there)")
    try:
        return pq.read_table(path, filesystem=filesystem).to_pandas()
    except (ValueError, pa.ArrowInvalid) as err:
        raise DataError(f"{uri}: not a readable Parquet file ({err})") from err


def validate_files(
    files: Iterable[str], suite: Mapping[str, Any], s3_options: Mapping[str, Any] | None = None
) -> list[ValidationReport]:
    """Validate each file in turn, holding one file in memory at a time.

    :param files: paths or URIs of Parquet files.
    :param suite: a suite from :func:`load_suite` (or a dict of the same shape).
    :param s3_options: S3 access for ``s3://`` URIs, see :func:`read_table`.
    :return: one report per file, in order.
    :raises DataError: naming the first file that cannot be read.
    """
    return [validate_file(uri, suite, s3_options=s3_options) for uri in files]


def validate_file(
    uri: str, suite: Mapping[str, Any], s3_options: Mapping[str, Any] | None = None
) -> ValidationReport:
    """Read one Parquet file and validate it; see :func:`read_table` and :func:`validate_frame`."""
    return validate_frame(read_table(uri, s3_options=s3_options), suite, file=uri)


def validate_frame(frame: pd.DataFrame, suite: Mapping[str, Any], file: str) -> ValidationReport:
    """Validate a DataFrame against a suite: structural checks in pandas, then one GX run.

    :param frame: the data; its index is ignored (rows are numbered from 0 in examples).
    :param suite: a suite from :func:`load_suite` or a dict of the same shape.
    :param file: the file the frame came from, named in the report.
    :return: the report; ``success`` is true only if every outcome held.
    :raises DataError: if the suite is malformed.
    """
    suite = _normalise_suite(suite, source=f"suite {suite.get('name')!r}")
    rows = len(frame)
    outcomes: list[ExpectationOutcome] = []
    missing: set[str] = set()

    for column, accepted in suite["columns"].items():
        outcomes.append(_dtype_outcome(frame, column, accepted, missing))

    gx_items: list[tuple[int, dict]] = []
    has_row_count = False
    for position, item in enumerate(suite["expectations"]):
        type_, kwargs = item["type"], item["kwargs"]
        if type_ == _COLUMN_EXISTS:
            outcomes.append(_exists_outcome(frame, kwargs, missing))
        elif type_ == _COLUMN_TYPE:
            outcomes.append(_dtype_outcome(frame, kwargs["column"], [kwargs["type_"]], missing, kwargs))
        elif type_ == _ROW_COUNT:
            has_row_count = True
            outcomes.append(_row_count_outcome(rows, kwargs))
        else:
            gx_items.append((position, item))

    if rows == 0 and not has_row_count:
        outcomes.append(_row_count_outcome(0, {"min_value": 1}))

    runnable = []
    for position, item in gx_items:
        absent = [c for c in _referenced_columns(item["kwargs"]) if c not in frame.columns]
        for column in absent:
            if column not in missing:
                missing.add(column)
                outcomes.append(_missing_outcome(column, {"column": column}, frame))
        if not absent:
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


def _missing_outcome(column: str, kwargs: dict, frame: pd.DataFrame) -> ExpectationOutcome:
    return ExpectationOutcome(
        expectation=_COLUMN_EXISTS,
        column=column,
        success=False,
        observed={"missing": True, "columns": [str(c) for c in frame.columns]},
        kwargs=dict(kwargs),
    )


def _exists_outcome(frame: pd.DataFrame, kwargs: dict, missing: set[str]) -> ExpectationOutcome:
    column = kwargs["column"]
    if column in frame.columns:
        return ExpectationOutcome(_COLUMN_EXISTS, column, True, {"missing": False}, kwargs=dict(kwargs))
    missing.add(column)
    return _missing_outcome(column, kwargs, frame)


def _dtype_outcome(
    frame: pd.DataFrame, column: str, accepted: list[str], missing: set[str], kwargs: dict | None = None
) -> ExpectationOutcome:
    kwargs = dict(kwargs) if kwargs is not None else {"column": column, "type_": " | ".join(accepted)}
    if column not in frame.columns:
        missing.add(column)
        return _missing_outcome(column, kwargs, frame)
    actual = str(frame[column].dtype)
    return ExpectationOutcome(_COLUMN_TYPE, column, actual in accepted, actual, kwargs=kwargs)


def _row_count_outcome(rows: int, kwargs: Mapping[str, Any]) -> ExpectationOutcome:
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    ok = True
    if low is not None:
        ok = ok and (rows > low if kwargs.get("strict_min") else rows >= low)
    if high is not None:
        ok = ok and (rows < high if kwargs.get("strict_max") else rows <= high)
    return ExpectationOutcome(_ROW_COUNT, None, bool(ok), rows, kwargs=dict(kwargs))


def _run_gx(frame: pd.DataFrame, name: str, items: list[tuple[int, dict]]) -> list[ExpectationOutcome]:
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


def _gx_outcome(item: dict, expectation_result: Any) -> ExpectationOutcome:
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
    values = details.get("partial_unexpected_list") or []
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
    examples: list = field(default_factory=list)

    def describe(self) -> str:
        """One line naming the file, the key, how many repeat and where they were first seen."""
        examples = ", ".join(repr(example["value"]) for example in self.examples)
        return (
            f"{self.file}: {self.keys} key(s) ({', '.join(self.key)}) already in "
            f"{', '.join(self.first_seen_in)}; examples: {examples}"
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
        return f"expected dtype {outcome.kwargs.get('type_')}, actual dtype {observed}"
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


def _describe_examples(examples: list) -> str:
    parts = []
    for example in examples[:MAX_EXAMPLES]:
        if isinstance(example, Mapping) and "row" in example:
            parts.append(f"row {example['row']}: {example.get('value')!r}")
        elif isinstance(example, Mapping):
            parts.append(repr(example.get("value")))
        else:
            parts.append(repr(example))
    return ", ".join(parts)
