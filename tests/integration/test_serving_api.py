"""The prediction API end to end: real Feast online store on Redis, real MLflow registry, real models."""

from __future__ import annotations

import gc
import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from tests.integration.feature_support import (
    applied_store,
    connection_json,
    redis_online_store,
    require_redis,
    settings_for,
    unique_project,
)
from tests.serving_support import FLIGHT_REQUEST as REQUEST
from tests.trust_support import isolated_trust, record_alias, sign_version

pytestmark = pytest.mark.integration

MODEL = "flight_delay"
ONLINE_FEATURES = [
    "temp",
    "wind_speed",
    "seats",
    "plane_year",
    "carrier_delay_rate_7d",
    "route_delay_rate_7d",
]


def _log_and_register(client, experiment_id: str, model, inputs, tamper: bool = False) -> str:
    """Log ``model`` (skops) with its signature and register it, signed as RegisterOperator signs it; with
    ``tamper`` the signature covers another artifact's digest (the artifact was swapped after signing)."""
    from mlops_dev.logged_models import log_binary_classifier

    version = log_binary_classifier(model, inputs, experiment_id, MODEL).version
    sign_version(client, MODEL, version, digest="sha256:" + "0" * 64 if tamper else None)
    return version


def _move_champion(registry, version: str) -> None:
    """Move ``champion`` as PromoteOperator does: a signed alias-log record, then the registry alias."""
    record_alias(MODEL, "champion", version)
    registry.set_registered_model_alias(MODEL, "champion", version)


@pytest.fixture(scope="module")
def stack(feature_root, tmp_path_factory):
    """Redis online store materialized up to February 2013, and an MLflow registry with flight_delay v1
    (schedule features only) and v2 (schedule + online features, trained on a point-in-time training set)."""
    require_redis()
    import mlflow
    import pandas as pd

    from include.flights import data, feature_sources
    from include.flights.features import prepare_features
    from mlops_ops.core import features
    from mlops_ops.core.modelspec import ModelSpec
    from mlops_ops.core.training import build_estimator, features_frame

    folder = tmp_path_factory.mktemp("serving")
    trust = pytest.MonkeyPatch()
    isolated_trust(trust, folder / "trust")
    settings = settings_for(folder, feature_root, redis_online_store(), project=unique_project())
    store = applied_store(settings)
    features.materialize(store, datetime(2013, 2, 1, tzinfo=UTC), timedelta(hours=6))

    uri = f"sqlite:///{folder}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = mlflow.MlflowClient(uri, uri)
    experiment = client.create_experiment("serving", artifact_location=(folder / "artifacts").as_uri())

    raw = feature_sources.with_route(data.flights(1).sample(3000, random_state=3))
    prepared = prepare_features(raw).assign(route=raw["route"].to_numpy())
    prepared = prepared[prepared["delayed"].notna()]
    joined, _ = features.historical_features(store, prepared, "flight_delay_features", "time_hour")
    base = ModelSpec(
        name=MODEL,
        target="delayed",
        categorical_features=("carrier", "origin", "dest"),
        numerical_features=("day_of_week", "dep_hour", "dep_minute_of_day", "arr_minute_of_day", "distance"),
    )
    rich = ModelSpec(
        name=MODEL,
        target="delayed",
        categorical_features=base.categorical_features,
        numerical_features=(*base.numerical_features, *ONLINE_FEATURES),
    )
    versions = {}
    for key, spec in (("schedule", base), ("online", rich)):
        inputs = features_frame(joined, spec)
        model = build_estimator(spec, {"max_iter": 20}, seed=0).fit(inputs, joined["delayed"].astype("int64"))
        versions[key] = _log_and_register(client, experiment, model, inputs)
        versions[f"{key}_inputs"] = inputs
        versions[f"{key}_model"] = model
    _move_champion(client, versions["schedule"])
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_CONN_MLFLOW_SERVING", json.dumps({"conn_type": "mlflow", "host": uri}))
        patch.setenv("AIRFLOW_CONN_FEAST_SERVING", connection_json(settings))
        yield {"client": client, "experiment": experiment, "versions": versions, "store": store, "pd": pd}
    store.teardown()
    trust.undo()


def _app(poll_seconds: float = 0.2, **settings):
    """The API on the test stack; ``settings`` are further :class:`ServingConfig` fields."""
    from mlops_ops.serving import create_app
    from tests.serving_support import flights_config

    defaults = {"mlflow_conn_id": "mlflow_serving", "feast_conn_id": "feast_serving"}
    return create_app(flights_config(model_name=MODEL, poll_seconds=poll_seconds, **(defaults | settings)))


