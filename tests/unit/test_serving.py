"""The prediction API's model thread limit, without a feature store (the API end to end is in integration)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest

from mlops_ops.serving import PredictionRequest, Predictor
from tests.unit.synthetic import serving_config

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _predictor(model_threads: int) -> Predictor:
    # Only the thread limit is under test: no prepare function, no store, no model.
    predictor = Predictor.__new__(Predictor)
    predictor.config = serving_config(model_threads=model_threads)
    predictor._thread_limit = None
    return predictor


def _openmp_threads_in_a_new_thread(predictor: Predictor) -> list[int]:
    """OpenMP's thread counts as seen inside the limit, from a worker thread (where batches are scored)."""
    from threadpoolctl import threadpool_info

    seen: list[int] = []

    def work() -> None:
        with predictor._model_threads():
            seen.extend(info["num_threads"] for info in threadpool_info() if info["user_api"] == "openmp")

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    return seen


def test_a_predict_in_a_worker_thread_uses_one_openmp_thread():
    """Run in a fresh interpreter without the suite's OMP_NUM_THREADS=1, so the default (every core) shows."""
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one core: OpenMP's default is one thread already")
    script = (
        "import json, sklearn.ensemble\n"
        "from tests.unit.test_serving import _openmp_threads_in_a_new_thread, _predictor\n"
        "print(json.dumps([_openmp_threads_in_a_new_thread(_predictor(n)) for n in (0, 1)]))\n"
    )
    environment = {key: value for key, value in os.environ.items() if key != "OMP_NUM_THREADS"}
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=environment, cwd=PROJECT_ROOT
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    unlimited, limited = json.loads(completed.stdout.strip().splitlines()[-1])
    if not unlimited:
        pytest.skip("no OpenMP runtime loaded by scikit-learn here")
    assert set(limited) == {1}
    assert max(unlimited) > 1  # what the limit prevents: a worker thread otherwise gets every core


def _toy_model():
    """The reference pipeline (ordinal encoder + gradient boosting) on a few synthetic flights."""
    import numpy as np
    import pandas as pd

    from mlops_ops.core.model_artifacts import ModelInput
    from mlops_ops.core.modelspec import ModelSpec
    from mlops_ops.core.training import build_estimator, features_frame

    random = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "carrier": random.choice(["UA", "AA", "B6", None], 800),
            "temp": random.normal(50, 10, 800),
            "seats": random.choice([np.nan, 50.0, 150.0, 300.0], 800),
        }
    )
    frame["delayed"] = ((frame["temp"] > 55) ^ (frame["carrier"] == "B6")).astype(int)
    spec = ModelSpec(
        name="toy", target="delayed", categorical_features=("carrier",), numerical_features=("temp", "seats")
    )
    inputs = features_frame(frame, spec)
    model = build_estimator(spec, {"max_iter": 30}, seed=0).fit(inputs, frame["delayed"])
    signature = [
        ModelInput("carrier", "string", False),
        ModelInput("temp", "double"),
        ModelInput("seats", "double"),
    ]
    return model, signature, frame


def test_a_model_is_compiled_unless_switched_off_or_not_the_reference_pipeline():
    from sklearn.dummy import DummyClassifier

    from mlops_ops.serving import ModelSlot

    model, signature, _ = _toy_model()
    compiled, scorer = ModelSlot(serving_config())._compile(model, signature)
    assert compiled is not None and scorer == "compiled trees"
    assert ModelSlot(serving_config(compile_trees=False))._compile(model, signature) == (
        None,
        "predict_proba (compile_trees is off)",
    )
    compiled, scorer = ModelSlot(serving_config())._compile(DummyClassifier(), signature)
    assert compiled is None and scorer.startswith("predict_proba (not compiled: not a two-step")


def test_compiled_and_own_predict_proba_answer_the_same_requests_identically():
    import pandas as pd

    from mlops_ops.core.model_artifacts import PinnedModel
    from mlops_ops.serving import LoadedModel, ModelSlot

    model, signature, frame = _toy_model()
    compiled, _ = ModelSlot(serving_config())._compile(model, signature)
    pinned = PinnedModel("toy", "3", "champion", None, "", "")
    predictor = _predictor(model_threads=1)
    predictor.feature_names = ["temp", "seats"]
    requests = frame.head(40).drop(columns="delayed").astype({"carrier": object})
    # Prepared request fields arrive as pandas Series, online values as Python objects (None for a missing one).
    seats = [None if pd.isna(value) else value for value in requests["seats"]]
    predictor.features = lambda batch: {
        "carrier": requests["carrier"].iloc[batch],
        "temp": requests["temp"].iloc[batch],
        "seats": [seats[index] for index in batch],
    }
    batch = list(range(40))
    answers = {
        label: predictor.score(batch, LoadedModel(pinned, model, signature, 0.0, compiled=with_compiled))
        for label, with_compiled in (("compiled", compiled), ("own", None))
    }
    assert [a.probability for a in answers["compiled"]] == [a.probability for a in answers["own"]]
    assert [a.missing_features for a in answers["compiled"]] == [
        ["seats"] if pd.isna(value) else [] for value in requests["seats"]
    ]
    assert any(a.missing_features for a in answers["compiled"])


