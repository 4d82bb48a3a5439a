"""Plain JSON values out of numpy, pandas and datetime ones, for XCom and MLflow tags."""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from datetime import date, datetime, time
from typing import Any


def to_json_safe(value: Any) -> Any:
    """Convert numpy/pandas scalars, NaN and timestamps to plain JSON values (NaN and NaT become None)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(key): to_json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_json_safe(item) for item in value]
    pandas = sys.modules.get("pandas")
    if pandas is not None and (value is pandas.NaT or value is pandas.NA):
        return None
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return to_json_safe(value.tolist())
    return str(value)


def json_safe_mapping(values: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`to_json_safe` of a mapping, typed as the dict it stays."""
    return {str(key): to_json_safe(value) for key, value in values.items()}
