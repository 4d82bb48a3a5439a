"""Notifications and the MLflow hook in a team's own task, as the notifications page shows them. Run by
tests/dags/test_docs_snippets.py with ``dag.test()`` (the champion read, the message posted to a webhook)."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import dag, task

# --8<-- [start:notifier]
from mlops_ops.notifiers.webhook import WebhookNotifier
from mlops_ops.retry_policy import retry_default_args


@dag(
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["docs"],
    default_args=retry_default_args(timedelta(seconds=30)),
    # Posts to connection mlops_webhook_default (type mlops_webhook); without it, the message is only logged.
    on_success_callback=WebhookNotifier("flight_delay: run {{ run_id }} finished"),
    on_failure_callback=WebhookNotifier(
        "flight_delay: run {{ run_id }} FAILED",
        fields={"model": "flight_delay"},
    ),
)
def report_champion():
    """Log the champion's version, and say so on the team's channel."""

    @task
    def champion() -> dict:
        from mlops_ops.hooks.mlflow import MlflowHook

        hook = MlflowHook()  # connection mlflow_default; the embedded registry without one
        return {"champion": hook.get_aliases("flight_delay").get("champion")}

    champion()


# --8<-- [end:notifier]

report_champion()
