"""Live performance of multiclass and regression models: exact metrics on hand-checkable intervals, cost tables
per task, decay rules in each metric's direction, and the input each task refuses."""

from __future__ import annotations

import json
import math

import pytest

from mlops_ops.core.errors import DataError
from mlops_ops.core.performance import BusinessCosts, DecayRule, evaluate_interval, live_metrics
from mlops_ops.core.tasks import get_task

# Multiclass: 8 labelled rows (and one not labelled yet), decided by the most probable class.
CLASSES = ("a", "b", "c")
CLASS_LABELS = ["a", "a", "a", "b", "b", "c", "c", "c", None]
CLASS_PROBABILITIES = [
    [0.7, 0.2, 0.1],  # a -> a
    [0.6, 0.3, 0.1],  # a -> a
    [0.3, 0.5, 0.2],  # a -> b
    [0.1, 0.8, 0.1],  # b -> b
    [0.1, 0.4, 0.5],  # b -> c
    [0.1, 0.1, 0.8],  # c -> c
    [0.2, 0.2, 0.6],  # c -> c
    [0.5, 0.2, 0.3],  # c -> a
    [0.9, 0.05, 0.05],  # not labelled
]
DECIDED = ["a", "a", "b", "b", "c", "c", "c", "a", "a"]
# The probability each labelled row gave its own class.
OWN_CLASS = [0.7, 0.6, 0.3, 0.8, 0.4, 0.8, 0.6, 0.3]
CLASS_COSTS = BusinessCosts(misclassification=10.0, matrix={"c": {"a": 100.0}})

# Regression: errors +2, -2, +3, 0 against labels 10, 20, 30, 40.
TARGETS = [10.0, 20.0, 30.0, 40.0]
VALUES = [12.0, 18.0, 33.0, 40.0]
UNIT_COSTS = BusinessCosts(under_prediction=5.0, over_prediction=1.0)


def multiclass(**overrides):
    arguments = dict(
        labels=CLASS_LABELS,
        probabilities=CLASS_PROBABILITIES,
        predictions=DECIDED,
        costs=CLASS_COSTS,
        task="multiclass",
        classes=CLASSES,
    )
    return evaluate_interval(**{**arguments, **overrides})


def regression(labels=TARGETS, predictions=VALUES, **overrides):
    return evaluate_interval(
        labels, predictions=predictions, costs=UNIT_COSTS, task="regression", **overrides
    )


def test_a_multiclass_interval_gives_exact_metrics_confusion_and_cost():
    result = multiclass()
    assert (result.rows, result.labelled_rows, result.task, result.classes) == (9, 8, "multiclass", CLASSES)
    metrics = result.metrics
    assert list(metrics) == list(live_metrics("multiclass", CLASSES))
    assert metrics["accuracy"] == pytest.approx(5 / 8)
    assert (metrics["recall_a"], metrics["recall_b"], metrics["recall_c"]) == pytest.approx(
        (2 / 3, 1 / 2, 2 / 3)
    )
    # Precision equals recall for every class here (a 2/3, b 1/2, c 2/3), so F1 does too.
    assert metrics["f1_macro"] == pytest.approx((2 / 3 + 1 / 2 + 2 / 3) / 3)
    assert metrics["f1_weighted"] == pytest.approx((3 * 2 / 3 + 2 * 1 / 2 + 3 * 2 / 3) / 8)
    assert metrics["log_loss"] == pytest.approx(-sum(math.log(p) for p in OWN_CLASS) / 8)
    assert result.confusion.counts == ((2, 1, 0), (0, 1, 1), (1, 0, 2))
    # a->b and b->c cost the default 10; c->a costs the matrix's 100.
    assert (result.business_cost.misclassified, result.business_cost.total) == (3, 120.0)
    assert result.business_cost.per_row == pytest.approx(15.0)
    values = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert values["confusion"] == {"classes": ["a", "b", "c"], "counts": [[2, 1, 0], [0, 1, 1], [1, 0, 2]]}
    assert values["business_cost"] == {
        "total": 120.0,
        "per_row": 15.0,
        "misclassified": 3,
        "costs": {"misclassification": 10.0, "matrix": {"c": {"a": 100.0}}},
    }
    assert (values["task"], values["classes"], values["notes"]) == ("multiclass", ["a", "b", "c"], [])


