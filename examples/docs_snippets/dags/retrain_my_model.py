"""A team's retrain DAG, as the operators' overview page shows it: wait for a new data version, validate it,
train, gate the challenger against the champion, register it. Parsed by the tests, not run (it reads an S3
bucket and a team's ``include/orders/`` configuration)."""

from __future__ import annotations

from datetime import datetime

# --8<-- [start:retrain]
from airflow.sdk import dag

from mlops_ops.assets import model_alias_asset
from mlops_ops.operators.gate import EvaluateGateOperator
from mlops_ops.operators.registry import RegisterOperator
from mlops_ops.operators.training import TrainOperator
from mlops_ops.operators.validation import DataValidationOperator
from mlops_ops.sensors.data_version import DataVersionSensor


@dag(
    schedule="@weekly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["orders"],
    default_args={"owner": "orders-team", "retries": 2},
)
def retrain_my_model():
    """Retrain orders_churn on each new data version; register a challenger that passed its gate."""
    # --8<-- [start:data]
    data = DataVersionSensor(
        task_id="wait_for_data",
        source="s3://my-bucket/landing/orders/",  # or a folder/glob, a Delta table, a .dvc file
        registered_model_name="orders_churn",  # wait for data the champion was not trained on
        timeout=6 * 3600,
        soft_fail=True,  # skip the run when no new data came
    )
    validate = DataValidationOperator(
        task_id="validate", data_version=data.output, suite="include/orders/expectations.json"
    )
    # --8<-- [end:data]
    train = TrainOperator(
        task_id="train", model_spec="include/orders/model_spec.yaml", data_version=data.output, gpu=True
    )
    gate = EvaluateGateOperator(
        task_id="gate",
        training=train.output,
        model_spec="include/orders/model_spec.yaml",
        policy="include/orders/gate.yaml",
    )
    register = RegisterOperator(
        task_id="register",
        training=train.output,
        decision=gate.output,
        outlets=[model_alias_asset("orders_churn", "challenger")],
    )
    data >> validate >> train >> gate >> register


retrain_my_model()
# --8<-- [end:retrain]
