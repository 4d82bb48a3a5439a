"""The prediction API for any registered model: answers in the shape of the model's task, a request schema built
from the model's signature, and the versions a running API refuses to swap in.

The registry is faked at the trust hook's methods (``TrustHook.pin`` and ``TrustHook.load``): ``load`` writes the
MLflow signature of the version into the download folder, as the real download does, and hands back the model.
Everything else (the app, its lifespan, the batch scorer, the compiled trees) runs for real.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from mlops_ops.core.model_artifacts import PinnedModel
from mlops_ops.core.modelspec import ModelSpec
from mlops_ops.core.training import build_estimator, features_frame
from mlops_ops.hooks.trust import TrustHook
from mlops_ops.serving import (
    ModelNotLoaded,
    PredictionRequest,
    ServingConfig,
    checked_request_model,
    create_app,
)
from mlops_ops.serving_guard import MAX_TEXT_CHARACTERS

CLASSES = ["high", "low", "mid"]


def _frame(rows: int, seed: int) -> pd.DataFrame:
    """Rows of a second team's shop: a category with missing values, numbers with missing values, an integer
    count and a yes/no flag."""
    random = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "colour": random.choice(["red", "green", "blue", None], rows),
            "width": random.normal(10, 3, rows),
            "rooms": random.integers(1, 6, rows),
            "renovated": random.random(rows) < 0.4,
        }
    )
    frame.loc[random.random(rows) < 0.1, "width"] = np.nan
    score = (
        frame["width"].fillna(10) / 3 + frame["rooms"] - (frame["colour"] == "red") * 2 + frame["renovated"]
    )
    frame["band"] = np.select([score < 4, score < 6], ["low", "mid"], "high")
    frame["price"] = score * 10 + random.normal(0, 1, rows)
    return frame


def _spec(task: str, **fields: Any) -> ModelSpec:
    return ModelSpec(
        name="shop",
        target="band" if task == "multiclass" else "price",
        task=task,  # type: ignore[arg-type]
        categorical_features=("colour",),
        numerical_features=("width", "rooms", "renovated"),
        **fields,
    )


def _trained(task: str, seed: int = 0, max_iter: int = 25) -> tuple[Any, pd.DataFrame]:
    """A model of ``task`` of the reference pipeline, and the frame (with the integer and boolean columns as the
    team holds them) its signature is inferred from."""
    frame = _frame(1500, seed)
    spec = _spec(task)
    inputs = features_frame(frame, spec)
    model = build_estimator(spec, {"max_iter": max_iter}, seed=0).fit(inputs, frame[spec.target])
    return model, frame[list(spec.features)]


class FakeRegistry:
    """The alias and the versions behind it, as the trust hook's ``pin`` and ``load`` see them."""

    def __init__(self) -> None:
        self.versions: dict[str, tuple[Any, pd.DataFrame]] = {}
        self.champion: str | None = None
        self.loads: list[str] = []

    def add(self, version: str, model: Any, signature_frame: pd.DataFrame) -> None:
        self.versions[version] = (model, signature_frame)
        self.champion = version

    def pin(self, hook: Any, model_name: str, alias: str | None = None, version: str | None = None):
        assert self.champion is not None
        return PinnedModel(model_name, self.champion, alias, "run", "source", "")

    def load(self, hook: Any, pinned: PinnedModel, folder: str):
        from mlflow.models import Model, infer_signature

        self.loads.append(pinned.version)
        model, signature_frame = self.versions[pinned.version]
        with warnings.catch_warnings():  # MLflow's hint that integer columns cannot hold missing values
            warnings.simplefilter("ignore", UserWarning)
            signature = infer_signature(signature_frame)
        Model(signature=signature).save(os.path.join(folder, "MLmodel"))
        return SimpleNamespace(model=model), folder


@pytest.fixture
def registry(monkeypatch) -> FakeRegistry:
    fake = FakeRegistry()
    monkeypatch.setattr(TrustHook, "pin", lambda self, *args, **kwargs: fake.pin(*args, **kwargs))
    monkeypatch.setattr(TrustHook, "load", lambda self, *args, **kwargs: fake.load(*args, **kwargs))
    return fake


def _client(**settings: Any) -> TestClient:
    config = ServingConfig(**({"model_name": "shop"} | settings))
    return TestClient(create_app(config, start_polling=False))


