"""Live performance and the decay rule: exact metrics on known confusion matrices, verdicts, bad input."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from mlops_ops.core.errors import DataError
from mlops_ops.core.performance import (
    BusinessCosts,
    DecayRule,
    evaluate_interval,
    interval_step,
    join_labels,
)
from mlops_ops.core.scoring import Interval

COSTS = BusinessCosts(missed_positive=50.0, false_alarm=10.0)
# 4 positives, 6 negatives; at 0.5: TP 3 (0.9, 0.8, 0.7), FN 1 (0.3), FP 2 (0.6, 0.55), TN 4.
LABELS = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
PROBABILITIES = [0.9, 0.8, 0.7, 0.3, 0.6, 0.55, 0.2, 0.1, 0.05, 0.4]
# Trained at (the run's holdout_* metrics) what the known interval scores, so only a real change fires.
TRAINING = {
    "accuracy": 0.7,
    "precision": 0.6,
    "recall": 0.75,
    "f1": 0.6667,
    "roc_auc": 0.875,
    "log_loss": 0.4,
}


def test_known_confusion_matrix_gives_exact_metrics_and_cost():
    result = evaluate_interval(LABELS, PROBABILITIES, costs=COSTS)
    counts = result.confusion
    assert (counts.true_positives, counts.false_negatives, counts.false_positives, counts.true_negatives) == (
        3,
        1,
        2,
        4,
    )
    assert result.metrics["accuracy"] == pytest.approx(0.7, abs=1e-12)
    assert result.metrics["precision"] == pytest.approx(3 / 5, abs=1e-12)
    assert result.metrics["recall"] == pytest.approx(3 / 4, abs=1e-12)
    assert result.metrics["f1"] == pytest.approx(2 * 0.6 * 0.75 / 1.35, abs=1e-12)
    # 21 of the 24 (positive, negative) pairs are ranked right: 0.3 is below 0.6, 0.55 and 0.4.
    assert result.metrics["roc_auc"] == pytest.approx(21 / 24, abs=1e-12)
    assert result.metrics["positive_rate"] == pytest.approx(0.4)
    assert result.metrics["predicted_positive_rate"] == pytest.approx(0.5)
    assert result.business_cost.total == 1 * 50 + 2 * 10
    assert result.business_cost.per_row == pytest.approx(7.0)
    assert (result.rows, result.labelled_rows, result.coverage, result.notes) == (10, 10, 1.0, ())
    assert json.loads(json.dumps(result.to_dict(), allow_nan=False))["business_cost"]["total"] == 70.0


def test_the_decisions_made_at_scoring_are_judged_not_a_new_threshold():
    # Scored at a 0.65 threshold: 0.6 and 0.55 were not alarms, so no false positive; the cost is the miss.
    made = [1 if p >= 0.65 else 0 for p in PROBABILITIES]
    result = evaluate_interval(LABELS, PROBABILITIES, costs=COSTS, predictions=made)
    assert result.confusion.false_positives == 0 and result.metrics["precision"] == 1.0
    assert result.business_cost.total == 50.0


def test_unlabelled_rows_are_counted_and_left_out():
    labels = [*LABELS, None, float("nan")]
    result = evaluate_interval(labels, [*PROBABILITIES, 0.99, 0.01], costs=COSTS)
    assert (result.rows, result.labelled_rows, result.unlabelled_rows) == (12, 10, 2)
    assert result.coverage == pytest.approx(10 / 12)
    assert result.metrics["accuracy"] == pytest.approx(0.7)


def test_one_class_only_has_no_roc_auc_and_says_why():
    result = evaluate_interval([0, 0, 0], [0.1, 0.7, 0.2], costs=COSTS)
    assert result.metrics["roc_auc"] is None
    assert result.notes == (
        "roc_auc is undefined: all 3 labelled rows are negative",
        "recall is undefined: no labelled row is positive",
    )
    assert result.metrics["recall"] is None and result.metrics["precision"] == 0.0
    assert result.business_cost.total == 10.0


@pytest.mark.parametrize(
    ("labels", "probabilities", "predictions", "words"),
    [
        ([], [], None, "the interval joined no rows"),
        ([None, None], [0.2, 0.3], None, "labels are missing for every one of the 2 predictions"),
        ([1, 0], [0.2, 1.5], None, r"1 probabilities are outside \[0, 1\] or NaN \(e.g. \[1.5\]\)"),
        ([1, 0], [-0.1, 0.5], None, r"outside \[0, 1\]"),
        ([1, 0], [float("nan"), 0.5], None, "or NaN"),
        ([1, 0, 1], [0.2, 0.3], None, r"differ in length: \{'labels': 3, 'probabilities': 2"),
        ([1, 0], [0.2, 0.3], [1], "differ in length"),
        ([1, 2], [0.2, 0.3], None, r"1 labels are not 0, 1 or missing \(e.g. \[2.0\]\)"),
        ([1, 0], [0.2, 0.3], [1, 3], "1 predictions are not 0 or 1"),
        (["yes", "no"], [0.2, 0.3], None, "labels must be numbers"),
    ],
)
def test_bad_input_is_named_never_judged(labels, probabilities, predictions, words):
    with pytest.raises(DataError, match=words):
        evaluate_interval(labels, probabilities, costs=COSTS, predictions=predictions)


RULE = {
    "min_metrics": {"roc_auc": 0.6, "recall": 0.5},
    "max_metrics": {"business_cost_per_row": 12.0},
    "max_drop": {"roc_auc": 0.05, "log_loss": 0.2},
    "min_labelled_rows": 5,
}


def test_a_healthy_interval_keeps_every_check():
    verdict = DecayRule.load(RULE).judge(evaluate_interval(LABELS, PROBABILITIES, costs=COSTS), TRAINING)
    assert verdict.status == "healthy" and not verdict.retrain_requested
    assert len(verdict.checks) == 5 and verdict.violations == ()
    assert verdict.summary() == "healthy: all 5 decay checks kept"


def test_a_degraded_model_requests_a_retrain_naming_each_violated_check():
    flipped = [1 - label for label in LABELS]  # the same scores, the opposite truth
    verdict = DecayRule.load(RULE).judge(evaluate_interval(flipped, PROBABILITIES, costs=COSTS), TRAINING)
    assert verdict.status == "decayed" and verdict.retrain_requested
    reasons = {(r["metric"], r["kind"]): r for r in verdict.to_dict()["reasons"]}
    assert set(reasons) == {
        ("roc_auc", "floor"),
        ("recall", "floor"),
        ("business_cost_per_row", "ceiling"),
        ("roc_auc", "max_drop"),
        ("log_loss", "max_drop"),
    }
    drop = reasons[("roc_auc", "max_drop")]
    assert drop["value"] == pytest.approx(3 / 24) and drop["threshold"] == 0.05
    assert drop["training_value"] == 0.875
    assert "roc_auc dropped 0.7500 from 0.8750 at training to 0.1250 (max drop 0.0500)" == drop["message"]
    assert verdict.message().startswith("retrain requested: 5 of 5 decay checks violated\n  - ")
    assert json.dumps(verdict.to_dict(), allow_nan=False)


def test_a_drop_just_inside_the_limit_does_not_fire_and_one_just_over_does():
    rule = DecayRule.load({"max_drop": {"roc_auc": 0.05}})
    performance = evaluate_interval(LABELS, PROBABILITIES, costs=COSTS)
    assert not rule.judge(performance, {"roc_auc": 0.875 + 0.05}).retrain_requested
    assert rule.judge(performance, {"roc_auc": 0.875 + 0.0501}).retrain_requested


def test_a_check_that_cannot_be_evaluated_is_inconclusive_not_healthy():
    one_class = evaluate_interval([0] * 6, [0.1, 0.2, 0.3, 0.1, 0.2, 0.3], costs=COSTS)
    verdict = DecayRule.load(RULE).judge(one_class, TRAINING)
    assert verdict.status == "inconclusive" and not verdict.retrain_requested
    unevaluated = {(check.metric, check.kind): check.detail for check in verdict.unevaluated}
    assert set(unevaluated) == {("roc_auc", "floor"), ("recall", "floor"), ("roc_auc", "max_drop")}
    assert unevaluated[("recall", "floor")] == "recall is undefined: no labelled row is positive"
    assert unevaluated[("roc_auc", "max_drop")] == "roc_auc is undefined: all 6 labelled rows are negative"
    assert verdict.summary() == "inconclusive: 3 of 5 decay checks not evaluated"
    few = evaluate_interval(LABELS[:4], PROBABILITIES[:4], costs=COSTS)
    assert DecayRule.load({"min_metrics": {"accuracy": 0.1}, "min_labelled_rows": 5}).judge(
        few, {}
    ).status == ("inconclusive")


def test_a_rule_comparing_with_a_metric_training_did_not_log_refuses():
    with pytest.raises(
        DataError, match=r"compares \['log_loss', 'roc_auc'\] with training.*it has \['accuracy'\]"
    ):
        DecayRule.load(RULE).judge(evaluate_interval(LABELS, PROBABILITIES, costs=COSTS), {"accuracy": 0.7})


def test_training_metrics_are_the_runs_holdout_metrics():
    run = {"holdout_roc_auc": 0.7, "holdout_f1": 0.3, "rows_train": 100.0}
    assert DecayRule().training_metrics(run) == {"roc_auc": 0.7, "f1": 0.3}


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"min_metrics": {"rocauc": 0.6}}, r"min_metrics cannot check \['rocauc'\]"),
        ({"min_metrics": {"log_loss": 0.6}}, r"min_metrics cannot check \['log_loss'\]"),
        ({"max_drop": {"business_cost_per_row": 1}}, "max_drop cannot check"),
        ({"max_drop": {"roc_auc": -0.1}}, "max_drop.roc_auc must be >= 0"),
        ({"max_drop": {"roc_auc": "a lot"}}, "max_drop.roc_auc must be a number"),
        ({"min_metrics": ["roc_auc"]}, "min_metrics must map metric names to numbers"),
        (
            {"min_metrics": {"roc_auc": 0.6}, "min_labelled_rows": 0},
            "min_labelled_rows must be a whole number",
        ),
        ({"floors": {}}, r"unknown field\(s\) \['floors'\]"),
        ({}, "the rule checks nothing"),
    ],
)
def test_a_malformed_rule_is_refused_naming_the_field(values, words):
    with pytest.raises(DataError, match=words):
        DecayRule.from_dict(values)


def test_a_rule_and_costs_load_from_yaml(tmp_path):
    """The synthetic model's files (the flights ones: tests/reference/test_flights_config.py)."""
    from tests.unit import synthetic

    files = synthetic.config_files(tmp_path)
    rule = DecayRule.load(str(files["decay-rule"]))
    assert rule.min_metrics == synthetic.DECAY_RULE["min_metrics"]
    assert rule.max_drop == synthetic.DECAY_RULE["max_drop"]
    costs = BusinessCosts.load(str(files["business-costs"]))
    assert costs.missed_positive > costs.false_alarm > 0
    with pytest.raises(DataError, match="cannot read the decay rule"):
        DecayRule.load("/nowhere/decay.yaml")


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"missed_positive": -1, "false_alarm": 1}, "missed_positive must be >= 0"),
        ({"missed_positive": 1, "false_alarm": float("inf")}, "false_alarm must be a finite number"),
        ({"missed_positive": 1}, r"expected exactly \['false_alarm', 'missed_positive'\]"),
    ],
)
def test_bad_costs_are_refused(values, words):
    with pytest.raises(DataError, match=words):
        BusinessCosts.from_dict(values)


