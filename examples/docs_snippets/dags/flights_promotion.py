"""Promotion with a human's approval, and a rollback, as the promotion page shows them (the flights ``promote``
and ``rollback`` DAGs in ``dags/`` are the complete versions). Parsed by the tests, not run."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, task

from mlops_ops.assets import model_alias_asset
from mlops_ops.operators.approval import RecordedApprovalOperator
from mlops_ops.operators.promotion import PromoteOperator, PromotionRequestOperator, RollbackOperator
from mlops_ops.retry_policy import retry_default_args

MODEL_NAME = "flight_delay"
CHAMPION = model_alias_asset(MODEL_NAME, "champion")
REQUEST = "ti.xcom_pull(task_ids='request')"
ANSWER = "(ti.xcom_pull(task_ids='approve', key='answer') or {})"


@dag(
    schedule=[model_alias_asset(MODEL_NAME, "challenger")],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["docs", MODEL_NAME],
    default_args=retry_default_args(timedelta(seconds=30)),
)
def promote_with_approval():
    """A new challenger asks a human (Browse -> Required actions), then moves ``champion`` by compare-and-set."""
    # --8<-- [start:promote]
    request = PromotionRequestOperator(task_id="request", model_name=MODEL_NAME, policy="manual")

    @task.branch
    def ask_or_promote(candidate: dict) -> str:
        return "approve" if candidate["approval_needed"] else "promote"

    approve = RecordedApprovalOperator(  # Airflow's ApprovalOperator, its answer kept even on Reject
        task_id="approve",
        subject="{{ " + REQUEST + "['subject'] }}",
        body="{{ "
        + REQUEST
        + "['body'] }}",  # every metric side by side, every gate check, both data versions
        params={"comment": Param(None, type=["null", "string"], title="Comment")},
        defaults="Reject",  # no answer within the timeout is a rejection
        response_timeout=timedelta(days=3),
    )
    promote = PromoteOperator(
        task_id="promote",
        model_name=MODEL_NAME,
        version="{{ " + REQUEST + "['version'] }}",
        expected_version="{{ " + REQUEST + "['expected_version'] }}",
        actor="{{ " + ANSWER + ".get('responded_by_user', {}).get('name') or 'auto' }}",
        reason="{{ " + ANSWER + ".get('params_input', {}).get('comment') or 'gate passed' }}",
        known_limitations=["Trained on 2013 New York departures only."],
        pool="registry",
        outlets=[CHAMPION],
        trigger_rule="none_failed_min_one_success",
    )
    branch = ask_or_promote(request.output)
    branch >> approve >> promote
    branch >> promote
    # --8<-- [end:promote]


@dag(
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["docs", MODEL_NAME],
    default_args=retry_default_args(timedelta(seconds=30)),
    params={
        "reason": Param(type="string", minLength=1, title="Reason"),
        "target_version": Param(None, type=["null", "string"], title="Version (empty: the previous one)"),
    },
)
def rollback_champion():
    """One click: ``champion`` back to the version it replaced (or a chosen one that passed a gate), audited."""
    # --8<-- [start:rollback]
    RollbackOperator(
        task_id="rollback",
        model_name=MODEL_NAME,
        reason="{{ params.reason }}",
        target_version="{{ params.target_version }}",
        actor="{{ dag_run.triggering_user_name or 'unknown' }}",
        pool="registry",
        outlets=[CHAMPION],  # batch scoring follows the champion
    )
    # --8<-- [end:rollback]


promote_with_approval()
rollback_champion()
