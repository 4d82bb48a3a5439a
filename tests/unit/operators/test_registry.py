"""RegisterOperator against a real local MLflow registry, on models trained by TrainOperator from the synthetic
visits of tests/unit/synthetic.py."""

from __future__ import annotations

import json
from typing import Any
from unittest import mock

import pytest
from airflow.sdk.exceptions import AirflowFailException

from mlops_ops.core import lineage
from mlops_ops.core.model_artifacts import verify_registration
from mlops_ops.hooks.mlflow import MlflowHook
from mlops_ops.hooks.trust import TrustHook
from mlops_ops.operators.registry import RegisterOperator, RegistrationRefused
from tests.unit import synthetic
from tests.unit.operators.support import CODE_REVISION, CONN_ID, make_ti, train_and_gate

REVISION = CODE_REVISION  # what the shared ``root`` fixture sets as MLOPS_CODE_REVISION
MODEL = synthetic.MODEL


@pytest.fixture(scope="module")
def first(root) -> tuple[dict[str, Any], dict[str, Any]]:
    """A training of the first Airflow run and its passed gate decision."""
    return train_and_gate(root, "manual__first", synthetic.spec())


@pytest.fixture(scope="module")
def registered(first) -> dict[str, Any]:
    training, decision = first
    return register(training, decision, trigger_reason="new data version").execute(
        context={"ti": make_ti("manual__first", "register")}
    )


def register(training: Any, decision: Any, **kwargs: Any) -> RegisterOperator:
    return RegisterOperator(
        task_id="register", training=training, decision=decision, mlflow_conn_id=CONN_ID, **kwargs
    )


def versions(client, name: str) -> list[Any]:
    return client.search_model_versions(f"name = '{name}'")


# --- registration --------------------------------------------------------------------------------------


def test_registers_version_1_with_the_challenger_alias(registered, first, client):
    training, _ = first

    assert json.loads(json.dumps(registered)) == registered
    assert registered == {
        "model_name": MODEL,
        "version": "1",
        "alias": "challenger",
        "model_uri": f"models:/{MODEL}/1",
        "run_id": training["run_id"],
        "registered_new": True,
        "data_version": "sha256:registry-sample",
        "signed_by": TrustHook().signing_key().key_id,
    }
    assert str(client.get_model_version_by_alias(MODEL, "challenger").version) == "1"
    assert client.get_model_version(MODEL, "1").run_id == training["run_id"]


def test_the_registration_is_signed_and_the_alias_move_recorded(registered, first, client):
    """What was signed is the artifact the training logged, the gate's verdict and the run; the challenger
    move is the newest record of the signed alias log."""
    training, _ = first
    trust = TrustHook()
    pinned = trust.pin(MlflowHook(CONN_ID), MODEL, alias="challenger")
    registration = verify_registration(pinned, trust.verification_keys)
    assert (registration.version, registration.artifact_sha256) == ("1", training["artifact_sha256"])
    assert (registration.run_id, registration.gate_passed) == (training["run_id"], True)
    last = trust.alias_history(MODEL, "challenger")[-1]
    assert (last.to_version, last.move, last.airflow_run) == ("1", "registration", "retrain/manual__first")


def test_the_version_carries_its_lineage(registered, first, client):
    training, decision = first

    tags = client.get_model_version(MODEL, registered["version"]).tags

    assert tags[lineage.TRAINING_RUN] == training["run_id"]
    assert tags[lineage.TRAINING_KEY] == training["training_key"]
    assert tags[lineage.DATA_VERSION] == "sha256:registry-sample"
    assert tags[lineage.ARTIFACT_SHA256] == training["artifact_sha256"]
    assert tags[lineage.SEED] == "42"
    assert tags[lineage.CODE_REVISION] == REVISION
    assert tags[lineage.TRIGGER_REASON] == "new data version"
    assert tags[lineage.GATE_PASSED] == "true"
    assert json.loads(tags[lineage.GATE_SUMMARY]) == {
        check["name"]: check["value"] for check in decision["checks"]
    }
    assert tags[lineage.DAG_ID] == "retrain"
    assert tags[lineage.RUN_ID] == "manual__first"
    assert tags[lineage.TASK_ID] == "register"
    assert tags[lineage.TRY_NUMBER] == "1"


def test_the_registered_version_loads_as_the_trained_model(registered, first):
    import mlflow
    import numpy as np
    import pandas as pd

    from mlops_ops.core.modelspec import ModelSpec
    from mlops_ops.core.training import features_frame

    training, _ = first
    inputs = features_frame(
        pd.read_parquet(training["evaluation_uri"]), ModelSpec.from_dict(synthetic.spec())
    )

    by_version = mlflow.sklearn.load_model(registered["model_uri"]).predict_proba(inputs)
    by_run = mlflow.sklearn.load_model(training["model_uri"]).predict_proba(inputs)

    assert np.array_equal(by_version, by_run)


# --- idempotence ---------------------------------------------------------------------------------------


def test_a_retry_returns_the_same_version_without_registering_again(registered, first, client):
    training, decision = first

    # A retry renders the XCom values from templates, as JSON strings.
    again = register(json.dumps(training), json.dumps(decision)).execute(
        context={"ti": make_ti("manual__first", "register", try_number=2)}
    )

    assert again == {**registered, "registered_new": False}
    assert len(versions(client, MODEL)) == 1


