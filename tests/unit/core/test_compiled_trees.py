"""The compiled trees predict bit-for-bit what the scikit-learn pipeline predicts, or refuse to compile."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops_ops.core import compiled_trees
from mlops_ops.core.compiled_trees import NotCompilable, compile_pipeline
from mlops_ops.core.modelspec import ModelSpec
from mlops_ops.core.training import build_estimator, features_frame

CATEGORICAL = ("colour", "size")
NUMERICAL = ("x", "y", "z")


def _rows(count: int, seed: int) -> pd.DataFrame:
    """Rows with what real ones hold: missing numbers, missing categories (``None``), a label tied to both."""
    random = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "colour": random.choice(["red", "green", "blue", "violet", None], count),
            "size": random.choice(["S", "M", "L"], count),
            "x": random.normal(size=count),
            "y": random.integers(0, 24, count).astype(float),
            "z": random.exponential(size=count),
        }
    )
    frame.loc[random.random(count) < 0.1, "x"] = np.nan
    frame.loc[random.random(count) < 0.05, "z"] = np.nan
    signal = (
        frame["x"].fillna(0) + (frame["colour"] == "red") * 1.5 - (frame["size"] == "L") + frame["y"] / 12
    )
    frame["label"] = (signal + random.normal(size=count) > 1).astype(int)
    return frame


def _spec(
    categorical=CATEGORICAL, numerical=NUMERICAL, estimator="sklearn.ensemble.HistGradientBoostingClassifier"
):
    return ModelSpec(
        name="toy",
        target="label",
        categorical_features=categorical,
        numerical_features=numerical,
        estimator=estimator,
    )


def _fitted(spec: ModelSpec, params: dict, train: pd.DataFrame):
    inputs = features_frame(train, spec)
    return build_estimator(spec, params, seed=0).fit(inputs, train["label"]), list(inputs.columns)


def _columns(frame: pd.DataFrame, names: list[str], spec: ModelSpec) -> dict[str, np.ndarray]:
    inputs = features_frame(frame, spec)
    return {name: inputs[name].to_numpy() for name in names}


@pytest.mark.parametrize(
    ("categorical", "params"),
    [
        (CATEGORICAL, {"max_iter": 60}),
        (CATEGORICAL, {"max_iter": 30, "max_leaf_nodes": 63, "max_depth": None}),
        ((), {"max_iter": 40}),  # no categorical column: no encoder at all
    ],
)
def test_compiled_predictions_equal_the_pipeline_bit_for_bit(categorical, params):
    spec = _spec(categorical=categorical)
    model, names = _fitted(spec, params, _rows(4000, seed=1))
    compiled = compile_pipeline(model, names)

    scored = _rows(3000, seed=2)
    if categorical:  # categories the model never saw count as missing, as in scikit-learn
        scored.loc[::7, "colour"] = "ultraviolet"
        scored.loc[::11, "size"] = "XXL"
    expected = model.predict_proba(features_frame(scored, spec))[:, 1]
    actual = compiled.predict_proba(_columns(scored, names, spec))
    assert actual.dtype == np.float64 and actual.shape == expected.shape
    assert np.array_equal(actual, expected)
    # One row at a time (what a single request sends) gives the same numbers.
    for index in range(0, 50):
        one = {name: values[index : index + 1] for name, values in _columns(scored, names, spec).items()}
        assert compiled.predict_proba(one)[0] == expected[index]


def test_no_rows_give_no_probabilities():
    spec = _spec()
    model, names = _fitted(spec, {"max_iter": 5}, _rows(500, seed=3))
    compiled = compile_pipeline(model, names)
    empty = {name: np.array([], dtype=object if name in CATEGORICAL else float) for name in names}
    assert compiled.predict_proba(empty).shape == (0,)


def test_other_estimators_and_other_inputs_are_refused_with_the_reason():
    train = _rows(1000, seed=4)
    forest, names = _fitted(
        _spec(estimator="sklearn.ensemble.RandomForestClassifier"), {"n_estimators": 3}, train
    )
    with pytest.raises(NotCompilable, match="RandomForestClassifier, not HistGradientBoostingClassifier"):
        compile_pipeline(forest, names)

    spec = _spec()
    model, names = _fitted(spec, {"max_iter": 5}, train)
    with pytest.raises(NotCompilable, match="input columns are not the signature's"):
        compile_pipeline(model, list(reversed(names)))


def _scored_rows(seed: int) -> pd.DataFrame:
    """Rows to score, with categories the model never saw (they count as missing, as in scikit-learn)."""
    scored = _rows(3000, seed=seed)
    scored.loc[::7, "colour"] = "ultraviolet"
    scored.loc[::11, "size"] = "XXL"
    return scored


def _multiclass_target(frame: pd.DataFrame) -> pd.Series:
    """Four string classes tied to the numbers and the categories."""
    score = frame["x"].fillna(0) + (frame["colour"] == "red") - (frame["size"] == "L") + frame["y"] / 12
    return pd.Series(np.select([score < 0, score < 1, score < 2], ["low", "mid", "high"], "top"), frame.index)


@pytest.mark.parametrize(
    ("categorical", "params"),
    [
        (CATEGORICAL, {"max_iter": 40}),
        (CATEGORICAL, {"max_iter": 20, "max_leaf_nodes": 63, "max_depth": None}),
        ((), {"max_iter": 25}),
    ],
)
def test_a_multiclass_model_is_compiled_to_its_own_probabilities_bit_for_bit(categorical, params):
    """One tree per class per iteration, softmax of the raw scores plus each class's baseline."""
    from mlops_ops.core.tasks import MulticlassTask

    spec = _spec(categorical=categorical)
    train = _rows(4000, seed=11)
    model = build_estimator(spec, params, seed=0).fit(features_frame(train, spec), _multiclass_target(train))
    names = list(features_frame(train, spec).columns)
    compiled = compile_pipeline(model, names)
    assert compiled.task == "multiclass" and list(compiled.classes) == ["high", "low", "mid", "top"]

    scored = _scored_rows(seed=12)
    expected = model.predict_proba(features_frame(scored, spec))
    columns = _columns(scored, names, spec)
    actual = compiled.class_probabilities(columns)
    assert actual.shape == expected.shape == (3000, 4)
    assert np.array_equal(actual, expected)
    # In the task's shape, as the model itself gives it: the most probable class and every probability.
    own = MulticlassTask().predict(model, features_frame(scored, spec))
    mine = compiled.predictions(columns)
    assert mine.task == "multiclass" and mine.classes == own.classes == ("high", "low", "mid", "top")
    assert np.array_equal(mine.label, own.label) and np.array_equal(mine.probabilities, own.probabilities)
    for index in range(30):
        one = {name: values[index : index + 1] for name, values in columns.items()}
        assert np.array_equal(compiled.class_probabilities(one)[0], expected[index])
    with pytest.raises(TypeError, match="two-class model only"):
        compiled.predict_proba(columns)