def test_multiclass_decisions_default_to_the_most_probable_class_and_integer_classes_work():
    assert multiclass(predictions=None).metrics == multiclass().metrics
    # Integer classes as a join gives them: floats, NaN where no label arrived.
    numbered = {"a": 0, "b": 1, "c": 2}
    result = multiclass(
        labels=[float(numbered[label]) if label else float("nan") for label in CLASS_LABELS],
        predictions=[numbered[label] for label in DECIDED],
        classes=(0, 1, 2),
        costs=BusinessCosts(misclassification=1.0),
    )
    assert result.metrics["recall_2"] == pytest.approx(2 / 3) and result.business_cost.total == 3.0


def test_a_class_absent_from_the_labelled_rows_has_no_recall_and_says_why():
    result = multiclass(
        labels=["a", "b", "a"],
        probabilities=CLASS_PROBABILITIES[:3],
        predictions=DECIDED[:3],
    )
    assert result.metrics["recall_c"] is None
    assert result.notes == ("recall_c is undefined: no labelled row is of class c",)


def test_a_label_of_a_class_the_model_was_not_trained_on_is_refused_naming_it():
    with pytest.raises(DataError, match=r"class\(es\) \['d'\] that the model was not trained on"):
        multiclass(labels=["a", "d", *CLASS_LABELS[2:]])
    many = [f"unknown-{index}-{'x' * 80}" for index in range(5)]
    with pytest.raises(DataError) as refused:
        multiclass(labels=[*many, *CLASS_LABELS[5:]])
    message = str(refused.value)
    assert "'unknown-0-xxx" in message and ", ...]" in message and "x" * 60 not in message  # a few, clipped


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"predictions": [*DECIDED[:-1], "z"]}, r"1 predictions are not among the model's classes"),
        ({"probabilities": [row[:2] for row in CLASS_PROBABILITIES]}, r"one column per class \(3\)"),
        (
            {"probabilities": [[1.2, 0, 0], *CLASS_PROBABILITIES[1:]]},
            r"1 rows of probabilities .* outside \[0, 1\]",
        ),
        ({"classes": ("a",), "costs": BusinessCosts(misclassification=1.0)}, "needs the model's classes"),
        ({"labels": CLASS_LABELS[:4]}, "labels, probabilities and predictions differ in length"),
        ({"labels": [None] * 9}, "labels are missing for every one of the 9 predictions"),
        ({"labels": [1.5, *CLASS_LABELS[1:]]}, "mixes value types"),
    ],
)
def test_bad_multiclass_input_is_refused(overrides, words):
    with pytest.raises(DataError, match=words):
        multiclass(**overrides)


def test_a_regression_interval_gives_exact_metrics_and_asymmetric_cost():
    result = regression([*TARGETS, None], [*VALUES, 99.0])
    assert (result.rows, result.labelled_rows, result.task, result.confusion) == (5, 4, "regression", None)
    assert result.metrics == pytest.approx(
        {
            "rmse": math.sqrt(17 / 4),
            "mae": 7 / 4,
            "r2": 1 - 17 / 500,  # squared errors 17 against 500 around the mean target 25
            "mape": (0.2 + 0.1 + 0.1 + 0) / 4,
            "mean_target": 25.0,
            "mean_prediction": 25.75,
        }
    )
    cost = result.business_cost
    # 2 units under the label at 5 each, 2 + 3 units over it at 1 each.
    assert (cost.under_prediction_units, cost.over_prediction_units, cost.total) == (2.0, 5.0, 15.0)
    assert cost.per_row == pytest.approx(15 / 4)
    values = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert "confusion" not in values and "classes" not in values
    assert values["business_cost"]["costs"] == {"under_prediction": 5.0, "over_prediction": 1.0}


def test_an_undefined_regression_metric_is_none_with_the_reason():
    zero = regression([0.0, 10.0], [1.0, 10.0])
    assert zero.metrics["mape"] is None and zero.metrics["rmse"] == pytest.approx(math.sqrt(0.5))
    assert zero.notes == ("mape is undefined: 1 labelled target(s) are 0",)
    flat = regression([5.0, 5.0, 5.0], [4.0, 5.0, 6.0])
    assert flat.metrics["r2"] is None and flat.notes == ("r2 is undefined: all 3 labelled targets are 5",)