def _row(frame: pd.DataFrame, index: int) -> dict[str, Any]:
    """One row as a client sends it: JSON values, ``null`` for a missing one."""
    row = frame.iloc[index]
    return {
        "colour": row["colour"],
        "width": None if pd.isna(row["width"]) else float(row["width"]),
        "rooms": int(row["rooms"]),
        "renovated": bool(row["renovated"]),
    }


def _as_trained(request: dict[str, Any], task: str) -> pd.DataFrame:
    return features_frame(pd.DataFrame([request]), _spec(task))


# --- answers in the shape of the task ----------------------------------------------------------------------


@pytest.mark.parametrize("compile_trees", [True, False])
def test_a_multiclass_model_answers_its_class_and_each_class_probability(registry, compile_trees):
    model, frame = _trained("multiclass")
    registry.add("1", model, frame)
    with _client(compile_trees=compile_trees) as client:
        health = client.get("/health").json()
        assert health["task"] == "multiclass"
        assert health["scorer"] == (
            "compiled trees" if compile_trees else "predict_proba (compile_trees is off)"
        )
        for index in range(12):
            request = _row(frame, index)
            response = client.post("/predict", json=request)
            assert response.status_code == 200, response.text
            body = response.json()
            expected = model.predict_proba(_as_trained(request, "multiclass"))[0]
            assert body == {
                "prediction": CLASSES[int(np.argmax(expected))],
                "probabilities": dict(zip(CLASSES, expected.tolist(), strict=True)),
                "model_name": "shop",
                "model_version": "1",
                "missing_features": [],
            }
            assert list(body["probabilities"]) == CLASSES  # the model's class order


@pytest.mark.parametrize("compile_trees", [True, False])
def test_a_regression_model_answers_its_predicted_value(registry, compile_trees):
    model, frame = _trained("regression")
    registry.add("4", model, frame)
    with _client(compile_trees=compile_trees) as client:
        assert client.get("/health").json()["task"] == "regression"
        assert client.get("/health").json()["scorer"] == (
            "compiled trees" if compile_trees else "predict (compile_trees is off)"
        )
        for index in range(12):
            request = _row(frame, index)
            body = client.post("/predict", json=request).json()
            expected = float(model.predict(_as_trained(request, "regression"))[0])
            assert body == {
                "prediction": expected,
                "model_name": "shop",
                "model_version": "4",
                "missing_features": [],
            }


def test_a_binary_model_answers_as_before(registry):
    frame = _frame(1500, 0)
    spec = ModelSpec(
        name="shop", target="big", categorical_features=("colour",), numerical_features=("width", "rooms")
    )
    frame["big"] = (frame["price"] > frame["price"].median()).astype(int)
    model = build_estimator(spec, {"max_iter": 20}, seed=0).fit(features_frame(frame, spec), frame["big"])
    registry.add("2", model, frame[list(spec.features)])
    with _client(threshold=0.3) as client:
        request = {key: value for key, value in _row(frame, 0).items() if key != "renovated"}
        body = client.post("/predict", json=request).json()
        probability = model.predict_proba(features_frame(pd.DataFrame([request]), spec))[0, 1]
        assert body == {
            "prediction": int(probability >= 0.3),
            "probability": probability,
            "model_name": "shop",
            "model_version": "2",
            "missing_features": [],
        }


def test_the_api_documents_the_answer_and_the_request_of_the_model(registry):
    model, frame = _trained("multiclass")
    registry.add("1", model, frame)
    with _client() as client:
        schema = client.get("/openapi.json").json()
    operation = schema["paths"]["/predict"]["post"]
    answer = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert answer == "MulticlassPrediction"
    assert set(schema["components"]["schemas"][answer]["properties"]) == {
        "prediction",
        "probabilities",
        "model_name",
        "model_version",
        "missing_features",
    }
    request = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert request == "ShopRequest"
    fields = schema["components"]["schemas"][request]
    assert fields["additionalProperties"] is False
    assert sorted(fields["required"]) == ["renovated", "rooms"]  # colour and width had missing values
    assert fields["properties"]["rooms"]["type"] == "integer"
    assert fields["properties"]["renovated"]["type"] == "boolean"
    colour = next(kind for kind in fields["properties"]["colour"]["anyOf"] if kind["type"] == "string")
    assert colour["maxLength"] == MAX_TEXT_CHARACTERS


# --- the request schema from the signature -----------------------------------------------------------------


def test_optional_columns_may_be_left_out_or_null(registry):
    model, frame = _trained("regression")
    registry.add("1", model, frame)
    with _client() as client:
        sparse = {"rooms": 3, "renovated": False}
        for request in (sparse, sparse | {"colour": None, "width": None}):
            body = client.post("/predict", json=request).json()
            expected = model.predict(_as_trained({"colour": None, "width": None} | sparse, "regression"))[0]
            assert body["prediction"] == float(expected)