@pytest.mark.parametrize(
    ("categorical", "params"),
    [
        (CATEGORICAL, {"max_iter": 60}),
        (CATEGORICAL, {"max_iter": 30, "loss": "poisson"}),  # a log link: exp of the raw score
        (CATEGORICAL, {"max_iter": 30, "loss": "absolute_error"}),
        ((), {"max_iter": 40}),
    ],
)
def test_a_regressor_is_compiled_to_its_own_predictions_bit_for_bit(categorical, params):
    from mlops_ops.core.tasks import RegressionTask

    spec = _spec(categorical=categorical, estimator="sklearn.ensemble.HistGradientBoostingRegressor")
    train = _rows(4000, seed=13)
    target = np.exp(train["x"].fillna(0) / 2) + (train["colour"] == "red") + train["y"] / 6
    model = build_estimator(spec, params, seed=0).fit(features_frame(train, spec), target)
    names = list(features_frame(train, spec).columns)
    compiled = compile_pipeline(model, names)
    assert compiled.task == "regression" and compiled.classes is None

    scored = _scored_rows(seed=14)
    expected = model.predict(features_frame(scored, spec))
    columns = _columns(scored, names, spec)
    actual = compiled.predict_values(columns)
    assert actual.dtype == np.float64 and np.array_equal(actual, expected)
    own = RegressionTask().predict(model, features_frame(scored, spec))
    assert np.array_equal(compiled.predictions(columns).label, own.label)
    for index in range(30):
        one = {name: values[index : index + 1] for name, values in columns.items()}
        assert compiled.predict_values(one)[0] == expected[index]
    with pytest.raises(TypeError, match="no class probabilities"):
        compiled.class_probabilities(columns)