@pytest.mark.parametrize(
    ("labels", "predictions", "words"),
    [
        (
            ["10", "n/a", 30.0, 40.0],
            VALUES,
            r"the regression target 'price' holds 1 non-numeric value\(s\), e.g. \['n/a'\]",
        ),
        ([True, False, True, True], VALUES, "the regression target 'price' holds true/false values"),
        (TARGETS, [12.0, float("nan"), 33.0, 40.0], "1 predictions are NaN or infinite"),
        (TARGETS, ["12", "x", "1", "2"], "predictions must be numbers"),
        (TARGETS, None, "measured on its predictions: none were given"),
        ([None] * 4, VALUES, "labels are missing for every one of the 4 predictions"),
    ],
)
def test_bad_regression_input_is_refused_naming_the_column(labels, predictions, words):
    with pytest.raises(DataError, match=words):
        regression(labels, predictions, label_column="price")


def test_each_task_loads_its_own_cost_table():
    assert BusinessCosts.from_dict({"missed_positive": 5, "false_alarm": "1"}).task == "binary"
    costs = BusinessCosts.from_dict({"misclassification": 2, "matrix": {1: {2: 30}}})
    assert costs.task == "multiclass" and costs.matrix == {"1": {"2": 30.0}}
    assert (
        costs.misclassification_cost(1, 2),
        costs.misclassification_cost(2, 1),
        costs.misclassification_cost(1, 1),
    ) == (30.0, 2.0, 0.0)
    regression_costs = BusinessCosts.load({"under_prediction": 3, "over_prediction": 1})
    assert regression_costs.task == "regression" and regression_costs.to_dict() == {
        "under_prediction": 3.0,
        "over_prediction": 1.0,
    }


@pytest.mark.parametrize(
    ("values", "words"),
    [
        (
            {"under_prediction": 1},
            r"regression costs expected exactly \['over_prediction', 'under_prediction'\], got \['under_prediction'\]",
        ),
        (
            {"matrix": {"a": {"b": 1}}},
            r"multiclass costs expected exactly \['misclassification'\] \(and optionally \['matrix'\]\)",
        ),
        (
            {"missed_positive": 1, "false_alarm": 1, "under_prediction": 1, "over_prediction": 1},
            r"mix the cost tables of binary and regression",
        ),
        (
            {"misclasification": 1},
            r"unknown field\(s\) \['misclasification'\]; expected exactly the fields of one task",
        ),
        ({"misclassification": 1, "matrix": {"a": {"a": 1}}}, "matrix.a.a is the cost of a right decision"),
        ({"misclassification": 1, "matrix": {"a": {"b": -1}}}, r"matrix.a.b must be >= 0"),
        ({"misclassification": 1, "matrix": {"a": 3}}, "matrix.a must map a predicted class to a cost"),
        ({"under_prediction": 1, "over_prediction": True}, "over_prediction must be a number"),
        ({}, "no cost is set"),
    ],
)
def test_a_malformed_cost_table_is_refused_naming_the_field(values, words):
    with pytest.raises(DataError, match=words):
        BusinessCosts.from_dict(values, origin="costs.yaml")


def test_a_cost_table_of_another_task_is_refused_naming_what_the_task_expects():
    binary = BusinessCosts(missed_positive=50.0, false_alarm=10.0)
    with pytest.raises(
        DataError,
        match=r"a regression model's costs are \['over_prediction', 'under_prediction'\], got "
        r"\['false_alarm', 'missed_positive'\] \(the costs of a binary model\)",
    ):
        evaluate_interval(TARGETS, predictions=VALUES, costs=binary, task="regression")
    with pytest.raises(DataError, match=r"a binary model's costs are \['false_alarm', 'missed_positive'\]"):
        UNIT_COSTS.check_for(get_task("binary"))
    with pytest.raises(DataError, match=r"matrix names class\(es\) \['z'\] the model does not know"):
        BusinessCosts(misclassification=1.0, matrix={"z": {"a": 2.0}}).check_for(
            get_task("multiclass"), classes=CLASSES
        )


