"""The typed step results: one XCom form each, and a parser that names what is missing or malformed."""

from __future__ import annotations

import json

import pytest

from mlops_ops.core.contracts import (
    FeatureSetResult,
    GateVerdict,
    RegisteredVersion,
    TrainingResult,
    as_mapping,
)
from mlops_ops.core.errors import DataError

TRAINING = {
    "run_id": "r1",
    "model_uri": "runs:/r1/model",
    "model_name": "houses",
    "evaluation_uri": "/data/evaluation/houses/r1.parquet",
    "metrics": {"rmse": 12.5},
    "artifact_sha256": "sha256:ab",
    "seed": 7,
}


@pytest.mark.parametrize("form", [dict, json.dumps, repr])
def test_a_result_is_read_from_the_dict_its_json_or_the_repr_a_template_renders(form):
    training = TrainingResult.from_xcom(form(TRAINING), "training")
    assert (training.run_id, training.metrics, training.seed) == ("r1", {"rmse": 12.5}, 7)
    assert TrainingResult.from_xcom(training.to_xcom(), "training") == training


def test_keys_a_result_does_not_know_are_ignored():
    training = TrainingResult.from_xcom({**TRAINING, "added_by_a_newer_producer": 1}, "training")
    assert "added_by_a_newer_producer" not in training.to_xcom()


def test_missing_keys_are_named_with_the_argument_and_the_step_that_makes_them():
    with pytest.raises(
        DataError, match=r"training lacks \['run_id', 'evaluation_uri'\]: pass TrainOperator's"
    ):
        TrainingResult.from_xcom(
            {**TRAINING, "run_id": "", "evaluation_uri": None}, "training", require=("evaluation_uri",)
        )
    # Registration does not read the held-out rows: without them it is a training result still.
    assert not TrainingResult.from_xcom({**TRAINING, "evaluation_uri": None}, "training").evaluation_uri
    with pytest.raises(
        DataError, match=r"decision lacks \['passed', 'run_id'\]: pass EvaluateGateOperator's"
    ):
        GateVerdict.from_xcom({"checks": []}, "decision")


def test_a_value_that_is_no_mapping_is_refused_quoting_only_its_start():
    with pytest.raises(DataError) as refused:
        as_mapping("x" * 5000, "training")
    assert "training is neither a mapping nor JSON" in str(refused.value)
    assert len(str(refused.value)) < 300
    with pytest.raises(DataError, match="training must be a mapping .* got list"):
        as_mapping([1, 2], "training")


def test_a_verdict_approves_only_the_run_it_judged_and_only_when_it_passed():
    training = TrainingResult.from_xcom(TRAINING, "training")
    assert GateVerdict(passed=True, run_id="r1").approves(training)
    assert not GateVerdict(passed=True, run_id="r0").approves(training)
    assert not GateVerdict(passed=False, run_id="r1").approves(training)
    assert not GateVerdict.from_xcom({"passed": "yes", "run_id": "r1"}, "decision").approves(training)


def test_a_registration_carries_its_asset_extra():
    registered = RegisteredVersion(
        model_name="houses", version="3", alias="challenger", model_uri="models:/houses/3", run_id="r1"
    )
    assert registered.asset_extra() == {
        "model_name": "houses",
        "version": "3",
        "alias": "challenger",
        "model_uri": "models:/houses/3",
    }


def test_a_feature_set_keeps_its_counts():
    result = FeatureSetResult.from_xcom(
        {"uri": "/fs.parquet", "feature_service": "house_features", "fingerprint": "f1", "rows_out": 10},
        "feature_set",
    )
    assert (result.rows_out, result.missing) == (10, {})