def test_join_keeps_one_row_per_prediction_and_marks_missing_labels():
    predictions = pd.DataFrame({"flight": [1, 2, 3], "day": [1, 1, 1], "probability": [0.1, 0.2, 0.3]})
    labels = pd.DataFrame(
        {"flight": pd.Series([2, 1, 9], dtype="int32"), "day": [1, 1, 1], "delayed": [1, 0, 1]}
    )
    joined = join_labels(predictions, labels, ["flight", "day"], "delayed")
    assert joined["flight"].tolist() == [1, 2, 3]
    assert joined["delayed"].tolist()[:2] == [0.0, 1.0] and math.isnan(joined["delayed"].iloc[2])


def test_join_refuses_repeated_keys_and_missing_columns():
    predictions = pd.DataFrame({"flight": [1, 2], "probability": [0.1, 0.2]})
    labels = pd.DataFrame({"flight": [1, 1], "delayed": [1, 0]})
    with pytest.raises(DataError, match=r"1 labels rows repeat a key \['flight'\].*count them twice"):
        join_labels(predictions, labels, ["flight"], "delayed")
    with pytest.raises(DataError, match=r"the labels lack column\(s\) \['delayed'\]"):
        join_labels(predictions, labels.drop(columns="delayed"), ["flight"], "delayed")


def test_interval_step_counts_intervals_of_the_same_length():
    day = Interval.parse("2013-07-01", "2013-07-02")
    assert interval_step(Interval.parse("2013-07-02", "2013-07-03")) == interval_step(day) + 1
    assert interval_step(day) == 15887  # days from 1970-01-01 to 2013-07-01