def _wait_for_version(client, version: str, seconds: float = 20.0) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        health = client.get("/health").json()
        if health["model_version"] == version:
            return health
        time.sleep(0.1)
    raise AssertionError(f"the API did not switch to version {version}: {client.get('/health').json()}")


def test_predict_ready_health_and_reload_on_alias_move(stack):
    from fastapi.testclient import TestClient

    versions = stack["versions"]
    registry = stack["client"]
    with TestClient(_app()) as client:
        assert client.get("/ready").status_code == 200
        # What is loaded at start is kept out of the garbage collector's full passes (hundreds of ms each).
        assert gc.get_freeze_count() > 100_000
        first = client.post("/predict", json=REQUEST)
        assert first.status_code == 200, first.text
        body = first.json()
        assert body["model_version"] == versions["schedule"] and body["model_name"] == MODEL
        assert 0.0 < body["probability"] < 1.0 and body["prediction"] == int(body["probability"] >= 0.5)
        assert body["missing_features"] == []  # every online feature of a known flight was found in Redis

        # Requests keep flowing while the background check sees the alias move and swaps the model in.
        _move_champion(registry, versions["online"])
        with ThreadPoolExecutor(4) as pool:
            responses = list(pool.map(lambda _: client.post("/predict", json=REQUEST), range(120)))
        assert {response.status_code for response in responses} == {200}
        # Batched or not, one version gives one answer for the same flight.
        by_version: dict[str, set[float]] = {}
        for response in responses:
            by_version.setdefault(response.json()["model_version"], set()).add(response.json()["probability"])
        assert all(len(probabilities) == 1 for probabilities in by_version.values()), by_version
        _wait_for_version(client, versions["online"])
        second = client.post("/predict", json=REQUEST).json()
        assert second["model_version"] == versions["online"]

        # The served probability is the model's on the request fields + the Redis features, computed here.
        expected_row = _expected_row(stack)
        expected = stack["versions"]["online_model"].predict_proba(expected_row)[0, 1]
        # Served by the model's trees compiled at load: the same probability to the last bit.
        assert client.get("/health").json()["scorer"] == "compiled trees"
        assert second["probability"] == expected

        # A version whose artifact does not match its recorded sha256 is never served.
        tampered = _log_and_register(
            registry, stack["experiment"], versions["online_model"], versions["online_inputs"], tamper=True
        )
        _move_champion(registry, tampered)
        deadline = time.monotonic() + 20
        while "ModelIntegrityError" not in str(client.get("/health").json()["last_error"]):
            assert time.monotonic() < deadline, client.get("/health").json()
            time.sleep(0.1)
        assert client.post("/predict", json=REQUEST).json()["model_version"] == versions["online"]
        _move_champion(registry, versions["schedule"])


def _expected_row(stack):
    """The model input computed independently: prepare_features on the raw row + Feast online values."""
    pd = stack["pd"]
    from include.flights.features import prepare_features
    from mlops_ops.core import features

    raw = pd.DataFrame(
        [
            {
                "year": 2013,
                "month": 2,
                "day": 1,
                "sched_dep_time": 515,
                "sched_arr_time": 819,
                "distance": 1400.0,
                "carrier": "UA",
                "origin": "EWR",
                "dest": "IAH",
                "tailnum": "N14228",
                "flight": 1545,
                "time_hour": pd.Timestamp("2013-02-01 05:00", tz="UTC"),
            }
        ]
    )
    row = prepare_features(raw)
    online = features.online_features(
        stack["store"],
        "flight_delay_features",
        [{"origin": "EWR", "tailnum": "N14228", "carrier": "UA", "route": "EWR-IAH"}],
    )
    for name in ONLINE_FEATURES:
        row[name] = float(online[name][0])
    columns = list(stack["versions"]["online_inputs"].columns)
    return row[columns].astype(
        {name: "float64" for name in columns if name not in ("carrier", "origin", "dest")}
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"origin": None}, "origin"),
        ({"origin": "ewr1"}, "origin"),
        ({"sched_arr_time": 2400}, "sched_arr_time"),
        ({"distance": -5}, "distance"),
        ({"distance": 0.5}, "distance"),  # the flights spec's bounds: distance [1, 10000]
        ({"flight": 100_000}, "flight"),
        ({"scheduled_departure": "yesterday"}, "scheduled_departure"),
        ({"seats": 3}, "seats"),  # unknown fields are refused, not ignored
    ],
)
def test_invalid_requests_get_422_naming_the_field(stack, change, field):
    from fastapi.testclient import TestClient

    request = {key: value for key, value in (REQUEST | change).items() if value is not None}
    with TestClient(_app(poll_seconds=60)) as client:
        response = client.post("/predict", json=request)
    assert response.status_code == 422
    assert [error["loc"][-1] for error in response.json()["detail"]] == [field]