def test_an_rmse_that_rose_more_than_allowed_from_training_requests_a_retrain():
    rule = DecayRule.load(
        {"max_drop": {"rmse": 1.0}, "max_metrics": {"mae": 2.0}, "min_metrics": {"r2": 0.9}}
    )
    performance = regression()  # rmse 2.0616, mae 1.75, r2 0.966
    decayed = rule.judge(performance, {"rmse": 1.0})
    assert decayed.status == "decayed"
    (reason,) = decayed.to_dict()["reasons"]
    assert reason["message"] == "rmse rose 1.0616 from 1.0000 at training to 2.0616 (max drop 1.0000)"
    assert rule.judge(performance, {"rmse": 1.1}).status == "healthy"
    assert rule.judge(performance, {"rmse": 5.0}).status == "healthy"  # a lower RMSE is an improvement


def test_an_f1_macro_that_dropped_more_than_allowed_requests_a_retrain():
    rule = DecayRule.load({"max_drop": {"f1_macro": 0.05}, "min_metrics": {"recall_b": 0.4}})
    performance = multiclass()  # f1_macro 11/18 = 0.6111, recall_b 0.5
    verdict = rule.judge(performance, {"f1_macro": 0.70})
    assert verdict.status == "decayed" and [check.metric for check in verdict.violations] == ["f1_macro"]
    assert (
        verdict.violations[0].describe()
        == "f1_macro dropped 0.0889 from 0.7000 at training to 0.6111 (max drop 0.0500)"
    )
    assert rule.judge(performance, {"f1_macro": 0.65}).status == "healthy"


def test_a_per_class_check_of_a_class_absent_from_the_interval_is_inconclusive():
    performance = multiclass(
        labels=["a", "b", "a"], probabilities=CLASS_PROBABILITIES[:3], predictions=DECIDED[:3]
    )
    verdict = DecayRule.load({"min_metrics": {"recall_c": 0.5}}).judge(performance, {})
    assert verdict.status == "inconclusive"
    assert verdict.unevaluated[0].detail == "recall_c is undefined: no labelled row is of class c"


@pytest.mark.parametrize(
    ("values", "words"),
    [
        (
            {"min_metrics": {"f1macro": 0.5}},
            r"min_metrics cannot check \['f1macro'\]; it takes some of \['accuracy', 'f1', 'f1_macro', "
            r"'f1_weighted', 'precision', 'r2', 'recall', 'recall_<class>', 'roc_auc'\]",
        ),
        (
            {"min_metrics": {"rmse": 3.0}},
            r"min_metrics cannot check \['rmse'\] \(a floor takes a higher-is-better",
        ),
        (
            {"max_metrics": {"r2": 0.5}},
            r"max_metrics cannot check \['r2'\] \(a ceiling takes a lower-is-better",
        ),
    ],
)
def test_a_key_no_task_measures_or_in_the_wrong_direction_is_refused_at_load(values, words):
    with pytest.raises(DataError, match=words):
        DecayRule.from_dict(values)


def test_a_key_the_models_task_does_not_measure_is_refused_naming_the_available_ones():
    with pytest.raises(
        DataError,
        match=r"decay rule: min_metrics cannot check \['roc_auc'\] on a regression model; it takes some of \['r2'\]",
    ):
        DecayRule.load({"min_metrics": {"roc_auc": 0.6}}).judge(regression(), {})
    with pytest.raises(
        DataError,
        match=r"max_drop cannot check \['recall_z'\] on a multiclass model; it takes some of \['accuracy', "
        r"'f1_macro', 'f1_weighted', 'log_loss', 'recall_a', 'recall_b', 'recall_c'\]",
    ):
        DecayRule.load({"max_drop": {"recall_z": 0.1}}).judge(multiclass(), {"recall_z": 0.9})
    rule = DecayRule.load({"max_metrics": {"rmse": 3.0, "business_cost_per_row": 9.0}})
    rule.check_for(get_task("regression"))
    with pytest.raises(
        DataError,
        match=r"the rule: max_metrics cannot check \['rmse'\] on a binary model; it takes some of "
        r"\['brier_score', 'business_cost_per_row', 'log_loss'\]",
    ):
        rule.check_for(get_task("binary"), "the rule")