def test_a_two_class_model_of_other_classes_is_a_multiclass_one():
    """Two string classes: one tree per iteration, as a binary model, but its task is multiclass."""
    spec = _spec()
    train = _rows(2000, seed=17)
    model = build_estimator(spec, {"max_iter": 20}, seed=0).fit(
        features_frame(train, spec), train["label"].map({0: "stay", 1: "leave"})
    )
    names = list(features_frame(train, spec).columns)
    compiled = compile_pipeline(model, names)
    assert compiled.task == "multiclass" and list(compiled.classes) == ["leave", "stay"]
    scored = _scored_rows(seed=18)
    predictions = compiled.predictions(_columns(scored, names, spec))
    assert np.array_equal(predictions.probabilities, model.predict_proba(features_frame(scored, spec)))
    assert predictions.classes == ("leave", "stay")


def test_a_binary_model_gives_the_binary_tasks_predictions():
    from mlops_ops.core.tasks import BinaryTask

    spec = _spec()
    model, names = _fitted(spec, {"max_iter": 20}, _rows(2000, seed=15))
    compiled = compile_pipeline(model, names)
    scored = _scored_rows(seed=16)
    own = BinaryTask().predict(model, features_frame(scored, spec), threshold=0.3)
    mine = compiled.predictions(_columns(scored, names, spec), threshold=0.3)
    assert compiled.task == mine.task == "binary" and mine.classes == (0, 1)
    assert np.array_equal(mine.label, own.label) and np.array_equal(mine.probabilities, own.probabilities)


def test_a_compiled_model_that_differs_from_the_pipeline_is_refused(monkeypatch):
    """The equality check can fail: a compilation that moves one threshold is caught and named."""
    spec = _spec()
    model, names = _fitted(spec, {"max_iter": 20}, _rows(2000, seed=5))
    real_compile = compiled_trees._compile

    def off_by_a_little(model, input_names):
        compiled = real_compile(model, input_names)
        splits = np.flatnonzero((compiled.left != np.arange(compiled.left.size)) & ~compiled.is_categorical)
        compiled.threshold[splits[0]] += 0.25
        return compiled

    monkeypatch.setattr(compiled_trees, "_compile", off_by_a_little)
    with pytest.raises(NotCompilable, match=r"of 512 probe rows predict differently \(row \d+: scikit-learn"):
        compile_pipeline(model, names)


def test_probe_rows_reach_thresholds_missing_values_and_unknown_categories():
    spec = _spec()
    model, names = _fitted(spec, {"max_iter": 20}, _rows(2000, seed=6))
    compiled = compile_pipeline(model, names)
    probes = compiled_trees.probe_columns(compiled, 512)
    assert set(probes) == set(names)
    assert None in set(probes["colour"]) and "__unknown_category__" in set(probes["colour"])
    assert np.isnan(probes["x"]).any()
    thresholds = set(compiled.threshold[compiled.feature == compiled.tree_inputs.index("x")])
    assert thresholds & set(probes["x"])  # values exactly on a split, where <= decides


def test_a_scikit_learn_that_lays_its_model_out_differently_is_refused_not_crashed():
    """The compiler reads private fitted attributes; if a release moves one, the model is refused with the reason
    (and served by its own predict_proba), never left unloadable."""
    spec = _spec()
    model, names = _fitted(spec, {"max_iter": 5}, _rows(500, seed=7))
    del model[-1]._predictors
    with pytest.raises(NotCompilable, match="not laid out as expected: AttributeError"):
        compile_pipeline(model, names)
