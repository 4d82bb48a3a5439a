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


def test_the_storage_connection_keeps_its_former_name_aws_conn_id_with_a_warning():
    from airflow.exceptions import AirflowProviderDeprecationWarning

    from mlops_ops.operators.scoring import PublishPredictionsOperator
    from mlops_ops.operators.validation import DataValidationOperator

    def validation(**kwargs):
        return DataValidationOperator(task_id="v", data_version={}, suite="s.json", **kwargs)

    assert validation().storage_conn_id == "aws_default"
    assert validation(storage_conn_id="azure_lake").storage_conn_id == "azure_lake"
    with pytest.warns(
        AirflowProviderDeprecationWarning, match="aws_conn_id is deprecated: pass storage_conn_id"
    ):
        assert validation(aws_conn_id="landing").storage_conn_id == "landing"
    with pytest.warns(AirflowProviderDeprecationWarning):
        scorer = PublishPredictionsOperator(
            task_id="p", model_name="m", interval_start="a", interval_end="b", aws_conn_id=None
        )
    assert scorer.storage_conn_id is None
    with pytest.raises(ValueError, match="pass storage_conn_id only: aws_conn_id is its former name"):
        validation(storage_conn_id="azure_lake", aws_conn_id="landing")


def test_the_storage_connection_can_come_from_the_dags_default_args():
    from datetime import datetime

    from airflow.sdk import DAG

    from mlops_ops.operators.validation import DataValidationOperator

    with DAG(
        "d", schedule=None, start_date=datetime(2024, 1, 1), default_args={"storage_conn_id": "gcs_lake"}
    ):
        operator = DataValidationOperator(task_id="v", data_version={}, suite="s.json")
    assert operator.storage_conn_id == "gcs_lake"
