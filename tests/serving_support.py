"""The prediction API's configuration for the flights reference project, as the tests serve it."""

from __future__ import annotations

from include.flights.serving import SERVING_CONFIG
from mlops_ops.serving import ServingConfig


def flights_config(**settings) -> ServingConfig:
    """:class:`ServingConfig` of the flight-delay model (request schema, feature service, prepare, spec), with
    ``settings`` replacing any field."""
    return ServingConfig(**(SERVING_CONFIG | settings))