SECRET = "hunter2-secret"


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({SECRET * 4: 1}, ("<name of 56 characters>", "extra_forbidden")),
        ({"seats": 3}, ("seats", "extra_forbidden")),
        ({"rooms": SECRET}, ("rooms", "int_type")),
        ({"rooms": "3"}, ("rooms", "int_type")),  # strict: text is no number
        ({"rooms": 2.5}, ("rooms", "int_type")),
        ({"width": SECRET}, ("width", "float_type")),
        ({"renovated": 1}, ("renovated", "bool_type")),
        ({"colour": 7}, ("colour", "string_type")),
        ({"colour": SECRET + "x" * MAX_TEXT_CHARACTERS}, ("colour", "string_too_long")),
        ({"rooms": None}, ("rooms", "int_type")),  # required
    ],
)
def test_a_request_the_signature_does_not_describe_is_refused_without_echoing_it(registry, change, error):
    model, frame = _trained("multiclass")
    registry.add("1", model, frame)
    with _client() as client:
        response = client.post("/predict", json=_row(frame, 0) | change)
    assert response.status_code == 422
    assert [(item["loc"][-1], item["type"]) for item in response.json()["detail"]] == [error]
    assert SECRET not in response.text and "hunter2" not in response.text


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_nan_and_infinity_are_refused(registry, literal):
    model, frame = _trained("regression")
    registry.add("1", model, frame)
    body = json.dumps(_row(frame, 1) | {"width": 1.5}).replace("1.5", literal)
    with _client() as client:
        response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {"loc": ["body", "width"], "msg": "Input should be a finite number", "type": "finite_number"}
    ]


def test_a_missing_required_column_is_named(registry):
    model, frame = _trained("regression")
    registry.add("1", model, frame)
    with _client() as client:
        response = client.post("/predict", json={"colour": "red"})
    assert sorted(item["loc"][-1] for item in response.json()["detail"]) == ["renovated", "rooms"]


def test_the_specs_bounds_apply_to_the_signatures_fields(registry, tmp_path):
    model, frame = _trained("regression")
    registry.add("1", model, frame)
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "name: shop\ntarget: price\ntask: regression\ncategorical_features: [colour]\n"
        "numerical_features: [width, rooms, renovated]\nbounds: {width: [0, 30], rooms: [1, null], area: [0, 1]}\n"
    )
    with _client(model_spec=str(spec)) as client:
        refused = client.post("/predict", json=_row(frame, 0) | {"width": 31.0, "rooms": 0})
        assert [(e["loc"][-1], e["type"]) for e in refused.json()["detail"]] == [
            ("width", "less_than_equal"),
            ("rooms", "greater_than_equal"),
        ]
        assert client.post("/predict", json=_row(frame, 0) | {"width": 30.0, "rooms": 1}).status_code == 200

    spec.write_text(spec.read_text().replace("area: [0, 1]", "colour: [0, 1]"))
    with pytest.raises(
        ValueError, match="spec.yaml: bounds.colour: the request field 'colour' is not a number"
    ):
        _client(model_spec=str(spec))


@pytest.mark.parametrize(
    ("settings", "spec_prepare", "message"),
    [
        ({"prepare": "tests.unit.test_serving_tasks:_frame"}, False, "--prepare names a prepare function"),
        ({}, True, "the model spec {spec} names a prepare function"),
        ({"feature_service": "shop_features"}, False, "the feature service 'shop_features' is read"),
    ],
)
def test_a_request_built_from_the_signature_is_refused_where_it_cannot_carry_what_the_model_needs(
    tmp_path, settings, spec_prepare, message
):
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "name: shop\ntarget: price\ncategorical_features: [colour]\nnumerical_features: [width]\n"
        + ("prepare: include.shop.features:prepare\n" if spec_prepare else "")
    )
    with pytest.raises(ValueError, match="no request schema was given") as refused:
        checked_request_model(ServingConfig(model_name="shop", model_spec=str(spec), **settings))
    assert message.format(spec=spec) in str(refused.value) and "--request-schema MODULE:CLASS" in str(
        refused.value
    )


def test_without_a_request_schema_the_api_cannot_start_before_a_model_loads(registry):
    with pytest.raises(ModelNotLoaded, match="did not load: AssertionError"):
        _client()  # nothing registered yet: the fake pin fails


