"""Roll flight_delay's champion back to the previous version (or a chosen one), with a reason, audited."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag

from mlops_ops.assets import model_alias_asset
from mlops_ops.notifiers.webhook import WebhookNotifier
from mlops_ops.operators.promotion import RollbackOperator
from mlops_ops.retry_policy import retry_default_args

MODEL_NAME = "flight_delay"
CHAMPION = model_alias_asset(MODEL_NAME, "champion")

DOC = f"""
### Roll back `{MODEL_NAME}`

One click: **Trigger** this DAG, give a **reason** (required) and, optionally, the **target version**.
Without a target, `champion` goes back to the version it pointed at before the current one (read from the
registry's history); a chosen target must have passed an evaluation gate. The move is recorded like a
promotion (who triggered it, when, why, from and to, this Airflow run) and updates `{CHAMPION.name}`, so batch
scoring follows. Refused, changing nothing: no champion, no earlier version in the history, a target that
never passed a gate, an empty reason.
"""


@dag(
    dag_id="rollback",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["mlops", "governance", MODEL_NAME],
    doc_md=DOC,
    default_args=retry_default_args(timedelta(seconds=30)),
    on_success_callback=WebhookNotifier(f"{MODEL_NAME}: champion rolled back ({{{{ params.reason }}}})"),
    on_failure_callback=WebhookNotifier(
        f"{MODEL_NAME}: rollback run {{{{ run_id }}}} FAILED, champion unchanged"
    ),
    params={
        "reason": Param(
            type="string",
            minLength=1,
            maxLength=500,
            # Not blank: a reason of spaces would pass minLength and audit nothing.
            pattern=r"\S",
            title="Reason",
            description="Why roll back (required; recorded in the champion's history)",
        ),
        "target_version": Param(
            None,
            # Nullable: the trigger form marks a plain "string" required and refuses it empty.
            type=["null", "string"],
            pattern="^([1-9][0-9]*)?$",
            title="Target version",
            description="A version number of flight_delay that passed its gate. Empty: the previous champion",
        ),
    },
)
def rollback():
    RollbackOperator(
        task_id="rollback",
        model_name=MODEL_NAME,
        reason="{{ params.reason }}",
        target_version="{{ params.target_version }}",
        actor="{{ dag_run.triggering_user_name or 'unknown' }}",
        pool="registry",
        outlets=[CHAMPION],
    )


rollback()
