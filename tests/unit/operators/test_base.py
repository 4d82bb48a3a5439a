"""The base operator: connections declared once, hooks on first use, refusals failed at once, outages retried."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException

from mlops_ops.core.errors import DataError, ModelIntegrityError
from mlops_ops.core.services import ServiceUnavailable
from mlops_ops.operators.base import RegistryOperator


class Refused(AirflowFailException):
    pass


class Example(RegistryOperator):
    failure = Refused


def _operator() -> Example:
    return Example(task_id="example", mlflow_conn_id="mlflow_team", trust_conn_id="trust_team")


def test_the_connections_are_arguments_and_the_hooks_are_built_on_first_use():
    operator = _operator()
    assert (operator.mlflow_conn_id, operator.trust_conn_id) == ("mlflow_team", "trust_team")
    assert "hook" not in vars(operator) and "trust" not in vars(operator)  # nothing built by the constructor
    assert operator.hook.mlflow_conn_id == "mlflow_team" and operator.hook is operator.hook
    assert operator.trust.trust_conn_id == "trust_team"


@pytest.mark.parametrize(
    "error", [DataError("column 'x' is text"), ModelIntegrityError("v3 is unsigned"), KeyError("run_id")]
)
def test_refusals_fail_at_once_naming_what_the_task_was_doing(error):
    with pytest.raises(Refused) as raised:
        with _operator().failing("cannot evaluate the challenger", KeyError):
            raise error
    assert str(raised.value).startswith("cannot evaluate the challenger: ")
    assert raised.value.__cause__ is error


@pytest.mark.parametrize(
    "error",
    [
        ServiceUnavailable(
            "MLflow tracking server", "http://mlflow:5000", "registering m", ConnectionError()
        ),
        KeyError("run_id"),  # not named in `also`: a bug, not a refusal
        AirflowFailException("the operator's own message"),
        TimeoutError("slow"),
    ],
)
def test_outages_bugs_and_the_operators_own_failures_pass_through_unchanged(error):
    with pytest.raises(type(error)) as raised:
        with _operator().failing("scoring"):
            raise error
    assert raised.value is error
