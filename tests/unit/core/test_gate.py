"""Tests of the pure evaluation gate: thresholds, champion comparisons, the first-model policy, evidence."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlops_ops.core.errors import DataError
from mlops_ops.core.gate import TOLERANCE, GateCheck, GateDecision, GatePolicy, decide

CHAMPION = {"roc_auc": 0.70, "log_loss": 0.50}


def check_named(decision: GateDecision, name: str) -> GateCheck:
    matches = [check for check in decision.checks if check.name == name]
    assert len(matches) == 1, [check.name for check in decision.checks]
    return matches[0]


# --- absolute floors and ceilings ---------------------------------------------------------------------


@pytest.mark.parametrize(("value", "passed"), [(0.59, False), (0.60, True), (0.61, True)])
def test_floor_on_a_higher_is_better_metric(value, passed):
    decision = decide({"roc_auc": value}, None, GatePolicy(min_metrics={"roc_auc": 0.60}))

    check = check_named(decision, "roc_auc >= floor")
    assert check.passed is passed
    assert (check.value, check.threshold, check.comparison) == (value, 0.60, ">=")
    assert decision.passed is passed  # the first-model check passes under the default "accept"


@pytest.mark.parametrize(("value", "passed"), [(0.61, False), (0.60, True), (0.40, True)])
def test_ceiling_on_a_lower_is_better_metric(value, passed):
    decision = decide({"log_loss": value}, None, GatePolicy(max_metrics={"log_loss": 0.60}))

    check = check_named(decision, "log_loss <= ceiling")
    assert check.passed is passed
    assert (check.value, check.threshold, check.comparison) == (value, 0.60, "<=")
    assert decision.passed is passed


# --- against the champion ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("challenger_auc", "passed"),
    [(0.71, True), (0.70, True), (0.696, True), (0.694, False)],
)
def test_max_regression_on_a_higher_is_better_metric(challenger_auc, passed):
    policy = GatePolicy(max_regression={"roc_auc": 0.005})

    decision = decide({**CHAMPION, "roc_auc": challenger_auc}, CHAMPION, policy, champion_version="3")

    check = check_named(decision, "roc_auc regression vs champion")
    assert check.passed is passed
    assert check.value == pytest.approx(challenger_auc - 0.70)
    assert check.threshold == -0.005
    assert decision.passed is passed
    assert decision.champion_version == "3"


@pytest.mark.parametrize(
    ("challenger_loss", "passed"),
    # log_loss is lower-is-better: a higher loss is the worsening that max_regression limits.
    [(0.40, True), (0.50, True), (0.505, True), (0.52, False)],
)
def test_max_regression_on_a_lower_is_better_metric(challenger_loss, passed):
    policy = GatePolicy(max_regression={"log_loss": 0.01})

    decision = decide({**CHAMPION, "log_loss": challenger_loss}, CHAMPION, policy)

    check = check_named(decision, "log_loss regression vs champion")
    assert check.passed is passed
    assert check.value == pytest.approx(0.50 - challenger_loss)  # positive = better
    assert decision.passed is passed


@pytest.mark.parametrize(("challenger_auc", "passed"), [(0.72, True), (0.715, False), (0.70, False)])
def test_min_improvement_on_a_higher_is_better_metric(challenger_auc, passed):
    policy = GatePolicy(min_improvement={"roc_auc": 0.02})

    decision = decide({**CHAMPION, "roc_auc": challenger_auc}, CHAMPION, policy)

    check = check_named(decision, "roc_auc improvement vs champion")
    assert check.passed is passed
    assert check.threshold == 0.02
    assert decision.passed is passed


@pytest.mark.parametrize(("challenger_loss", "passed"), [(0.44, True), (0.46, False), (0.55, False)])
def test_min_improvement_on_a_lower_is_better_metric(challenger_loss, passed):
    policy = GatePolicy(min_improvement={"log_loss": 0.05})

    decision = decide({**CHAMPION, "log_loss": challenger_loss}, CHAMPION, policy)

    check = check_named(decision, "log_loss improvement vs champion")
    assert check.passed is passed
    assert check.value == pytest.approx(0.50 - challenger_loss)
    assert decision.passed is passed


def test_champion_checks_are_skipped_without_a_champion_and_first_model_checks_without_one():
    policy = GatePolicy(max_regression={"roc_auc": 0.0}, min_improvement={"roc_auc": 0.1})

    first = decide(CHAMPION, None, policy)
    against = decide(CHAMPION, CHAMPION, policy)

    assert [check.name for check in first.checks] == ["first model"]
    assert [check.name for check in against.checks] == [
        "roc_auc regression vs champion",
        "roc_auc improvement vs champion",
    ]
    assert first.champion_metrics is None
    assert against.champion_metrics == CHAMPION


# --- first model ---------------------------------------------------------------------------------------


def test_first_model_accept_lets_the_absolute_checks_decide():
    policy = GatePolicy(min_metrics={"roc_auc": 0.6}, first_model="accept")

    assert decide({"roc_auc": 0.65}, None, policy).passed is True
    assert decide({"roc_auc": 0.55}, None, policy).passed is False


def test_first_model_reject_refuses_even_a_good_model():
    decision = decide({"roc_auc": 0.99}, None, GatePolicy(min_metrics={"roc_auc": 0.6}, first_model="reject"))

    assert decision.passed is False
    assert [check.name for check in decision.failures] == ["first model"]
    assert "'reject'" in decision.failures[0].detail
    assert "no champion" in decision.summary()


# --- NaN and missing metrics ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "policy",
    [
        GatePolicy(min_metrics={"roc_auc": 0.0}),
        GatePolicy(max_metrics={"roc_auc": 1.0}),
        GatePolicy(max_regression={"roc_auc": 1.0}),
        GatePolicy(min_improvement={"roc_auc": -1.0}),
    ],
    ids=["floor", "ceiling", "max_regression", "min_improvement"],
)
def test_a_nan_metric_fails_every_check_it_takes_part_in(policy):
    champion = CHAMPION if policy.max_regression or policy.min_improvement else None

    decision = decide({"roc_auc": float("nan"), "log_loss": 0.5}, champion, policy)

    metric_checks = [check for check in decision.checks if check.name.startswith("roc_auc")]
    assert len(metric_checks) == 1
    assert metric_checks[0].passed is False
    assert decision.passed is False


@pytest.mark.parametrize(
    ("policy", "champion", "who"),
    [
        (GatePolicy(min_metrics={"f1": 0.5}), None, "challenger"),
        (GatePolicy(max_metrics={"f1": 0.5}), None, "challenger"),
        (GatePolicy(max_regression={"f1": 0.1}), CHAMPION, "challenger"),
        (GatePolicy(min_improvement={"roc_auc": 0.0}), {"log_loss": 0.5}, "champion"),
    ],
)
def test_a_missing_metric_is_a_data_error_naming_it(policy, champion, who):
    challenger = {"roc_auc": 0.7, "log_loss": 0.5}
    metric = next(
        iter({**policy.min_metrics, **policy.max_metrics, **policy.max_regression, **policy.min_improvement})
    )

    with pytest.raises(DataError, match=f"metric '{metric}' of the {who}"):
        decide(challenger, champion, policy)


# --- extra checks and the failure message --------------------------------------------------------------


def test_extra_checks_take_part_in_the_verdict():
    failing = GateCheck("roc_auc at every origin", False, 0.49, 0.52, ">=", "worst origin EWR")
    passing = GateCheck("calibrated", True)

    decision = decide({"roc_auc": 0.9}, None, GatePolicy(), extra_checks=(passing, failing))

    assert decision.passed is False
    assert decision.failures == (failing,)
    assert decision.checks[-2:] == (passing, failing)


def test_failure_message_lists_every_failing_check_with_value_and_threshold():
    policy = GatePolicy(
        min_metrics={"roc_auc": 0.75},
        max_metrics={"log_loss": 0.45},
        max_regression={"roc_auc": 0.005},
        min_improvement={"log_loss": 0.0},
    )
    challenger = {"roc_auc": 0.68, "log_loss": 0.52}
    extra = GateCheck("roc_auc at every origin", False, 0.49, 0.52, ">=", "worst origin EWR")

    decision = decide(challenger, CHAMPION, policy, champion_version="7", extra_checks=(extra,))
    message = decision.failure_message()

    assert decision.passed is False
    assert len(decision.failures) == 5
    lines = message.splitlines()
    assert lines[0] == "The challenger gate failed 5 of 5 checks against champion v7:"
    assert lines[1:] == [
        "  - roc_auc >= floor: 0.6800 (must be >= 0.7500)",
        "  - log_loss <= ceiling: 0.5200 (must be <= 0.4500)",
        "  - roc_auc regression vs champion: -0.0200 (must be >= -0.0050) - challenger 0.6800, champion 0.7000",
        "  - log_loss improvement vs champion: -0.0200 (must be >= 0.0000) - challenger 0.5200, champion 0.5000",
        "  - roc_auc at every origin: 0.4900 (must be >= 0.5200) - worst origin EWR",
    ]


def test_failure_message_leaves_out_passing_checks():
    policy = GatePolicy(min_metrics={"roc_auc": 0.6, "f1": 0.9})

    message = decide({"roc_auc": 0.7, "f1": 0.3}, None, policy).failure_message()

    assert "f1 >= floor" in message
    assert "roc_auc" not in message
    assert "first model" not in message


def test_summary_of_a_passing_gate():
    decision = decide(CHAMPION, CHAMPION, GatePolicy(max_regression={"roc_auc": 0.0}), champion_version="2")

    assert decision.summary() == "gate passed against champion v2"


# --- serialisation -------------------------------------------------------------------------------------


def test_decision_to_dict_is_json_safe_with_nan_as_none():
    policy = GatePolicy(min_metrics={"roc_auc": 0.6}, max_regression={"roc_auc": 0.01}, checks=("a.b:c",))
    challenger = {"roc_auc": float("nan"), "log_loss": float("inf"), "rows": 100.0}

    values = decide(challenger, CHAMPION, policy, champion_version="1").to_dict()
    round_trip = json.loads(json.dumps(values, allow_nan=False))

    assert round_trip == values
    assert values["passed"] is False
    assert values["challenger_metrics"] == {"roc_auc": None, "log_loss": None, "rows": 100.0}
    assert values["champion_metrics"] == CHAMPION
    assert values["checks"][0] == {
        "name": "roc_auc >= floor",
        "passed": False,
        "value": None,
        "threshold": 0.6,
        "comparison": ">=",
        "detail": "",
    }
    assert values["policy"]["checks"] == ["a.b:c"]
    assert values["champion_version"] == "1"


def test_policy_to_dict_round_trips_through_from_dict():
    policy = GatePolicy(
        min_metrics={"roc_auc": 0.6},
        max_metrics={"log_loss": 0.7},
        max_regression={"roc_auc": 0.01},
        min_improvement={"log_loss": 0.0},
        first_model="reject",
        checks=("tests.unit.synthetic:every_store_better_than_chance",),
    )

    assert GatePolicy.from_dict(json.loads(json.dumps(policy.to_dict()))) == policy


# --- GatePolicy.from_dict / load -----------------------------------------------------------------------


def test_from_dict_converts_thresholds_to_floats_and_checks_to_a_tuple():
    policy = GatePolicy.from_dict(
        {
            "min_metrics": {"roc_auc": "0.6"},
            "max_metrics": {"log_loss": 1},
            "max_regression": None,
            "checks": ["m:f"],
        }
    )

    assert policy.min_metrics == {"roc_auc": 0.6}
    assert policy.max_metrics == {"log_loss": 1.0}
    assert policy.max_regression == {}
    assert policy.checks == ("m:f",)
    assert policy.first_model == "accept"


def test_from_dict_rejects_an_unknown_field_naming_it_and_the_origin():
    with pytest.raises(DataError, match=r"gate\.yaml: unknown field\(s\) \['min_metric'\]"):
        GatePolicy.from_dict({"min_metric": {"roc_auc": 0.6}}, origin="gate.yaml")


@pytest.mark.parametrize("value", ["maybe", None, True])
def test_from_dict_rejects_a_bad_first_model_policy(value):
    with pytest.raises(DataError, match="first_model must be 'accept' or 'reject'"):
        GatePolicy.from_dict({"first_model": value})


@pytest.mark.parametrize(
    ("field", "thresholds"),
    [
        ("min_metrics", {"roc_auc": "high"}),
        ("max_metrics", {"log_loss": None}),
        ("max_regression", {"roc_auc": [0.1]}),
        ("min_improvement", ["roc_auc"]),
        ("min_metrics", "roc_auc"),
    ],
)
def test_from_dict_rejects_a_non_numeric_threshold_naming_the_field(field, thresholds):
    with pytest.raises(DataError, match=f"{field} must map metric names to numbers"):
        GatePolicy.from_dict({field: thresholds})


def test_from_dict_rejects_checks_given_as_a_single_string():
    # A string would otherwise become one "check" per character.
    with pytest.raises(DataError, match="checks must be a list"):
        GatePolicy.from_dict({"checks": "tests.unit.synthetic:every_store_better_than_chance"})


def test_load_reads_a_policy_file(tmp_path):
    """The synthetic model's policy file (the flights one: tests/reference/test_flights_config.py)."""
    from tests.unit import synthetic

    path = synthetic.config_files(tmp_path)["gate-policy"]
    values = synthetic.GATE_POLICY

    policy = GatePolicy.load(str(path))

    assert policy.min_metrics == {"roc_auc": values["min_metrics"]["roc_auc"]}
    assert policy.max_metrics == {"log_loss": values["max_metrics"]["log_loss"]}
    assert policy.max_regression == {"roc_auc": values["max_regression"]["roc_auc"]}
    assert policy.first_model == values["first_model"]
    assert policy.checks == tuple(values["checks"])
    assert all(":" in check for check in policy.checks)
    assert GatePolicy.load(policy) is policy
    assert GatePolicy.load(policy.to_dict()) == policy


