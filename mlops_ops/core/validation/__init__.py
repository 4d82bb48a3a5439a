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

The package's seams: :mod:`.suite` (reading and checking a suite), :mod:`.expectations` (the expectation types
and dtype families the checks know), :mod:`.checks` (validating a file), :mod:`.gx` (the Great Expectations
adapter), :mod:`.report` (outcomes, reports and their text), :mod:`.across_files` and :mod:`.files` (the files of
a data version together, as the validation operator and ``mlops-ops ci check-data`` run them).
"""

from __future__ import annotations

from mlops_ops.core.validation.across_files import (
    RepeatedKeys,
    keys_repeated_across_files,
)
from mlops_ops.core.validation.checks import (
    read_csv_table,
    read_table,
    validate_csv_file,
    validate_file,
    validate_files,
    validate_frame,
)
from mlops_ops.core.validation.expectations import (
    ARROW_PREFIX,
    DEFAULT_MAX_STRING_LENGTH,
)
from mlops_ops.core.validation.files import (
    OUTSIDE_LANDING_ROOT,
    REPEATED_ACROSS_FILES,
    UNREADABLE,
    DataFilesReport,
    FileFailure,
    validate_data_files,
)
from mlops_ops.core.validation.report import (
    LONG_VALUE_PREFIX_CHARS,
    MAX_EXAMPLE_CHARS,
    MAX_EXAMPLES,
    ExpectationOutcome,
    ValidationReport,
    failure_message,
)
from mlops_ops.core.validation.suite import (
    check_suite,
    load_suite,
    without_columns,
)

__all__ = [
    "ARROW_PREFIX",
    "DEFAULT_MAX_STRING_LENGTH",
    "DataFilesReport",
    "ExpectationOutcome",
    "FileFailure",
    "LONG_VALUE_PREFIX_CHARS",
    "MAX_EXAMPLES",
    "MAX_EXAMPLE_CHARS",
    "OUTSIDE_LANDING_ROOT",
    "REPEATED_ACROSS_FILES",
    "RepeatedKeys",
    "UNREADABLE",
    "ValidationReport",
    "check_suite",
    "failure_message",
    "keys_repeated_across_files",
    "load_suite",
    "read_csv_table",
    "read_table",
    "validate_csv_file",
    "validate_data_files",
    "validate_file",
    "validate_files",
    "validate_frame",
    "without_columns",
]
