"""The flights reference project's request schema (include/flights/serving.py) at the prediction API's boundary,
without services: its field patterns and length limit, its spec's bounds, its ``mlops-ops serve`` arguments.

Reference tier: these are about the reference project's schema and spec, so they live outside the unit tier
(moved from tests/unit/test_serving_guard.py, whose tests of the boundary's mechanisms now serve the synthetic
visit model of tests/unit/synthetic.py)."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from include.flights.serving import SERVE_ARGUMENTS
from mlops_ops.serving import create_app
from tests.serving_support import FLIGHT_REQUEST as REQUEST
from tests.serving_support import flights_config

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SPEC = str(PROJECT_ROOT / "include" / "flights" / "model_spec.yaml")


def _client() -> TestClient:
    """The API without its lifespan (nothing opened): a request that passes every check gets 503."""
    return TestClient(create_app(flights_config(model_spec=SPEC)))


def test_a_flight_request_within_the_spec_passes_every_check_and_its_fields_are_constrained():
    client = _client()
    assert client.post("/predict", json=REQUEST).status_code == 503  # past every check, no model loaded
    assert client.post("/predict", json=REQUEST | {"distance": 2500}).status_code == 503  # flights: 10000
    assert (
        client.post("/predict", json=REQUEST | {"tailnum": "N" * 60_000}).status_code == 422
    )  # max_length 10


def test_the_flight_schemas_patterns_are_named_in_a_422():
    secret = "hunter2" + "x" * 10_000
    response = _client().post("/predict", json=REQUEST | {"carrier": secret, "origin": secret, "seats": 3})
    assert response.status_code == 422
    assert "hunter2" not in response.text
    assert response.json()["detail"] == [
        {
            "loc": ["body", "carrier"],
            "msg": "String should match pattern '^[A-Z0-9]{2}$'",
            "type": "string_pattern_mismatch",
        },
        {
            "loc": ["body", "origin"],
            "msg": "String should match pattern '^[A-Z]{3}$'",
            "type": "string_pattern_mismatch",
        },
        {"loc": ["body", "seats"], "msg": "Extra inputs are not permitted", "type": "extra_forbidden"},
    ]


def test_the_serve_arguments_serve_the_flight_delay_model(monkeypatch):
    from mlops_ops import cli, serving

    served = {}
    monkeypatch.setattr(serving, "serve", lambda config, **kwargs: served.update(config=config))
    assert cli.main(["serve", *SERVE_ARGUMENTS]) == 0
    config = served["config"]
    assert (config.model_name, config.request_schema, config.model_spec) == (
        "flight_delay",
        "include.flights.serving:FlightRequest",
        "include/flights/model_spec.yaml",
    )