def test_not_ready_without_a_champion(stack, monkeypatch):
    from fastapi.testclient import TestClient

    from mlops_ops.serving import create_app
    from tests.serving_support import flights_config

    app = create_app(
        flights_config(
            model_name="no_such_model", mlflow_conn_id="mlflow_serving", feast_conn_id="feast_serving"
        )
    )
    with TestClient(app) as client:
        ready = client.get("/ready")
        assert ready.status_code == 503 and "no_such_model" in ready.json()["reason"]
        assert client.get("/health").status_code == 200
        assert client.post("/predict", json=REQUEST).status_code == 503


# --- the API's boundary: token, body limit, what a refusal may say --------------------------------------------

TOKEN = "serving-test-token-7f3a9c1e5b"


def test_a_configured_token_guards_predict_and_health_stays_open(stack, caplog):
    from fastapi.testclient import TestClient

    with TestClient(_app(poll_seconds=60, token=TOKEN)) as client:
        missing = client.post("/predict", json=REQUEST)
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == 'Bearer realm="mlops-ops"'
        wrong = client.post("/predict", json=REQUEST, headers={"Authorization": f"Bearer {TOKEN}x"})
        assert wrong.status_code == 401 and 'error="invalid_token"' in wrong.headers["www-authenticate"]
        assert client.post("/predict", json=REQUEST, headers={"Authorization": TOKEN}).status_code == 401
        # Refused before the body is read: an anonymous caller learns nothing from validation or size.
        assert client.post("/predict", content=b"x" * 200_000).status_code == 401
        assert client.post("/predict", json=REQUEST | {"distance": "NaN"}).status_code == 401

        answered = client.post("/predict", json=REQUEST, headers={"Authorization": f"bearer {TOKEN}"})
        assert answered.status_code == 200, answered.text
        assert answered.json()["model_version"] == stack["versions"]["schedule"]

        health, ready = client.get("/health"), client.get("/ready")
        assert health.status_code == 200 and ready.status_code == 200
        assert TOKEN not in health.text + ready.text
        openapi = client.get("/openapi.json")
        assert openapi.status_code == 200 and TOKEN not in openapi.text
    assert TOKEN not in caplog.text


def test_a_body_over_the_limit_gets_413_before_it_is_parsed(stack):
    from fastapi.testclient import TestClient

    limit = 1024
    body = json.dumps(REQUEST)
    with TestClient(_app(poll_seconds=60, max_body_bytes=limit)) as client:
        # The limit itself is accepted (JSON allows the padding).
        at_limit = client.post(
            "/predict", content=body + " " * (limit - len(body)), headers={"content-type": "application/json"}
        )
        assert at_limit.status_code == 200, at_limit.text
        over = client.post(
            "/predict",
            content=body + " " * (limit + 1 - len(body)),
            headers={"content-type": "application/json"},
        )
        assert over.status_code == 413 and over.json() == {"detail": "request body larger than 1024 bytes"}

        def chunks():  # no Content-Length: sent chunked, counted as it arrives
            yield body.encode()
            for _ in range(100):
                yield b" " * 512

        chunked = client.post("/predict", content=chunks(), headers={"content-type": "application/json"})
        assert "content-length" not in chunked.request.headers
        assert chunked.status_code == 413 and "1024" in chunked.json()["detail"]
        # The default is 64 KiB: a 100 kB request is refused by the default app as well.
    with TestClient(_app(poll_seconds=60)) as client:
        assert client.post("/predict", json=REQUEST | {"tailnum": "N" * 100_000}).status_code == 413


@pytest.mark.parametrize(
    ("field", "literal"),
    [
        ("distance", "NaN"),
        ("distance", "Infinity"),
        ("distance", "-Infinity"),
        ("distance", "1e999"),  # overflows to infinity in Python's JSON parser
        ("sched_arr_time", "NaN"),
        ("flight", "-Infinity"),
        ("distance", '"nan"'),  # a string a float field would otherwise parse
    ],
)
def test_nan_and_infinity_get_422_naming_the_field(stack, field, literal):
    from fastapi.testclient import TestClient

    body = json.dumps(REQUEST | {field: "PLACEHOLDER"}).replace('"PLACEHOLDER"', literal)
    with TestClient(_app(poll_seconds=60)) as client:
        response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert [(error["loc"], error["type"]) for error in response.json()["detail"]] == [
        (["body", field], "finite_number")
    ]


SECRET = "hunter2-" + "s" * 10_000


