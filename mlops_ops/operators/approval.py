"""Human approval whose answer is kept, whatever it is."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import ApprovalOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

#: XCom key of the answer.
ANSWER_KEY = "answer"


class RecordedApprovalOperator(ApprovalOperator):
    """
    The standard provider's ``ApprovalOperator``, with the answer pushed to XCom (key ``answer``) first.

    On **Reject** the stock operator skips its downstream tasks by raising, so its return value never
    reaches XCom, and a later task cannot tell who rejected and why. This one pushes
    ``{"chosen_options", "responded_by_user", "params_input"}`` before deciding, for Approve, Reject and the
    default taken on timeout alike. Every argument is ``ApprovalOperator``'s (``subject``, ``body``,
    ``params``, ``defaults``, ``response_timeout``, ...).

    :param ignore_downstream_trigger_rules: on Reject, skip every downstream task, not only the direct ones.
    :param fail_on_reject: fail the task on Reject instead of skipping downstream.
    :return: what ``ApprovalOperator`` returns (on Approve).
    """

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        context["ti"].xcom_push(
            key=ANSWER_KEY,
            value={
                "chosen_options": list(event.get("chosen_options") or []),
                "responded_by_user": event.get("responded_by_user"),
                "params_input": dict(event.get("params_input") or {}),
            },
        )
        return super().execute_complete(context=context, event=event)
