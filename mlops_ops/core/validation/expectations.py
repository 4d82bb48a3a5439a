"""The expectation types and column kwargs the checks know, and the dtype families of a suite's
``columns`` entries."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass


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


def _referenced_columns(kwargs: Mapping[str, Any]) -> list[str]:
    columns = [kwargs[key] for key in _COLUMN_KWARGS if isinstance(kwargs.get(key), str)]
    for key in _COLUMN_LIST_KWARGS:
        value = kwargs.get(key)
        if isinstance(value, list | tuple):
            columns.extend(str(c) for c in value)
    return columns


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
