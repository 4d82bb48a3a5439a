"""The prediction API's configuration for the flights reference project, as the tests serve it."""

from __future__ import annotations

from include.flights.serving import SERVING_CONFIG
from mlops_ops.serving import ServingConfig


def flights_config(**settings) -> ServingConfig:
    """:class:`ServingConfig` of the flight-delay model (request schema, feature service, prepare, spec), with
    ``settings`` replacing any field."""
    return ServingConfig(**(SERVING_CONFIG | settings))


#: One valid request of the flights schema (UA 1545, EWR -> IAH, February 1, 2013).
FLIGHT_REQUEST = {
    "carrier": "UA",
    "origin": "EWR",
    "dest": "IAH",
    "tailnum": "N14228",
    "flight": 1545,
    "scheduled_departure": "2013-02-01T05:15:00",
    "sched_arr_time": 819,
    "distance": 1400,
}
