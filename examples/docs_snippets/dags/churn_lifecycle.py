"""The documentation's runnable example: a churn model on synthetic customers, trained, gated, registered,
promoted and scored by the provider's operators, with nothing but the embedded profile (local MLflow, local
files).

- ``docs_churn_land``: writes synthetic customers, one Parquet file per day (a team's own ingestion).
- ``docs_churn_retrain``: on a new data version, train, gate against the champion, register a ``challenger``.
- ``docs_churn_promote_and_score``: promote the challenger whose gate passed, then score a day with the pinned
  champion and publish the partition.

``tests/dags/test_docs_snippets.py`` runs all three with ``dag.test()``; the documentation includes the
sections between the ``--8<--`` markers.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import dag, task

from mlops_ops.assets import model_alias_asset, predictions_asset
from mlops_ops.core import settings, storage
from mlops_ops.operators.gate import EvaluateGateOperator
from mlops_ops.operators.promotion import PromoteOperator, PromotionRequestOperator
from mlops_ops.operators.registry import RegisterOperator
from mlops_ops.operators.scoring import (
    BatchScoreOperator,
    PinModelVersionOperator,
    PublishPredictionsOperator,
)
from mlops_ops.operators.training import TrainOperator
from mlops_ops.retry_policy import retry_default_args
from mlops_ops.sensors.data_version import DataVersionSensor

MODEL_NAME = "docs_churn"
#: Relative to the project root, the parent of this DAG's folder.
SPEC = "config/model_spec.yaml"
LANDING = storage.join(settings.data_root(), "docs_churn")
PREDICTIONS_ROOT = storage.join(settings.data_root(), "predictions")
FIRST_DAY = datetime(2024, 1, 1)
DAYS = 15
CHALLENGER = model_alias_asset(MODEL_NAME, "challenger")
DEFAULTS = retry_default_args(timedelta(seconds=30), owner="docs")


@dag(
    schedule=None,
    start_date=FIRST_DAY,
    catchup=False,
    tags=["docs", MODEL_NAME],
    doc_md="Land synthetic customers, one Parquet file per day, once.",
    default_args=DEFAULTS,
)
def docs_churn_land():
    @task
    def land() -> list[str]:
        """Customers whose churn risk falls with tenure, rises with the fee, and is higher on the basic plan."""
        import numpy as np
        import pandas as pd

        written = []
        for offset in range(DAYS):
            day = FIRST_DAY + timedelta(days=offset)
            rng = np.random.default_rng(offset)
            rows = 200
            tenure = rng.integers(1, 60, rows)
            plan = rng.choice(["basic", "plus", "pro"], rows)
            fee = rng.uniform(10, 90, rows).round(2)
            risk = 1 / (1 + np.exp(0.08 * tenure - 0.03 * fee - (plan == "basic") * 1.0))
            frame = pd.DataFrame(
                {
                    "customer": np.arange(rows) + offset * 1000,
                    "event_time": pd.date_range(day, periods=rows, freq="5min", tz="UTC"),
                    "plan": plan,
                    "tenure": tenure.astype(float),
                    "monthly_fee": fee,
                    "churned": (rng.random(rows) < risk).astype(int),
                }
            )
            uri = storage.join(LANDING, f"day={day.date()}", "part-0.parquet")
            if not storage.exists(uri):
                storage.write_parquet_atomic(frame, uri)
                written.append(uri)
        return written

    land()


@dag(
    schedule=None,
    start_date=FIRST_DAY,
    catchup=False,
    tags=["docs", MODEL_NAME],
    doc_md="Train on the landed customers, gate the challenger against the champion, register it.",
    default_args=DEFAULTS,
)
def docs_churn_retrain():
    # --8<-- [start:retrain]
    data = DataVersionSensor(
        task_id="wait_for_data",
        source=LANDING,  # a folder, an s3:// prefix, a glob, a Delta table or a .dvc file
        registered_model_name=MODEL_NAME,  # wait for data the champion was not trained on
        poke_interval=60,
        timeout=3600,
        soft_fail=True,  # no new data: the run is skipped
    )
    train = TrainOperator(task_id="train", model_spec=SPEC, data_version=data.output)
    gate = EvaluateGateOperator(
        task_id="evaluate_gate", training=train.output, model_spec=SPEC, policy="config/gate.yaml"
    )
    register = RegisterOperator(
        task_id="register", training=train.output, decision=gate.output, outlets=[CHALLENGER]
    )
    data >> train >> gate >> register
    # --8<-- [end:retrain]


@dag(
    schedule=None,
    start_date=FIRST_DAY,
    catchup=False,
    tags=["docs", MODEL_NAME],
    doc_md="Promote the challenger whose gate passed, then score the last day with the pinned champion.",
    default_args=DEFAULTS,
)
def docs_churn_promote_and_score():
    # --8<-- [start:promote]
    request = PromotionRequestOperator(task_id="request", model_name=MODEL_NAME, policy="auto")

    @task.short_circuit
    def approved(candidate: dict) -> bool:
        """Policy ``auto``: a passed gate is the approval (the flights ``promote`` DAG asks a human)."""
        return not candidate["approval_needed"]

    promote = PromoteOperator(
        task_id="promote",
        model_name=MODEL_NAME,
        version="{{ ti.xcom_pull(task_ids='request')['version'] }}",
        expected_version="{{ ti.xcom_pull(task_ids='request')['expected_version'] }}",  # compare-and-set
        actor="auto",
        reason="gate passed",
        pool="registry",  # one slot: of two promotions against the same champion, one wins
    )
    approved(request.output) >> promote
    # --8<-- [end:promote]

    # --8<-- [start:score]
    pin = PinModelVersionOperator(task_id="pin_champion", model_name=MODEL_NAME, alias="champion")
    interval = {"interval_start": "2024-01-15", "interval_end": "2024-01-16"}
    score = BatchScoreOperator(
        task_id="score",
        model_name=MODEL_NAME,
        model=pin.output,  # every shard and retry scores the version pinned once per run
        source=LANDING,
        output_root=PREDICTIONS_ROOT,
        model_spec=SPEC,
        key_columns=["customer"],
        time_column="event_time",  # rows in [interval_start, interval_end) are scored
        **interval,
    )
    publish = PublishPredictionsOperator(
        task_id="publish",
        model_name=MODEL_NAME,
        model=pin.output,
        output_root=PREDICTIONS_ROOT,
        outlets=[predictions_asset(MODEL_NAME)],
        **interval,
    )
    pin >> score >> publish
    # --8<-- [end:score]
    promote >> pin


docs_churn_land()
docs_churn_retrain()
docs_churn_promote_and_score()
