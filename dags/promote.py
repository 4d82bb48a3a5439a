"""Promote the flight_delay challenger to champion: evidence, human approval (or auto), compare-and-set, card."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, task

from mlops_ops.assets import model_alias_asset
from mlops_ops.notifiers.webhook import WebhookNotifier
from mlops_ops.operators.approval import RecordedApprovalOperator
from mlops_ops.operators.promotion import PromoteOperator, PromotionRequestOperator
from mlops_ops.retry_policy import retry_default_args

MODEL_NAME = "flight_delay"
CHALLENGER = model_alias_asset(MODEL_NAME, "challenger")
CHAMPION = model_alias_asset(MODEL_NAME, "champion")
REQUEST = "ti.xcom_pull(task_ids='request')"
APPROVAL = "(ti.xcom_pull(task_ids='approve', key='answer') or {})"

DOC = f"""
### Promote `{MODEL_NAME}`

`request` -> (`approve` | auto) -> `promote` -> `record_decision`

Runs whenever `{CHALLENGER.name}` is updated (the retrain DAG registered a challenger), or by hand.

1. **request** (`PromotionRequestOperator`): the candidate (the `challenger` alias, or the `version` param),
   its gate decision and the champion the gate compared it with.
2. **approve** (`RecordedApprovalOperator`: Airflow's `ApprovalOperator`, human in the loop, its answer kept in
   XCom even on Reject): the approver sees every metric of challenger and champion with the difference,
   every gate check with its threshold, and both data versions, under **Browse -> Required actions** in the
   Airflow UI (or answers through the REST API), with an optional comment. No answer within 3 days counts as **Reject**.
   With the Airflow Variable `mlops_promotion_policy` = `auto` (the demo), a challenger that passed its gate is
   promoted without asking; `manual` (the default) always asks.
3. **promote** (`PromoteOperator`, pool `registry`): moves `champion` to the candidate only if `champion` still
   points at the version the gate compared against (compare-and-set), records the move in the registry
   (`mlops.history.champion.*` model tags, `mlops.promoted`/`mlops.demoted` version tags: who, when, why,
   which Airflow run) and writes the model card. Updates `{CHAMPION.name}`, which batch scoring follows.
4. **record_decision**: tags the candidate with the outcome in every case (`mlops.promotion.decision`:
   promoted, rejected or not promoted, by whom, the comment, the Airflow run); when an approved promotion was
   refused (the champion moved meanwhile) it fails the run, so a refusal never shows as a green run.

**Force-promote** a version that did not pass its gate: trigger with `version`, `force` and a `reason`; the
move is recorded as a forced promotion by the user who triggered it.
"""


@dag(
    dag_id="promote",
    schedule=[CHALLENGER],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["mlops", "governance", MODEL_NAME],
    doc_md=DOC,
    render_template_as_native_obj=True,
    default_args=retry_default_args(timedelta(seconds=30)),
    on_success_callback=WebhookNotifier(f"{MODEL_NAME}: promotion run {{{{ run_id }}}} finished"),
    on_failure_callback=WebhookNotifier(
        f"{MODEL_NAME}: promotion run {{{{ run_id }}}} FAILED, champion unchanged"
    ),
    params={
        # Nullable: Airflow's trigger form marks a plain "string" required and would refuse these empty.
        "version": Param(
            None,
            type=["null", "string"],
            pattern="^([1-9][0-9]*)?$",
            title="Version",
            description="A version number of flight_delay. Empty: the current challenger",
        ),
        "force": Param(
            False,
            type="boolean",
            title="Force",
            description="Promote although the version did not pass its gate (needs a reason)",
        ),
        "reason": Param(
            None,
            type=["null", "string"],
            title="Reason",
            description="Required with force (recorded in the history)",
        ),
    },
)
def promote():
    request = PromotionRequestOperator(
        task_id="request",
        model_name=MODEL_NAME,
        version="{{ params.version }}",
        policy="{{ 'manual' if params.force else var.value.get('mlops_promotion_policy', 'manual') }}",
    )

    @task.branch(task_id="ask_or_promote")
    def ask_or_promote(candidate: dict, params: dict | None = None) -> str:
        """A human answers unless the policy is auto and the gate passed; a forced promotion needs no vote."""
        if (params or {}).get("force"):
            return "promote"
        return "approve" if candidate["approval_needed"] else "promote"

    approve = RecordedApprovalOperator(
        task_id="approve",
        subject="{{ " + REQUEST + "['subject'] }}",
        body="{{ " + REQUEST + "['body'] }}",
        params={
            # Nullable: the form would otherwise require a comment before Approve or Reject can be pressed.
            "comment": Param(
                None,
                type=["null", "string"],
                title="Comment",
                description="Why (optional; kept in the history)",
            )
        },
        defaults="Reject",
        response_timeout=timedelta(days=3),
    )
    promote_task = PromoteOperator(
        task_id="promote",
        model_name=MODEL_NAME,
        version="{{ " + REQUEST + "['version'] }}",
        expected_version="{{ " + REQUEST + "['expected_version'] }}",
        actor=(
            "{{ " + APPROVAL + ".get('responded_by_user', {}).get('name')"
            " or (dag_run.triggering_user_name if params.force else 'auto') }}"
        ),
        reason=(
            "{{ params.reason if params.force else (" + APPROVAL + ".get('params_input', {}).get('comment')"
            " or 'gate passed') }}"
        ),
        force="{{ params.force }}",
        known_limitations=[
            "Trained on 2013 New York departures only: other airports, years or schedules are out of scope.",
            "Weather and aircraft are not features yet; delays from storms are predicted from the schedule alone.",
            "Cancelled and diverted flights are not in the training labels.",
        ],
        pool="registry",
        trigger_rule="none_failed_min_one_success",
        outlets=[CHAMPION],
    )

    @task(task_id="record_decision", trigger_rule="all_done")
    def record_decision(candidate: dict, ti=None) -> dict:
        """Tag the candidate with the decision, whatever it was: rejected and timed-out ones included."""
        import json

        from mlops_ops.hooks.mlflow import MlflowHook

        approval = ti.xcom_pull(task_ids="approve", key="answer") or {}
        promoted = ti.xcom_pull(task_ids="promote")
        chosen = (approval.get("chosen_options") or [None])[0]
        outcome = "promoted" if promoted else ("rejected" if chosen == "Reject" else "not promoted")
        decision = {
            "outcome": outcome,
            "by": (approval.get("responded_by_user") or {}).get("name") or ("auto" if promoted else None),
            "comment": (approval.get("params_input") or {}).get("comment"),
            "airflow_run": f"{ti.dag_id}/{ti.run_id}",
        }
        # The latest decision about this version; every move itself is in the registered model's history.
        MlflowHook().client.set_model_version_tag(
            candidate["model_name"], candidate["version"], "mlops.promotion.decision", json.dumps(decision)
        )
        if outcome == "not promoted":
            # Approved (or auto) but not promoted: the promote task was refused or failed. This task is the
            # run's leaf, so failing it is what makes the run fail instead of passing for a success.
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(
                f"{candidate['model_name']} v{candidate['version']} was not promoted: see the promote task"
            )
        return decision

    candidate = request.output
    branch = ask_or_promote(candidate)
    request >> branch >> [approve, promote_task]
    approve >> promote_task >> record_decision(candidate)


promote()