# --- what the served task and schema refuse ----------------------------------------------------------------


class ShopRequest(PredictionRequest):
    """The shop's own request schema (any signature it can feed is served)."""

    colour: str | None = None
    width: float | None = None
    rooms: int
    renovated: bool


def test_a_model_of_another_task_than_the_spec_declares_never_becomes_ready(registry, tmp_path):
    model, frame = _trained("multiclass")
    registry.add("5", model, frame)
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "name: shop\ntarget: price\ntask: regression\ncategorical_features: [colour]\n"
        "numerical_features: [width, rooms, renovated]\n"
    )
    schema = "tests.unit.test_serving_tasks:ShopRequest"
    with _client(model_spec=str(spec), request_schema=schema) as client:
        ready = client.get("/ready")
        assert ready.status_code == 503
        reason = ready.json()["reason"]
        assert reason.startswith(
            "TaskMismatchError: the model spec declares task 'regression', but shop version 5"
        )
        assert "is a multiclass model" in reason
        assert client.post("/predict", json=_row(frame, 0)).status_code == 503
        client.app.state.slot.refresh()
        assert registry.loads == ["5"]  # refused once, not downloaded on every poll
    # Without a request schema, the API cannot start with it, and says why.
    with pytest.raises(
        ModelNotLoaded, match="declares task 'regression', but shop version 5 is a multiclass"
    ):
        _client(model_spec=str(spec))


def test_a_version_with_other_inputs_is_refused_and_the_old_one_served(registry, caplog):
    model, frame = _trained("regression")
    registry.add("1", model, frame)
    with _client() as client:
        request = _row(frame, 0)
        first = client.post("/predict", json=request).json()
        wider, wider_frame = _trained("regression", seed=1)
        registry.add("2", wider, wider_frame.assign(floor=1))  # a signature with one more column
        with caplog.at_level(logging.WARNING, logger="mlops_ops.serving"):
            for _ in range(3):
                assert client.app.state.slot.refresh() is False
        refusals = [
            record for record in caplog.records if "not serving shop version 2" in record.getMessage()
        ]
        assert len(refusals) == 1 and registry.loads == ["1", "2"]  # logged and downloaded once
        ready = client.get("/ready")
        assert ready.status_code == 200 and ready.json()["model_version"] == "1"
        assert ready.json()["reason"].startswith(
            "ModelSwapRefused: the signature of shop version 2 takes other inputs than the request schema"
        )
        assert "added 'floor'" in ready.json()["reason"] and "restart the API" in ready.json()["reason"]
        assert client.post("/predict", json=request).json() == first
        # The alias moving on to a version with the same inputs is served again.
        registry.add("3", wider, wider_frame)
        assert client.app.state.slot.refresh() is True
        assert client.get("/ready").json() == {"ready": True, "model_version": "3", "reason": None}
        assert client.post("/predict", json=request).json()["model_version"] == "3"


def test_a_version_of_another_task_is_refused_and_the_old_one_served(registry):
    model, frame = _trained("regression")
    registry.add("1", model, frame)
    schema = "tests.unit.test_serving_tasks:ShopRequest"
    with _client(request_schema=schema) as client:
        assert client.get("/health").json()["task"] == "regression"
        classifier, _ = _trained("multiclass")
        registry.add("2", classifier, frame)
        assert client.app.state.slot.refresh() is False
        ready = client.get("/ready").json()
        assert ready["model_version"] == "1"
        assert ready["reason"] == (
            "ModelSwapRefused: shop version 2 is a multiclass model, but this API answers regression predictions; "
            "restart the API to serve it (serving version 1)"
        )
        # The task was known only once a model loaded: the route documents all three answers, and gives this one.
        body = client.post("/predict", json=_row(frame, 0)).json()
        assert body == {
            "prediction": float(model.predict(_as_trained(_row(frame, 0), "regression"))[0]),
            "model_name": "shop",
            "model_version": "1",
            "missing_features": [],
        }
        answers = client.get("/openapi.json").json()["paths"]["/predict"]["post"]["responses"]["200"]
        assert len(answers["content"]["application/json"]["schema"]["anyOf"]) == 3


def test_serve_builds_the_request_from_the_signature_without_a_request_schema(monkeypatch):
    from mlops_ops import cli, serving

    served = {}
    monkeypatch.setattr(serving, "serve", lambda config, **kwargs: served.update(config=config))
    assert cli.main(["serve", "--model", "shop"]) == 0
    assert served["config"].request_schema is None