def test_load_of_a_missing_file_is_a_data_error_naming_it(tmp_path):
    missing = tmp_path / "nope.yaml"

    with pytest.raises(DataError, match="nope.yaml: cannot read the gate policy"):
        GatePolicy.load(str(missing))


# --- properties ----------------------------------------------------------------------------------------

METRICS = ("roc_auc", "f1", "log_loss", "brier_score")
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
metric_values = st.fixed_dictionaries({name: st.one_of(finite, st.just(float("nan"))) for name in METRICS})
thresholds = st.dictionaries(st.sampled_from(METRICS), finite, max_size=3)
non_negative = st.dictionaries(st.sampled_from(METRICS), st.floats(0, 1e6), min_size=1, max_size=4)
# Above the gate's rounding tolerance: a required gain smaller than that is treated as zero.
positive = st.dictionaries(st.sampled_from(METRICS), st.floats(TOLERANCE * 10, 1e6), min_size=1, max_size=4)


@given(
    challenger=metric_values,
    champion=st.one_of(st.none(), metric_values),
    min_metrics=thresholds,
    max_metrics=thresholds,
    max_regression=thresholds,
    min_improvement=thresholds,
    first_model=st.sampled_from(["accept", "reject"]),
)
def test_property_passed_is_the_conjunction_of_the_checks(
    challenger, champion, min_metrics, max_metrics, max_regression, min_improvement, first_model
):
    policy = GatePolicy(min_metrics, max_metrics, max_regression, min_improvement, first_model)

    decision = decide(challenger, champion, policy)

    assert decision.passed == all(check.passed for check in decision.checks)
    assert decision.failures == tuple(check for check in decision.checks if not check.passed)
    expected_checks = len(min_metrics) + len(max_metrics)
    expected_checks += 1 if champion is None else len(max_regression) + len(min_improvement)
    assert len(decision.checks) == expected_checks
    json.dumps(decision.to_dict(), allow_nan=False)


@given(metrics=st.fixed_dictionaries({name: finite for name in METRICS}), allowed=non_negative)
def test_property_a_copy_of_the_champion_passes_any_non_negative_max_regression(metrics, allowed):
    decision = decide(dict(metrics), dict(metrics), GatePolicy(max_regression=allowed))

    assert decision.passed, decision.failure_message()
    assert all(check.value == 0 for check in decision.checks)


@given(metrics=st.fixed_dictionaries({name: finite for name in METRICS}), required=positive)
def test_property_a_copy_of_the_champion_fails_any_positive_min_improvement(metrics, required):
    decision = decide(dict(metrics), dict(metrics), GatePolicy(min_improvement=required))

    assert not decision.passed
    assert len(decision.failures) == len(required)
    assert not math.isnan(decision.failures[0].value)
