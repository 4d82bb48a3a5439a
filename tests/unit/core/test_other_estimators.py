"""Other libraries' scikit-learn wrappers (LightGBM, XGBoost) through training, the trust rules' loader and
scoring, for each task: a team names the estimator in its spec and extends the trusted types in the deployment's
configuration (``allowed_globals``), never in the artifact."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops_ops.core import training
from mlops_ops.core.errors import ModelIntegrityError
from mlops_ops.core.modelspec import ModelSpec

pytest.importorskip("lightgbm", reason="the dev group installs lightgbm (uv sync)")
pytest.importorskip("xgboost", reason="the dev group installs xgboost-cpu (uv sync)")

CASES = [
    pytest.param(
        "lightgbm.LGBMClassifier",
        "binary",
        "paid",
        {"n_estimators": 30, "verbose": -1},
        ["lightgbm.*", "lightgbm.basic.Booster"],
        "lightgbm.basic.Booster",
        id="lightgbm-binary",
    ),
    pytest.param(
        "xgboost.XGBClassifier",
        "multiclass",
        "segment",
        {"n_estimators": 30, "max_depth": 3},
        ["xgboost.*", "xgboost.core.Booster"],
        "xgboost.core.Booster",
        id="xgboost-multiclass",
    ),
    pytest.param(
        "xgboost.XGBRegressor",
        "regression",
        "spend",
        {"n_estimators": 30, "max_depth": 3},
        ["xgboost.*", "xgboost.core.Booster"],
        "xgboost.core.Booster",
        id="xgboost-regression",
    ),
]


def _customers(rows: int = 600) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    frame = pd.DataFrame(
        {
            "visits": rng.poisson(5, rows).astype(float),
            "basket": rng.gamma(2.0, 20.0, rows),
            "channel": rng.choice(["web", "store", "app"], rows),
        }
    )
    frame["paid"] = (frame["basket"] + rng.normal(0, 10, rows) > 40).astype(int)
    frame["segment"] = np.where(
        frame["basket"] > 50, "premium", np.where(frame["visits"] > 5, "loyal", "casual")
    )
    frame["spend"] = 3 * frame["basket"] + 2 * frame["visits"] + rng.normal(0, 5, rows)
    return frame


def _spec(estimator: str, task: str, target: str, params: dict) -> ModelSpec:
    return ModelSpec.from_dict(
        {
            "name": "customers",
            "task": task,
            "target": target,
            "estimator": estimator,
            "params": params,
            "categorical_features": ["channel"],
            "numerical_features": ["visits", "basket"],
        }
    )


@pytest.fixture(scope="module")
def keys():
    from mlops_ops.core.signing import SigningKey, VerificationKeys

    key = SigningKey.generate()
    return key, VerificationKeys.from_texts([key.public_text])


def _signed(folder, key):
    from mlops_ops.core import storage
    from mlops_ops.core.model_artifacts import PinnedModel, Registration

    registration = Registration(
        model_name="customers",
        version="1",
        artifact_sha256=storage.directory_sha256(folder),
        run_id="run",
        data_version="sha256:data",
        gate_passed=True,
    )
    return PinnedModel("customers", "1", "champion", "run", folder.as_uri(), "", registration.sign(key))


@pytest.mark.parametrize(("estimator", "task", "target", "params", "allowed", "booster"), CASES)
def test_another_librarys_estimator_trains_loads_under_the_deployments_rules_and_scores(
    tmp_path, keys, estimator, task, target, params, allowed, booster
):
    from mlops_ops.core.model_artifacts import TrustPolicy, load_trusted
    from mlops_ops.core.pickle_allowlist import GlobalsAllowList
    from tests.trust_support import save_sklearn_model

    spec = _spec(estimator, task, target, params)
    rows = _customers()
    data = training.split(rows, spec)
    model = training.fit(spec, data.train, params=spec.params, seed=0)
    metrics = training.evaluate(model, data.evaluation, spec)
    headline = {"binary": "roc_auc", "multiclass": "f1_macro", "regression": "r2"}[task]
    assert metrics[headline] > 0.7, metrics

    folder = tmp_path / "model"
    save_sklearn_model(folder, model)  # a skops file, as TrainOperator logs a scikit-learn pipeline
    pinned = _signed(folder, keys[0])
    with pytest.raises(ModelIntegrityError, match=booster.replace(".", r"\.")):
        load_trusted(folder, pinned, TrustPolicy(verification_keys=keys[1]))

    policy = TrustPolicy(verification_keys=keys[1], allow_list=GlobalsAllowList.from_config(allowed))
    loaded = load_trusted(folder, pinned, policy).model
    inputs = training.features_frame(data.evaluation, spec)
    expected = training.predict(model, inputs, spec).columns()
    for column, values in training.predict(loaded, inputs, spec).columns().items():
        assert np.array_equal(values, expected[column]), column


def test_a_multiclass_model_of_another_library_answers_in_the_teams_classes():
    spec = _spec("xgboost.XGBClassifier", "multiclass", "segment", {"n_estimators": 10})
    rows = _customers()
    model = training.fit(spec, rows, params=spec.params, seed=0)
    assert list(model.classes_) == ["casual", "loyal", "premium"]
    predicted = model.predict(training.features_frame(rows, spec))
    assert set(predicted) <= {"casual", "loyal", "premium"}


def test_a_classifier_of_another_library_under_a_regression_spec_is_refused():
    from mlops_ops.core.tasks import TaskMismatchError

    spec = _spec("lightgbm.LGBMClassifier", "regression", "spend", {"verbose": -1})
    with pytest.raises(TaskMismatchError, match="LGBMClassifier is a classifier"):
        training.fit(spec, _customers(), params=spec.params, seed=0)
