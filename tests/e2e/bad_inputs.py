"""How the bad-input matrices (retrain's and batch scoring's) break a slice of real flights."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

Breakage = Callable[[pd.DataFrame], pd.DataFrame]


def setting(column: str, value: Any) -> Breakage:
    """The first five rows' ``column`` set to ``value``."""
    return setting_rows(column, value, last_row=4)


def with_nulls(column: str) -> Breakage:
    """The first ten rows' ``column`` emptied."""
    return setting_rows(column, None, last_row=9)


def setting_rows(column: str, value: Any, last_row: int) -> Breakage:
    """Rows ``0..last_row`` of ``column`` set to ``value``."""

    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        frame.loc[:last_row, column] = value
        return frame

    return change