@pytest.mark.parametrize(
    ("content", "content_type", "location"),
    [
        (json.dumps(REQUEST | {"carrier": SECRET}), "application/json", ["body", "carrier"]),
        (json.dumps(REQUEST | {"tailnum": SECRET}), "application/json", ["body", "tailnum"]),
        (
            json.dumps(REQUEST | {"scheduled_departure": SECRET}),
            "application/json",
            ["body", "scheduled_departure"],
        ),
        (json.dumps(REQUEST | {"distance": SECRET}), "application/json", ["body", "distance"]),
        (json.dumps(REQUEST | {"sched_arr_time": [SECRET]}), "application/json", ["body", "sched_arr_time"]),
        # An unknown field whose name is no field name is described by its length, not quoted.
        (
            json.dumps(REQUEST | {SECRET: 1}),
            "application/json",
            ["body", f"<name of {len(SECRET)} characters>"],
        ),
        ('{"carrier": "' + SECRET, "application/json", None),  # broken JSON
        (SECRET, "text/plain", ["body"]),
    ],
)
def test_a_422_never_quotes_what_was_sent(stack, content, content_type, location):
    from fastapi.testclient import TestClient

    with TestClient(_app(poll_seconds=60)) as client:
        response = client.post("/predict", content=content, headers={"content-type": content_type})
    assert response.status_code == 422, response.text[:500]
    assert "hunter2" not in response.text and "ssssssssss" not in response.text
    assert len(response.content) < 1000
    errors = response.json()["detail"]
    assert all(set(error) == {"loc", "msg", "type"} for error in errors)
    if location:
        assert [error["loc"] for error in errors] == [location]


def test_value_ranges_come_from_the_model_spec(stack, tmp_path):
    import yaml
    from fastapi.testclient import TestClient

    from tests.integration.feature_support import PROJECT_ROOT

    spec = yaml.safe_load((PROJECT_ROOT / "include/flights/model_spec.yaml").read_text())
    spec["bounds"]["distance"] = [100, 2000]
    narrow = tmp_path / "model_spec.yaml"
    narrow.write_text(yaml.safe_dump(spec))
    far = REQUEST | {"distance": 2500}
    with TestClient(_app(poll_seconds=60, model_spec=str(narrow))) as client:
        refused = client.post("/predict", json=far)
        assert refused.status_code == 422
        assert refused.json()["detail"] == [
            {
                "loc": ["body", "distance"],
                "msg": "Input should be less than or equal to 2000",
                "type": "less_than_equal",
            }
        ]
        assert client.post("/predict", json=REQUEST).status_code == 200
        schema = client.get("/openapi.json").json()["components"]["schemas"]["FlightRequest"]
        assert (schema["properties"]["distance"]["minimum"], schema["properties"]["distance"]["maximum"]) == (
            100,
            2000,
        )
    with TestClient(_app(poll_seconds=60)) as client:  # the project's spec: [1, 10000]
        assert client.post("/predict", json=far).status_code == 200


def test_credentials_of_a_failing_tracking_server_never_show(stack, monkeypatch, caplog):
    """MLflow's client quotes the tracking URI, user info included, when the server cannot be reached."""
    import socket

    from fastapi.testclient import TestClient

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    uri = f"http://alice:hunter2-mlflow@127.0.0.1:{port}"
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_LEAKY", json.dumps({"conn_type": "mlflow", "host": uri}))
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with TestClient(_app(poll_seconds=60, mlflow_conn_id="mlflow_leaky")) as client:
        health, ready = client.get("/health"), client.get("/ready")
        answered = client.post("/predict", json=REQUEST)
    assert ready.status_code == 503 and answered.status_code == 503
    # The error is shown, with the server named but its credentials masked.
    assert f"http://***@127.0.0.1:{port}" in health.json()["last_error"]
    assert f"http://***@127.0.0.1:{port}" in ready.json()["reason"]
    for text in (health.text, ready.text, answered.text, caplog.text):
        assert "hunter2" not in text and "alice" not in text
    assert "***@127.0.0.1" in caplog.text  # the reload error was logged, masked


def test_with_a_token_an_anonymous_health_check_shows_only_the_kind_of_error(stack, monkeypatch):
    from fastapi.testclient import TestClient

    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_ELSEWHERE", json.dumps({"conn_type": "mlflow", "host": "http://127.0.0.1:9"})
    )
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with TestClient(_app(poll_seconds=60, mlflow_conn_id="mlflow_elsewhere", token=TOKEN)) as client:
        anonymous = client.get("/health").json()["last_error"]
        detailed = client.get("/health", headers={"Authorization": f"Bearer {TOKEN}"}).json()["last_error"]
        reason = client.get("/ready").json()["reason"]
    assert anonymous == reason and "127.0.0.1" not in anonymous and ":" not in anonymous
    assert detailed.startswith(anonymous + ": ") and "127.0.0.1:9" in detailed
