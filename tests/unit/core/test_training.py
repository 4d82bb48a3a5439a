"""Tests of the model spec and of training on small synthetic frames: time split, determinism, metrics, keys."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as sk_metrics

from mlops_ops.core import training
from mlops_ops.core.errors import DataError
from mlops_ops.core.modelspec import ModelSpec, load_callable

PROJECT_ROOT = Path(__file__).resolve().parents[3]
THIS_MODULE = "tests.unit.core.test_training"
ROWS = 3000

SPEC_VALUES: dict[str, Any] = {
    "name": "toy",
    "target": "label",
    "categorical_features": ["colour", "size"],
    "numerical_features": ["x", "y"],
    "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
    "params": {"max_iter": 20},
    "holdout": {"time_column": "ts", "fraction": 0.25},
    "seed": 7,
}
FOREST = {
    **SPEC_VALUES,
    "estimator": "sklearn.ensemble.RandomForestClassifier",
    "params": {"n_estimators": 10},
}


def synthetic_frame(rows: int = ROWS, seed: int = 0, unlabelled: float = 0.05) -> pd.DataFrame:
    """Rows in shuffled time order, where ``label`` depends on ``x`` and on ``colour == "red"``."""
    rng = np.random.default_rng(seed)
    colour = rng.choice(["red", "green", "blue"], rows)
    size = rng.choice(["S", "L"], rows)
    x = rng.normal(size=rows)
    y = rng.uniform(size=rows)
    logit = 2.0 * x + 1.5 * (colour == "red") - 0.5
    label = (rng.uniform(size=rows) < 1 / (1 + np.exp(-logit))).astype("float64")
    label[rng.uniform(size=rows) < unlabelled] = np.nan
    hours = rng.integers(0, 24 * 60, rows)  # 60 days, many rows per hour
    return pd.DataFrame(
        {
            "ts": pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(hours, unit="h"),
            "colour": pd.Series(colour, dtype="string"),
            "size": pd.Series(size, dtype="string"),
            "x": x,
            "y": y,
            "label": label,
        }
    )


@pytest.fixture(scope="module")
def spec() -> ModelSpec:
    return ModelSpec.from_dict(SPEC_VALUES)


@pytest.fixture(scope="module")
def prepared(spec: ModelSpec) -> training.PreparedData:
    return training.split(synthetic_frame(), spec)


@pytest.fixture(scope="module")
def model(spec: ModelSpec, prepared: training.PreparedData) -> Any:
    return training.fit(spec, prepared.train, params=spec.params, seed=spec.seed)


def probabilities(model: Any, frame: pd.DataFrame, spec: ModelSpec) -> np.ndarray:
    return training.positive_probability(model, training.features_frame(frame, spec))


# --- referenced by "tests.unit.core.test_training:..." -------------------------------------------------


class ConstantModel:
    """Predicts the training delay rate for every row; remembers what the training function was given."""

    def __init__(self, rate: float, received: dict[str, Any]) -> None:
        self.rate = rate
        self.received = received

    def predict_proba(self, inputs: pd.DataFrame) -> np.ndarray:
        positive = np.full(len(inputs), self.rate)
        return np.column_stack([1 - positive, positive])


def constant_training(train: pd.DataFrame, *, spec: ModelSpec, params: dict, seed: int, device: str) -> Any:
    received = {"rows": len(train), "spec": spec, "params": params, "seed": seed, "device": device}
    return ConstantModel(float(train[spec.target].mean()), received)


def training_without_model(train: pd.DataFrame, **kwargs: Any) -> Any:
    return {"not": "a model"}


def add_x_squared(raw: pd.DataFrame) -> pd.DataFrame:
    return raw.assign(x_squared=raw["x"] ** 2)


# --- split ---------------------------------------------------------------------------------------------


def test_split_is_time_ordered(prepared):
    assert prepared.evaluation["ts"].min() > prepared.train["ts"].max()
    assert prepared.split_time == str(prepared.evaluation["ts"].min())
    labelled = len(prepared.train) + len(prepared.evaluation)
    assert 0.2 < len(prepared.evaluation) / labelled < 0.3  # about the holdout fraction of 0.25
    assert prepared.train["ts"].is_monotonic_increasing
    assert list(prepared.train.index) == list(range(len(prepared.train)))


def test_split_drops_unlabelled_rows_and_counts_them(spec):
    frame = synthetic_frame()
    unlabelled = int(frame["label"].isna().sum())

    prepared = training.split(frame, spec)

    assert unlabelled > 50
    assert prepared.rows_in == ROWS
    assert prepared.rows_unlabelled == unlabelled
    assert len(prepared.train) + len(prepared.evaluation) == ROWS - unlabelled
    assert prepared.train["label"].notna().all() and prepared.evaluation["label"].notna().all()
    summary = prepared.summary()
    assert json.loads(json.dumps(summary)) == summary
    assert summary["rows_unlabelled"] == unlabelled
    assert summary["rows_train"] == len(prepared.train)


def test_split_without_a_time_column_holds_out_the_last_rows_in_file_order():
    spec = ModelSpec.from_dict({**SPEC_VALUES, "holdout": {"fraction": 0.2}})
    frame = synthetic_frame(unlabelled=0.0)

    prepared = training.split(frame, spec)

    assert prepared.split_time is None
    assert len(prepared.evaluation) == 600
    pd.testing.assert_frame_equal(prepared.evaluation, frame.iloc[2400:].reset_index(drop=True))


def test_split_of_rows_without_labels_is_an_error(spec):
    frame = synthetic_frame().assign(label=np.nan)

    with pytest.raises(DataError, match="no labelled rows.*'label'"):
        training.split(frame, spec)


def test_split_of_a_single_class_is_an_error(spec):
    frame = synthetic_frame().assign(label=1.0)

    with pytest.raises(DataError, match="single class of 'label'"):
        training.split(frame, spec)


def test_split_of_a_single_instant_is_an_error(spec):
    frame = synthetic_frame().assign(ts=pd.Timestamp("2024-01-01", tz="UTC"))

    with pytest.raises(DataError, match="0 training and .* evaluation rows"):
        training.split(frame, spec)


@pytest.mark.parametrize("column", ["size", "x", "label"])
def test_split_names_a_missing_column(spec, column):
    frame = synthetic_frame().drop(columns=[column])

    with pytest.raises(DataError, match=re.escape(f"missing column(s) ['{column}'] needed by model 'toy'")):
        training.split(frame, spec)


def test_split_names_a_missing_time_column(spec):
    with pytest.raises(DataError, match="holdout time column 'ts' is missing"):
        training.split(synthetic_frame().drop(columns=["ts"]), spec)


def test_prepare_applies_the_spec_function_and_checks_columns():
    spec = ModelSpec.from_dict(
        {**SPEC_VALUES, "prepare": f"{THIS_MODULE}:add_x_squared", "numerical_features": ["x", "x_squared"]}
    )
    raw = synthetic_frame(rows=10)

    frame = training.prepare(raw, spec)

    np.testing.assert_allclose(frame["x_squared"], raw["x"] ** 2)
    with pytest.raises(DataError, match=r"\['colour'\]"):
        training.prepare(raw.drop(columns=["colour"]), spec)


def test_prepare_turns_a_raw_column_missing_in_the_function_into_a_data_error():
    spec = ModelSpec.from_dict({**SPEC_VALUES, "prepare": f"{THIS_MODULE}:add_x_squared"})

    with pytest.raises(DataError, match=re.escape(f"{THIS_MODULE}:add_x_squared needs column 'x'")):
        training.prepare(synthetic_frame(rows=10).drop(columns=["x"]), spec)


# --- fit -----------------------------------------------------------------------------------------------


def test_fit_learns_the_signal(spec, prepared, model):
    scores = training.evaluate(model, prepared.evaluation, spec)

    assert scores["roc_auc"] > 0.75
    assert scores["rows"] == len(prepared.evaluation)


@pytest.mark.parametrize("values", [SPEC_VALUES, FOREST], ids=["hist_gradient_boosting", "random_forest"])
def test_fit_with_the_same_seed_gives_identical_probabilities(values, prepared):
    spec = ModelSpec.from_dict(values)

    first = training.fit(spec, prepared.train, params=spec.params, seed=3)
    second = training.fit(spec, prepared.train, params=spec.params, seed=3)

    assert np.array_equal(
        probabilities(first, prepared.evaluation, spec), probabilities(second, prepared.evaluation, spec)
    )


def test_fit_with_another_seed_differs_for_a_randomised_estimator(prepared):
    spec = ModelSpec.from_dict(FOREST)

    first = training.fit(spec, prepared.train, params=spec.params, seed=1)
    second = training.fit(spec, prepared.train, params=spec.params, seed=2)

    assert first.named_steps["model"].random_state == 1
    assert not np.array_equal(
        probabilities(first, prepared.evaluation, spec), probabilities(second, prepared.evaluation, spec)
    )


def test_an_explicit_random_state_param_wins_over_the_seed(prepared):
    spec = ModelSpec.from_dict(FOREST)
    params = {**spec.params, "random_state": 5}

    first = training.fit(spec, prepared.train, params=params, seed=1)
    second = training.fit(spec, prepared.train, params=params, seed=2)

    assert np.array_equal(
        probabilities(first, prepared.evaluation, spec), probabilities(second, prepared.evaluation, spec)
    )


def test_an_unknown_category_at_scoring_is_treated_as_missing(spec, prepared, model):
    rows = prepared.evaluation.head(20)
    unseen = rows.assign(colour=pd.Series(["purple"] * len(rows), dtype="string"))
    missing = rows.assign(colour=pd.Series([None] * len(rows), dtype="string"))

    unseen_probabilities = probabilities(model, unseen, spec)

    assert np.all((unseen_probabilities > 0) & (unseen_probabilities < 1))
    assert np.array_equal(unseen_probabilities, probabilities(model, missing, spec))
    assert not np.array_equal(unseen_probabilities, probabilities(model, rows, spec))


def test_features_frame_orders_columns_and_makes_categoricals_plain_objects(spec):
    frame = synthetic_frame(rows=5)
    frame.loc[0, "colour"] = pd.NA

    inputs = training.features_frame(frame, spec)

    assert list(inputs.columns) == ["colour", "size", "x", "y"]
    assert inputs["colour"].dtype == object and inputs["size"].dtype == object
    assert inputs.loc[0, "colour"] is None
    assert isinstance(inputs.loc[1, "colour"], str)


def test_fit_with_a_training_function_hands_it_spec_params_seed_and_device(spec, prepared):
    load_callable(f"{THIS_MODULE}:constant_training")  # the test module is importable by that name

    model = training.fit(
        spec,
        prepared.train,
        params={"depth": 3},
        seed=11,
        device="cuda",
        training_function=f"{THIS_MODULE}:constant_training",
    )

    assert model.received == {
        "rows": len(prepared.train),
        "spec": spec,
        "params": {"depth": 3},
        "seed": 11,
        "device": "cuda",
    }
    expected = prepared.train["label"].mean()
    assert np.allclose(probabilities(model, prepared.evaluation, spec), expected)


def test_a_training_function_must_return_a_model_with_predict_proba(spec, prepared):
    with pytest.raises(TypeError, match="training_without_model returned dict, which has no predict_proba"):
        training.fit(
            spec, prepared.train, params={}, seed=0, training_function=f"{THIS_MODULE}:training_without_model"
        )


# --- metrics -------------------------------------------------------------------------------------------

LABELS = np.array([0, 1, 1, 0, 1, 0, 0, 1, 1, 0])
SCORES = np.array([0.1, 0.8, 0.45, 0.3, 0.9, 0.6, 0.2, 0.55, 0.7, 0.52])


def test_classification_metrics_match_scikit_learn():
    predicted = (SCORES >= 0.5).astype(int)

    values = training.classification_metrics(LABELS, SCORES)

    assert values == pytest.approx(
        {
            "roc_auc": sk_metrics.roc_auc_score(LABELS, SCORES),
            "log_loss": sk_metrics.log_loss(LABELS, SCORES),
            "brier_score": sk_metrics.brier_score_loss(LABELS, SCORES),
            "accuracy": sk_metrics.accuracy_score(LABELS, predicted),
            "precision": sk_metrics.precision_score(LABELS, predicted),
            "recall": sk_metrics.recall_score(LABELS, predicted),
            "f1": sk_metrics.f1_score(LABELS, predicted),
            "positive_rate": 0.5,
            "rows": 10.0,
        }
    )
    assert values["accuracy"] == pytest.approx(0.7)  # 2 false positives (0.6, 0.52), 1 false negative (0.45)
    assert all(isinstance(value, float) for value in values.values())


def test_classification_metrics_use_the_threshold():
    values = training.classification_metrics(LABELS, SCORES, threshold=0.65)

    assert values["precision"] == 1.0  # only 0.8, 0.9 and 0.7 are called positive, all truly positive
    assert values["recall"] == pytest.approx(3 / 5)


def test_classification_metrics_on_one_class_and_certain_probabilities():
    values = training.classification_metrics([1, 1, 1], [1.0, 0.0, 1.0])

    assert np.isnan(values["roc_auc"])
    assert np.isfinite(values["log_loss"])  # probabilities are clipped away from 0 and 1
    assert values["precision"] == 1.0 and values["recall"] == pytest.approx(2 / 3)


def test_evaluate_scores_only_labelled_rows_on_the_given_input_columns(spec, prepared, model):
    frame = prepared.evaluation.copy()
    frame.loc[:9, "label"] = np.nan

    assert training.evaluate(model, frame, spec)["rows"] == len(frame) - 10
    with pytest.raises(DataError, match=r"lack column\(s\) \['weight'\]"):
        training.evaluate(model, frame, spec, input_columns=["colour", "weight"])


# --- training key --------------------------------------------------------------------------------------


def test_training_key_is_stable_and_changes_with_each_input(spec):
    base = ("sha256:data", spec, {"max_iter": 20, "learning_rate": 0.1}, 7, "abc123")
    key = training.training_key(*base)

    assert re.fullmatch(r"sha256:[0-9a-f]{64}", key)
    assert training.training_key(*base) == key
    assert training.training_key(base[0], spec, {"learning_rate": 0.1, "max_iter": 20}, 7, "abc123") == key
    assert training.training_key(base[0], ModelSpec.from_dict(SPEC_VALUES), *base[2:]) == key
    variants = [
        ("sha256:other", spec, base[2], 7, "abc123"),
        (base[0], spec, {"max_iter": 21, "learning_rate": 0.1}, 7, "abc123"),
        (base[0], spec, base[2], 8, "abc123"),
        (base[0], spec, base[2], 7, "abc123+dirty"),
        (base[0], ModelSpec.from_dict({**SPEC_VALUES, "numerical_features": ["x"]}), base[2], 7, "abc123"),
    ]
    keys = {training.training_key(*variant) for variant in variants}
    assert len(keys) == len(variants)
    assert key not in keys


# --- ModelSpec -----------------------------------------------------------------------------------------


def test_load_a_spec_file_with_a_feature_store_section(tmp_path):
    """A spec file read from a path (the flights spec itself: tests/reference/test_flights_config.py)."""
    import yaml

    from tests.unit import synthetic

    store = {
        "feature_service": "visit_features",
        "timestamp_column": synthetic.TIME_COLUMN,
        "entity_keys": f"{synthetic.THIS_MODULE}:entity_keys",
    }
    values = synthetic.spec(feature_store=store, prepare=f"{THIS_MODULE}:add_x_squared")
    path = tmp_path / "model_spec.yaml"
    path.write_text(yaml.safe_dump(values))

    spec = ModelSpec.load(path)

    assert spec.name == synthetic.MODEL
    assert spec.target == synthetic.TARGET
    assert spec.categorical_features == synthetic.CATEGORICAL
    assert spec.features[:3] == [*synthetic.CATEGORICAL, synthetic.NUMERICAL[0]]
    assert spec.feature_store == store
    assert callable(load_callable(spec.feature_store["entity_keys"]))
    assert spec.holdout == {"time_column": synthetic.TIME_COLUMN, "fraction": 0.2}
    assert spec.seed == 42
    assert spec.params["max_iter"] == 20
    assert callable(load_callable(spec.prepare))
    assert callable(load_callable(spec.estimator))
    assert ModelSpec.load(str(path)) == spec
    assert ModelSpec.load(spec) is spec


@pytest.mark.parametrize(
    ("section", "words"),
    [
        ({"feature_service": "x", "ttl": 3}, "unknown feature_store field(s) ['ttl']"),
        ({"timestamp_column": "time_hour"}, "feature_store.feature_service must name"),
        ("flight_delay_features", "feature_store must be a mapping"),
    ],
)
def test_a_bad_feature_store_section_is_named(section, words):
    values = {"name": "m", "target": "y", "categorical_features": [], "numerical_features": ["x"]}
    with pytest.raises(DataError, match=re.escape(words)):
        ModelSpec.from_dict({**values, "feature_store": section}, origin="spec.yaml")


def test_spec_to_dict_is_json_safe_and_round_trips(spec):
    values = spec.to_dict()

    assert json.loads(json.dumps(values)) == values
    assert ModelSpec.from_dict(values) == spec


def test_from_dict_fills_holdout_defaults():
    spec = ModelSpec.from_dict({**SPEC_VALUES, "holdout": {"fraction": 0.3}})

    assert spec.holdout == {"time_column": None, "fraction": 0.3}


def test_from_dict_rejects_an_unknown_field():
    with pytest.raises(DataError, match=r"spec.yaml: unknown field\(s\) \['features'\]"):
        ModelSpec.from_dict({**SPEC_VALUES, "features": ["x"]}, origin="spec.yaml")


@pytest.mark.parametrize("field", ["name", "target", "categorical_features", "numerical_features"])
def test_from_dict_rejects_a_missing_required_field(field):
    values = {key: value for key, value in SPEC_VALUES.items() if key != field}

    with pytest.raises(DataError, match=f"missing required field '{field}'"):
        ModelSpec.from_dict(values)


@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.1])
def test_from_dict_rejects_a_holdout_fraction_outside_zero_and_one(fraction):
    with pytest.raises(DataError, match="holdout.fraction must be between 0 and 1"):
        ModelSpec.from_dict({**SPEC_VALUES, "holdout": {"time_column": "ts", "fraction": fraction}})


def test_load_rejects_a_file_that_is_not_a_mapping_or_missing(tmp_path):
    listing = tmp_path / "list.yaml"
    listing.write_text("- name\n- target\n")

    with pytest.raises(DataError, match="list.yaml: a model spec must be a mapping"):
        ModelSpec.load(listing)
    with pytest.raises(DataError, match="absent.yaml: cannot read the model spec"):
        ModelSpec.load(tmp_path / "absent.yaml")


# --- load_callable -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reference",
    ["sklearn.ensemble:HistGradientBoostingClassifier", "sklearn.ensemble.HistGradientBoostingClassifier"],
)
def test_load_callable_accepts_colon_and_dotted_forms(reference):
    from sklearn.ensemble import HistGradientBoostingClassifier

    assert load_callable(reference) is HistGradientBoostingClassifier


def test_load_callable_follows_nested_attributes():
    assert load_callable("os:path.join") is __import__("os").path.join
    assert load_callable(f"{THIS_MODULE}:ConstantModel.predict_proba").__name__ == "predict_proba"


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("nodots", "'nodots' is not of the form 'package.module:function'"),
        (":function", "is not of the form"),
        ("module:", "is not of the form"),
        (
            "no_such_module_xyz:train",
            "cannot import module 'no_such_module_xyz' of 'no_such_module_xyz:train'",
        ),
        ("no_such_module_xyz.train", "cannot import module 'no_such_module_xyz'"),
        ("sklearn.ensemble:NoSuchEstimator", "'sklearn.ensemble' has no attribute 'NoSuchEstimator'"),
        ("os:path.nope", "'os' has no attribute 'path.nope'"),
    ],
)
def test_load_callable_errors_name_the_reference(reference, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        load_callable(reference)
