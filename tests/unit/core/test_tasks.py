"""Task types: targets, estimator checks, predictions, metrics and their directions, and the gate over them."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mlops_ops.core import gate, tasks, training
from mlops_ops.core.errors import DataError
from mlops_ops.core.modelspec import ModelSpec
from mlops_ops.core.tasks import TaskMismatchError


def _rows(count: int = 900, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "size": rng.normal(size=count),
            "age": rng.uniform(0, 10, count),
            "region": rng.choice(["north", "south", "east"], count),
        }
    )
    frame["price"] = 100 + 20 * frame["size"] + 3 * frame["age"] + rng.normal(size=count)
    frame["tier"] = np.where(frame["size"] > 0.5, "high", np.where(frame["size"] < -0.5, "low", "mid"))
    frame["sold"] = (frame["size"] + rng.normal(scale=0.3, size=count) > 0).astype(int)
    return frame


def _spec(task: str, target: str, **extra: object) -> ModelSpec:
    return ModelSpec.from_dict(
        {
            "name": f"{task}-model",
            "task": task,
            "target": target,
            "categorical_features": ["region"],
            "numerical_features": ["size", "age"],
            "params": {"max_iter": 30},
            **extra,
        }
    )


def test_the_default_task_is_binary_and_leaves_the_spec_form_as_it_was():
    spec = ModelSpec.from_dict(
        {"name": "m", "target": "y", "categorical_features": [], "numerical_features": ["x"]}
    )
    assert spec.task == "binary"
    assert spec.estimator == "sklearn.ensemble.HistGradientBoostingClassifier"
    assert "task" not in spec.to_dict()  # the training key of every binary spec is unchanged


def test_a_regression_spec_defaults_to_a_regressor():
    spec = _spec("regression", "price")
    assert spec.estimator == "sklearn.ensemble.HistGradientBoostingRegressor"
    assert spec.to_dict()["task"] == "regression"


def test_an_unknown_task_is_refused_naming_the_supported_ones():
    with pytest.raises(DataError, match=r"task must be one of \['binary', 'multiclass', 'regression'\]"):
        _spec("ranking", "price")


def test_regression_trains_scores_and_measures_rmse_against_its_own_predictions():
    spec = _spec("regression", "price")
    data = training.split(_rows(), spec)
    model = training.fit(spec, data.train, params=spec.params, seed=0)
    metrics = training.evaluate(model, data.evaluation, spec)
    predicted = model.predict(training.features_frame(data.evaluation, spec))
    error = data.evaluation["price"].to_numpy() - predicted
    assert metrics["rmse"] == pytest.approx(float(np.sqrt(np.mean(error**2))))
    assert metrics["mae"] == pytest.approx(float(np.mean(np.abs(error))))
    assert metrics["r2"] > 0.9
    assert list(training.predict(model, training.features_frame(data.evaluation, spec), spec).columns()) == [
        "prediction"
    ]


def test_multiclass_with_string_classes_gives_one_probability_column_per_class():
    spec = _spec("multiclass", "tier")
    data = training.split(_rows(), spec)
    model = training.fit(spec, data.train, params=spec.params, seed=0)
    inputs = training.features_frame(data.evaluation, spec)
    predictions = training.predict(model, inputs, spec)
    columns = predictions.columns()
    assert list(columns) == ["prediction", "probability_high", "probability_low", "probability_mid"]
    assert (columns["prediction"] == model.predict(inputs)).all()
    metrics = training.evaluate(model, data.evaluation, spec)
    assert set(metrics) >= {"accuracy", "f1_macro", "f1_weighted", "log_loss", "recall_high", "recall_low"}
    expected_accuracy = float((model.predict(inputs) == data.evaluation["tier"].to_numpy()).mean())
    assert metrics["accuracy"] == pytest.approx(expected_accuracy)


def test_binary_metrics_are_those_flights_always_had():
    spec = _spec("binary", "sold")
    data = training.split(_rows(), spec)
    model = training.fit(spec, data.train, params=spec.params, seed=0)
    metrics = training.evaluate(model, data.evaluation, spec)
    inputs = training.features_frame(data.evaluation, spec)
    expected = training.classification_metrics(data.evaluation["sold"], model.predict_proba(inputs)[:, 1])
    assert metrics == expected


@pytest.mark.parametrize(
    ("task", "target", "estimator", "message"),
    [
        (
            "regression",
            "price",
            "sklearn.ensemble.HistGradientBoostingClassifier",
            r"HistGradientBoostingClassifier is a classifier but the model spec declares task 'regression'",
        ),
        (
            "binary",
            "sold",
            "sklearn.ensemble.HistGradientBoostingRegressor",
            r"HistGradientBoostingRegressor is a regressor but the model spec declares task 'binary'",
        ),
    ],
)
def test_an_estimator_of_another_task_is_refused_before_training(task, target, estimator, message):
    spec = _spec(task, target, estimator=estimator)
    with pytest.raises(TaskMismatchError, match=message):
        training.fit(spec, training.split(_rows(), spec).train, params=spec.params, seed=0)


def test_a_binary_spec_over_three_classes_is_refused_naming_the_task_to_declare():
    spec = _spec("binary", "tier")
    with pytest.raises(
        DataError, match=r"binary target 'tier' holds .* other than 0/1.*declare task: multiclass"
    ):
        training.split(_rows(), spec)


def test_a_regression_target_with_text_is_refused_naming_the_column_and_a_clipped_example():
    frame = _rows()
    frame["price"] = frame["price"].astype(object)
    frame.loc[5, "price"] = "call us" + "x" * 500
    spec = _spec("regression", "price")
    with pytest.raises(DataError, match=r"regression target 'price' holds 1 non-numeric value") as raised:
        training.split(frame, spec)
    assert "x" * 100 not in str(raised.value)  # a few characters, not the value whole


def test_a_multiclass_evaluation_class_no_training_row_has_is_refused():
    frame = _rows()
    frame.loc[frame.index[-5:], "tier"] = "brand-new"
    spec = _spec("multiclass", "tier")
    with pytest.raises(DataError, match=r"class\(es\) \['brand-new'\] of 'tier' that no training row has"):
        training.split(frame, spec)


def test_multiclass_labels_outside_the_models_classes_are_refused_when_measured():
    task = tasks.get_task("multiclass")
    predictions = tasks.Predictions(
        "multiclass", np.array(["a", "b"]), np.array([[0.9, 0.1], [0.2, 0.8]]), ("a", "b")
    )
    with pytest.raises(DataError, match=r"class\(es\) \['c'\] that the model was not trained on"):
        task.evaluate(np.array(["a", "c"]), predictions)


def test_a_training_function_returning_a_classifier_for_a_regression_spec_is_refused():
    spec = _spec("regression", "price", estimator="sklearn.ensemble.HistGradientBoostingRegressor")
    classifier = training.build_estimator(_spec("binary", "sold"), {"max_iter": 5}, 0)
    rows = _rows()
    classifier.fit(training.features_frame(rows, spec), rows["sold"])
    with pytest.raises(TaskMismatchError, match=r"returned HistGradientBoostingClassifier, a classifier"):
        tasks.get_task("regression").check_model(classifier, f"{spec.name} returned")


def test_mape_is_undefined_when_a_target_is_zero():
    task = tasks.get_task("regression")
    metrics = task.evaluate(np.array([0.0, 2.0]), tasks.Predictions("regression", np.array([1.0, 2.0])))
    assert math.isnan(metrics["mape"]) and metrics["mae"] == 0.5


def test_every_gate_metric_has_a_direction():
    assert tasks.lower_is_better("rmse") and tasks.lower_is_better("log_loss")
    assert not tasks.lower_is_better("r2") and not tasks.lower_is_better("recall_high")
    regression = tasks.get_task("regression")
    assert {name: regression.lower_is_better(name) for name in regression.metric_names()} == {
        "mae": True,
        "mape": True,
        "r2": False,
        "rmse": True,
    }


def test_the_gate_judges_a_lower_rmse_as_an_improvement():
    policy = gate.GatePolicy.from_dict({"max_metrics": {"rmse": 5.0}, "min_improvement": {"rmse": 0.5}})
    regression = tasks.get_task("regression")
    policy.check_for(regression)
    passed = gate.decide({"rmse": 3.0}, {"rmse": 4.0}, policy, champion_version="1", task=regression)
    assert passed.passed
    failed = gate.decide({"rmse": 3.8}, {"rmse": 4.0}, policy, champion_version="1", task=regression)
    assert not failed.passed
    assert "rmse improvement vs champion: 0.2000 (must be >= 0.5000)" in failed.failure_message()


def test_a_gate_key_the_task_does_not_measure_is_refused_naming_the_available_ones():
    policy = gate.GatePolicy.from_dict({"min_metrics": {"roc_auc": 0.7}})
    with pytest.raises(
        DataError,
        match=r"min_metrics: metric key\(s\) \['roc_auc'\] are not measured for a "
        r"regression model; available: mae, mape, r2, rmse",
    ):
        policy.check_for(tasks.get_task("regression"))


def test_a_floor_on_a_lower_is_better_metric_is_refused_naming_the_right_section():
    policy = gate.GatePolicy.from_dict({"min_metrics": {"log_loss": 0.3}})
    with pytest.raises(
        DataError,
        match=r"min_metrics.log_loss is a floor on a lower-is-better metric; put its "
        r"ceiling under max_metrics",
    ):
        policy.check_for(tasks.get_task("multiclass"))


def test_per_class_recall_is_a_multiclass_gate_key():
    policy = gate.GatePolicy.from_dict({"min_metrics": {"recall_high": 0.8, "f1_macro": 0.7}})
    policy.check_for(tasks.get_task("multiclass"))
    decision = gate.decide(
        {"recall_high": 0.75, "f1_macro": 0.9}, None, policy, task=tasks.get_task("multiclass")
    )
    assert [check.name for check in decision.failures] == ["recall_high >= floor"]


def test_infer_task_reads_the_fitted_model():
    rows = _rows()
    for task, target in (("binary", "sold"), ("multiclass", "tier"), ("regression", "price")):
        spec = _spec(task, target)
        model = training.fit(spec, rows, params={"max_iter": 5}, seed=0)
        assert tasks.infer_task(model).name == task