def test_another_run_with_the_same_training_key_reuses_the_version(registered, first, root, client):
    training, _ = first
    second_training, second_decision = train_and_gate(root, "manual__second", synthetic.spec())

    result = register(second_training, second_decision).execute(
        context={"ti": make_ti("manual__second", "register")}
    )

    assert second_training["run_id"] != training["run_id"]
    assert second_training["training_key"] == training["training_key"]
    assert result["version"] == "1"
    assert result["registered_new"] is False
    assert result["run_id"] == second_training["run_id"]
    assert len(versions(client, MODEL)) == 1
    assert client.get_model_version(MODEL, "1").tags[lineage.TRAINING_RUN] == training["run_id"]


def test_another_alias_and_model_name(first, client):
    training, decision = first

    result = register(training, decision, registered_model_name=f"{MODEL}_shadow", alias="shadow").execute(
        context={"ti": make_ti("manual__first", "register")}
    )

    assert (result["model_name"], result["version"], result["alias"]) == (
        f"{MODEL}_shadow",
        "1",
        "shadow",
    )
    aliases = client.get_registered_model(f"{MODEL}_shadow").aliases
    assert {alias: str(version) for alias, version in aliases.items()} == {"shadow": "1"}


# --- refusals ------------------------------------------------------------------------------------------

UNREGISTERED = f"{MODEL}_refused"


def test_registration_refused_is_not_retried():
    assert issubclass(RegistrationRefused, AirflowFailException)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"passed": False}, r"\(passed=False\) does not approve training run"),
        ({"run_id": "another-run"}, "gate decision for run another-run .* does not approve"),
    ],
    ids=["failed_gate", "decision_for_another_run"],
)
def test_a_decision_that_does_not_approve_this_run_is_refused(first, client, change, message):
    training, decision = first

    with pytest.raises(RegistrationRefused, match=message):
        register(training, {**decision, **change}, registered_model_name=UNREGISTERED).execute(
            context={"ti": make_ti("manual__first", "register")}
        )

    assert versions(client, UNREGISTERED) == []


@pytest.mark.parametrize("missing", [None, "", "None"])
def test_no_decision_is_refused_when_a_gate_is_required(first, client, missing):
    training, _ = first

    with pytest.raises(RegistrationRefused, match="no gate decision given"):
        register(training, missing, registered_model_name=UNREGISTERED).execute(
            context={"ti": make_ti("manual__first", "register")}
        )

    assert versions(client, UNREGISTERED) == []


def test_a_training_result_without_its_run_is_refused_naming_it_and_nothing_is_registered(first, client):
    training, decision = first
    incomplete = {key: value for key, value in training.items() if key != "run_id"}

    with pytest.raises(
        RegistrationRefused, match=r"training lacks \['run_id'\]: pass TrainOperator's result"
    ):
        register(incomplete, decision, registered_model_name=UNREGISTERED).execute(
            context={"ti": make_ti("manual__first", "register")}
        )

    assert versions(client, UNREGISTERED) == []


def test_an_unreadable_decision_is_refused(first, client):
    training, _ = first

    with pytest.raises(RegistrationRefused, match="decision is neither a mapping nor JSON"):
        register(training, "not json", registered_model_name=UNREGISTERED).execute(
            context={"ti": make_ti("manual__first", "register")}
        )


def test_without_a_required_gate_the_model_is_registered_without_gate_tags(first, client):
    training, _ = first

    result = register(training, None, require_gate=False, registered_model_name=f"{MODEL}_ungated").execute(
        context={"ti": make_ti("manual__first", "register")}
    )

    tags = client.get_model_version(f"{MODEL}_ungated", result["version"]).tags
    assert result["registered_new"] is True
    assert lineage.GATE_PASSED not in tags
    assert tags[lineage.TRAINING_RUN] == training["run_id"]


def test_trainings_of_unknown_code_are_never_taken_as_identical(first, root, client):
    """Without git or MLOPS_CODE_REVISION two trainings may run different code under the same key."""
    name = f"{MODEL}_unknown_code"
    results = []
    for airflow_run in ("manual__unknown_1", "manual__unknown_2"):
        training, decision = train_and_gate(root, airflow_run, synthetic.spec())
        results.append(
            register(
                {**training, "code_revision": lineage.UNKNOWN_REVISION}, decision, registered_model_name=name
            ).execute(context={"ti": make_ti(airflow_run, "register")})
        )
        assert training["training_key"] == first[0]["training_key"]
    assert [result["registered_new"] for result in results] == [True, True]
    assert len({result["version"] for result in results}) == 2
    assert len(versions(client, name)) == 2


def test_an_unreachable_tracking_server_fails_retryably_naming_it_and_the_model(first):
    import requests

    from mlops_ops.core.services import ServiceUnavailable
    from mlops_ops.hooks.mlflow import MlflowHook

    training, decision = first
    operator = register(training, decision)
    refused = requests.ConnectionError("HTTPConnectionPool(host='mlflow', port=5000): Max retries exceeded")
    refused.__cause__ = ConnectionRefusedError(111, "Connection refused")
    with (
        mock.patch.object(MlflowHook, "search_versions", side_effect=refused),
        pytest.raises(ServiceUnavailable) as raised,
    ):
        operator.execute(context={"ti": make_ti("manual__down", "register")})
    assert str(raised.value).startswith(
        f"MLflow tracking server {operator.hook.endpoint} unreachable while registering {MODEL}: "
        "ConnectionRefusedError: [Errno 111] Connection refused"
    )
    assert not isinstance(raised.value, AirflowFailException)  # Airflow retries it
