"""EvaluateGateOperator against a real local MLflow, on a model trained by TrainOperator from the synthetic visits
of tests/unit/synthetic.py."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from mlops_ops.core import lineage
from mlops_ops.core.gate import GateCheck
from mlops_ops.operators.gate import EvaluateGateOperator, GateFailed
from mlops_ops.operators.training import TrainOperator
from tests.trust_support import record_alias, sign_version
from tests.unit import synthetic
from tests.unit.operators.support import CONN_ID, make_ti

THIS_MODULE = "tests.unit.operators.test_gate"


# --- behavioural checks referenced as "tests.unit.operators.test_gate:..." ------------------------------


def check_that_raises(model: Any, frame: Any, spec: Any) -> GateCheck:
    raise RuntimeError("boom on purpose")


def check_that_passes(model: Any, frame: Any, spec: Any) -> GateCheck:
    return GateCheck("held-out rows are labelled", bool(frame[spec.target].notna().all()), float(len(frame)))


def check_returning_true(model: Any, frame: Any, spec: Any) -> bool:
    return True


def check_returning_a_number(model: Any, frame: Any, spec: Any) -> float:
    return 0.9


# --- fixtures ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(root, files) -> dict[str, Any]:
    operator = TrainOperator(
        task_id="train",
        model_spec=synthetic.spec(),
        data_version={"fingerprint": "sha256:gate-sample", "files": files},
        evaluation_root=str(root / "eval"),
        mlflow_conn_id=CONN_ID,
    )
    return operator.execute(context={"ti": make_ti("manual__gate", "train")})


def gate(trained: dict[str, Any], policy: dict[str, Any] | str, **kwargs: Any) -> EvaluateGateOperator:
    return EvaluateGateOperator(
        task_id="evaluate_gate",
        training=trained,
        model_spec=synthetic.spec(),
        policy=policy,
        mlflow_conn_id=CONN_ID,
        **kwargs,
    )


def decision_file(client, run_id: str) -> dict[str, Any]:
    import mlflow

    return mlflow.artifacts.load_dict(f"{client.get_run(run_id).info.artifact_uri}/gate/decision.json")


# --- first model ---------------------------------------------------------------------------------------


def test_first_model_with_accept_passes_and_records_the_decision(trained, client):
    ti = make_ti("manual__gate", "evaluate_gate")

    result = gate(trained, {"min_metrics": {"roc_auc": 0.5}, "first_model": "accept"}).execute(
        context={"ti": ti}
    )

    assert json.loads(json.dumps(result, allow_nan=False)) == result
    assert result["passed"] is True
    assert result["run_id"] == trained["run_id"]
    assert [check["name"] for check in result["checks"]] == ["roc_auc >= floor", "first model"]
    assert result["champion_version"] is None and result["champion_metrics"] is None
    # Scored again from the logged model on the saved held-out rows: the same numbers as at training.
    assert result["challenger_metrics"] == pytest.approx(trained["metrics"])
    run = client.get_run(trained["run_id"])
    assert run.data.tags[lineage.GATE_PASSED] == "true"
    assert run.data.tags[lineage.GATE_SUMMARY] == "gate passed against no champion"
    assert run.data.metrics["gate_challenger_roc_auc"] == pytest.approx(trained["metrics"]["roc_auc"])
    assert decision_file(client, trained["run_id"]) == result


def test_first_model_with_reject_fails_after_saving_the_evidence(trained, client):
    ti = make_ti("manual__gate", "evaluate_gate")

    with pytest.raises(GateFailed) as failure:
        gate(trained, {"min_metrics": {"roc_auc": 0.5}, "first_model": "reject"}).execute(context={"ti": ti})

    message = str(failure.value)
    assert "failed 1 of 2 checks against no champion" in message
    assert "first model - no champion yet; first-model policy is 'reject'" in message
    assert "roc_auc >= floor" not in message  # a passing check is not listed
    pushed = ti.pushed["return_value"]
    assert pushed["passed"] is False and pushed["run_id"] == trained["run_id"]
    assert client.get_run(trained["run_id"]).data.tags[lineage.GATE_PASSED] == "false"
    assert decision_file(client, trained["run_id"]) == pushed


def test_gate_failed_is_not_retried():
    assert issubclass(GateFailed, AirflowFailException)


def test_a_failing_floor_names_metric_value_and_threshold(trained):
    ti = make_ti("manual__gate", "evaluate_gate")

    with pytest.raises(GateFailed) as failure:
        gate(trained, {"min_metrics": {"roc_auc": 0.99}, "max_metrics": {"log_loss": 0.01}}).execute(
            context={"ti": ti}
        )

    roc_auc, log_loss = trained["metrics"]["roc_auc"], trained["metrics"]["log_loss"]
    assert f"roc_auc >= floor: {roc_auc:.4f} (must be >= 0.9900)" in str(failure.value)
    assert f"log_loss <= ceiling: {log_loss:.4f} (must be <= 0.0100)" in str(failure.value)


# --- against a champion --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def champion(trained, client) -> str:
    """The trained model registered as v1 of ``shop_visit_champion`` with alias ``champion``."""
    name = f"{synthetic.MODEL}_champion"
    client.create_registered_model(name)
    version = client.create_model_version(name, trained["model_uri"], run_id=trained["run_id"])
    client.set_registered_model_alias(name, "champion", version.version)
    # What RegisterOperator and PromoteOperator would have left: a signed version, a recorded move.
    sign_version(client, name, version.version)
    record_alias(name, "champion", version.version)
    return name


def test_a_challenger_equal_to_the_champion_fails_a_required_improvement(trained, champion):
    ti = make_ti("manual__gate", "evaluate_gate")
    policy = {"max_regression": {"roc_auc": 0.0}, "min_improvement": {"roc_auc": 0.5}}

    with pytest.raises(GateFailed) as failure:
        gate(trained, policy, registered_model_name=champion).execute(context={"ti": ti})

    message = str(failure.value)
    assert "failed 1 of 2 checks against champion v1" in message
    assert "roc_auc improvement vs champion: 0.0000 (must be >= 0.5000)" in message
    assert "regression" not in message
    decision = ti.pushed["return_value"]
    assert decision["champion_version"] == "1"
    assert decision["champion_metrics"] == pytest.approx(decision["challenger_metrics"])


def test_a_challenger_equal_to_the_champion_passes_a_regression_guard(trained, champion, client):
    result = gate(trained, {"max_regression": {"roc_auc": 0.0}}, registered_model_name=champion).execute(
        context={"ti": make_ti("manual__gate", "evaluate_gate")}
    )

    assert result["passed"] is True
    assert [check["name"] for check in result["checks"]] == ["roc_auc regression vs champion"]
    assert client.get_run(trained["run_id"]).data.metrics["gate_champion_roc_auc"] == pytest.approx(
        trained["metrics"]["roc_auc"]
    )


def test_another_champion_alias_that_does_not_exist_means_first_model(trained, champion):
    result = gate(
        trained, {"first_model": "accept"}, registered_model_name=champion, champion_alias="gold"
    ).execute(context={"ti": make_ti("manual__gate", "evaluate_gate")})

    assert [check["name"] for check in result["checks"]] == ["first model"]


# --- behavioural checks --------------------------------------------------------------------------------


def test_a_behavioural_check_that_raises_is_a_failed_check_not_a_crash(trained):
    ti = make_ti("manual__gate", "evaluate_gate")
    policy = {
        "checks": [
            f"{THIS_MODULE}:check_that_raises",
            f"{THIS_MODULE}:check_that_passes",
            f"{THIS_MODULE}:check_returning_true",
            f"{THIS_MODULE}:check_returning_a_number",
            f"{THIS_MODULE}:no_such_check",
        ]
    }

    with pytest.raises(GateFailed) as failure:
        gate(trained, policy).execute(context={"ti": ti})

    checks = {check["name"]: check for check in ti.pushed["return_value"]["checks"]}
    assert checks[f"{THIS_MODULE}:check_that_raises"]["detail"] == "raised RuntimeError: boom on purpose"
    assert checks["held-out rows are labelled"]["passed"] is True
    assert checks["held-out rows are labelled"]["value"] == trained["split"]["rows_evaluation"]
    assert checks[f"{THIS_MODULE}:check_returning_true"]["passed"] is True
    assert checks[f"{THIS_MODULE}:check_returning_a_number"]["detail"] == "returned float, not a GateCheck"
    assert checks[f"{THIS_MODULE}:no_such_check"]["passed"] is False
    assert "raised ValueError" in checks[f"{THIS_MODULE}:no_such_check"]["detail"]
    message = str(failure.value)
    assert "failed 3 of 6 checks" in message
    assert f"{THIS_MODULE}:check_that_raises - raised RuntimeError: boom on purpose" in message


def test_a_policy_file_is_read_from_its_relative_path_and_runs_its_checks(trained, tmp_path, monkeypatch):
    ti = make_ti("manual__gate", "evaluate_gate")
    synthetic.config_files(tmp_path / "config")
    monkeypatch.chdir(tmp_path)

    try:
        decision = gate(trained, "config/gate.yaml").execute(context={"ti": ti})
    except GateFailed:
        decision = ti.pushed["return_value"]

    names = [check["name"] for check in decision["checks"]]
    assert names == [
        "roc_auc >= floor",
        "log_loss <= ceiling",
        "first model",
        "roc_auc in every store",
        "mean probability vs purchase rate",
    ]
    assert decision["passed"] == all(check["passed"] for check in decision["checks"])


# --- unusable inputs -----------------------------------------------------------------------------------


def test_a_training_result_without_evaluation_rows_fails_clearly(trained):
    incomplete = {key: value for key, value in trained.items() if key != "evaluation_uri"}

    with pytest.raises(
        GateFailed,
        match=r"cannot evaluate the challenger: training lacks \['evaluation_uri'\]: pass TrainOperator's result",
    ):
        gate(incomplete, {}).execute(context={"ti": make_ti("manual__gate", "evaluate_gate")})


def test_a_bad_policy_fails_clearly(trained):
    with pytest.raises(GateFailed, match="unknown field"):
        gate(trained, {"min_metric": {"roc_auc": 0.5}}).execute(context={"ti": make_ti("manual__gate", "g")})


def test_the_training_result_may_arrive_as_json(trained):
    result = gate(json.dumps(trained), {"first_model": "accept"}).execute(
        context={"ti": make_ti("manual__gate", "evaluate_gate")}
    )

    assert result["passed"] is True and result["run_id"] == trained["run_id"]


@pytest.mark.parametrize(
    "policy, words",
    [
        ({"min_metrics": {"auc": 0.5}}, "'auc'"),
        ({"max_regression": {"roc_auc": "a lot"}}, "max_regression"),
        (
            {"max_metrics": {"rmse": 3.0}},
            "metric key(s) ['rmse'] are not measured for a binary model; available: accuracy, brier_score, f1, "
            "log_loss, precision, recall, roc_auc",
        ),
        ({"min_metrics": {"log_loss": 0.3}}, "min_metrics.log_loss is a floor on a lower-is-better metric"),
    ],
    ids=["metric nobody computes", "non-numeric threshold", "metric of another task", "floor on a loss"],
)
def test_a_policy_that_cannot_be_applied_fails_without_retry(trained, policy, words):
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match=re.escape(words)):
        gate(trained, policy).execute(context={"ti": make_ti("manual__gate", "evaluate_gate")})
