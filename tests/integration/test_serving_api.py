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
REQUEST = {
    "carrier": "UA",
    "origin": "EWR",
    "dest": "IAH",
    "tailnum": "N14228",
    "flight": 1545,
    "scheduled_departure": "2013-02-01T05:15:00",
    "sched_arr_time": 819,
    "distance": 1400,
}


def _log_and_register(client, experiment_id: str, model, inputs, tamper: bool = False) -> str:
    """Log ``model`` with its signature, record its artifact sha256 as TrainOperator does, register it."""
    import tempfile

    import mlflow
    from mlflow.models import infer_signature

    from mlops_ops.core import lineage, storage

    with mlflow.start_run(experiment_id=experiment_id) as run:
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(inputs, model.predict_proba(inputs)[:, 1]),
            serialization_format="cloudpickle",
            pip_requirements=["scikit-learn"],
        )
    with tempfile.TemporaryDirectory() as folder:
        digest = storage.directory_sha256(
            mlflow.artifacts.download_artifacts(info.model_uri, dst_path=folder)
        )
    if tamper:
        digest = "sha256:" + "0" * 64
    version = mlflow.register_model(info.model_uri, MODEL, tags={lineage.ARTIFACT_SHA256: digest})
    assert run.info.run_id
    return str(version.version)


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
    client.set_registered_model_alias(MODEL, "champion", versions["schedule"])
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_CONN_MLFLOW_SERVING", json.dumps({"conn_type": "mlflow", "host": uri}))
        patch.setenv("AIRFLOW_CONN_FEAST_SERVING", connection_json(settings))
        yield {"client": client, "experiment": experiment, "versions": versions, "store": store, "pd": pd}
    store.teardown()


def _app(poll_seconds: float = 0.2):
    from mlops_ops.serving import ServingConfig, create_app

    return create_app(
        ServingConfig(
            model_name=MODEL,
            poll_seconds=poll_seconds,
            mlflow_conn_id="mlflow_serving",
            feast_conn_id="feast_serving",
        )
    )


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
        registry.set_registered_model_alias(MODEL, "champion", versions["online"])
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
        registry.set_registered_model_alias(MODEL, "champion", tampered)
        deadline = time.monotonic() + 20
        while "ModelIntegrityError" not in str(client.get("/health").json()["last_error"]):
            assert time.monotonic() < deadline, client.get("/health").json()
            time.sleep(0.1)
        assert client.post("/predict", json=REQUEST).json()["model_version"] == versions["online"]
        registry.set_registered_model_alias(MODEL, "champion", versions["schedule"])


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

    from mlops_ops.serving import ServingConfig, create_app

    app = create_app(
        ServingConfig(
            model_name="no_such_model", mlflow_conn_id="mlflow_serving", feast_conn_id="feast_serving"
        )
    )
    with TestClient(app) as client:
        ready = client.get("/ready")
        assert ready.status_code == 503 and "no_such_model" in ready.json()["reason"]
        assert client.get("/health").status_code == 200
        assert client.post("/predict", json=REQUEST).status_code == 503