def test_a_replaced_model_is_freed_without_the_garbage_collector():
    """The API freezes long-lived objects out of the collector's passes, so a model it swaps out must be freed by
    reference counting alone (no reference cycles), or every alias move would leak a model."""
    import gc
    import weakref

    from mlops_ops.serving import ModelSlot

    model, signature, _ = _toy_model()
    compiled, _ = ModelSlot(serving_config())._compile(model, signature)
    references = [weakref.ref(model), weakref.ref(model[-1]), weakref.ref(compiled)]
    gc.disable()
    try:
        del model, compiled
        assert [reference() for reference in references] == [None, None, None]
    finally:
        gc.enable()


class TeamRequest(PredictionRequest):
    """A second team's request: two numbers, no feature store, no prepare function."""

    rooms: int
    area: float


def test_a_model_without_a_feature_store_is_scored_from_the_request_alone():
    """No feature service: nothing is opened, the request's fields are the model's columns, no feature missing."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from mlops_ops.core.model_artifacts import ModelInput, PinnedModel
    from mlops_ops.serving import LoadedModel, ServingConfig

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"rooms": rng.integers(1, 6, 200), "area": rng.uniform(20, 200, 200)})
    model = LogisticRegression().fit(frame, (frame["area"] > 100).astype(int))
    predictor = Predictor(
        ServingConfig(model_name="houses", request_schema="tests.unit.test_serving:TeamRequest")
    )
    assert predictor.store is None and predictor.feature_names == []
    loaded = LoadedModel(
        pinned=PinnedModel("houses", "3", "champion", "run", "source", "", ""),
        model=model,
        inputs=[ModelInput("rooms", "long"), ModelInput("area", "double")],
        loaded_at=0.0,
    )
    requests = [TeamRequest(rooms=2, area=40.0), TeamRequest(rooms=5, area=180.0)]
    predictions = predictor.score(requests, loaded)
    expected = model.predict_proba(pd.DataFrame({"rooms": [2, 5], "area": [40.0, 180.0]}))[:, 1]
    assert [p.probability for p in predictions] == pytest.approx(list(expected))
    assert [p.prediction for p in predictions] == [0, 1]
    assert {(p.model_name, p.model_version, tuple(p.missing_features)) for p in predictions} == {
        ("houses", "3", ())
    }


def test_the_default_entity_row_is_the_fields_named_as_entity_keys():
    class Keyed(PredictionRequest):
        entity_keys = ("store_id",)
        store_id: str
        basket: float

    request = Keyed(store_id="s1", basket=3.5)
    assert request.entity_row() == {"store_id": "s1"}
    assert request.raw_row() == {"store_id": "s1", "basket": 3.5}


def test_a_server_started_before_its_feature_store_is_ready_becomes_ready_without_a_restart(
    monkeypatch, caplog
):
    """The feature repository is applied after the API started: each poll retries opening it (logged once per
    reason); requests are refused with 503 until it opens, and the reason is shown meanwhile."""
    from fastapi.testclient import TestClient

    from mlops_ops import serving

    opened = []

    class NotAppliedYet(Exception):
        pass

    class FlakyPredictor:
        def __init__(self, config):
            if len(opened) < 2:
                opened.append("refused")
                raise NotAppliedYet("Feature service houses_features does not exist")
            opened.append("open")

    monkeypatch.setattr(serving, "Predictor", FlakyPredictor)
    app = serving.create_app(
        serving.ServingConfig(model_name="houses", request_schema="tests.unit.test_serving:TeamRequest"),
        start_polling=False,
    )
    client = TestClient(app)  # no lifespan: the test runs the poll's steps itself
    with caplog.at_level("INFO", logger="mlops_ops.serving"):
        assert app.state.ensure_predictor() is False and app.state.ensure_predictor() is False
        ready = client.get("/ready")
        assert ready.status_code == 503 and "houses_features does not exist" in ready.json()["reason"]
        assert client.post("/predict", json={"rooms": 2, "area": 40.0}).status_code == 503
        assert app.state.ensure_predictor() is True and app.state.ensure_predictor() is True
    assert opened == ["refused", "refused", "open"]  # opened once, then kept
    retried = [record for record in caplog.records if "retrying" in record.getMessage()]
    assert len(retried) == 1  # the same reason twice is logged once
    assert any("requests can be prepared now" in record.getMessage() for record in caplog.records)
    # Now only the model is missing (no registry here): the feature store's error is gone.
    assert client.get("/ready").json()["reason"] == "no model loaded yet"
