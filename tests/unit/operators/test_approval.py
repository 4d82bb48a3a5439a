"""RecordedApprovalOperator keeps the answer in XCom, Reject included (the stock operator loses it)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mlops_ops.operators.approval import ANSWER_KEY, RecordedApprovalOperator
from tests.unit.operators.support import make_ti


def event(option: str) -> dict:
    return {
        "chosen_options": [option],
        "params_input": {"comment": "not convinced"},
        "responded_at": datetime(2026, 11, 26, tzinfo=UTC),
        "responded_by_user": {"id": "7", "name": "ana"},
    }


def test_a_reject_that_skips_downstream_still_leaves_its_answer():
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG, Param
    from airflow.sdk.exceptions import DownstreamTasksSkipped

    with DAG("promote_unit", schedule=None):
        approve = RecordedApprovalOperator(
            task_id="approve",
            subject="Promote?",
            body="evidence",
            params={"comment": Param("", type="string")},
        )
        approve >> EmptyOperator(task_id="promote")
    ti = make_ti("manual__approval", "approve")

    with pytest.raises(DownstreamTasksSkipped):
        approve.execute_complete({"ti": ti, "task": approve}, event("Reject"))

    assert ti.pushed[ANSWER_KEY] == {
        "chosen_options": ["Reject"],
        "responded_by_user": {"id": "7", "name": "ana"},
        "params_input": {"comment": "not convinced"},
    }


def test_an_approval_leaves_its_answer_and_returns_as_usual():
    approve = RecordedApprovalOperator(task_id="approve", subject="Promote?", body="evidence")
    ti = make_ti("manual__approval", "approve")
    result = approve.execute_complete({"ti": ti, "task": approve}, {**event("Approve"), "params_input": {}})
    assert result["chosen_options"] == ["Approve"]
    assert ti.pushed[ANSWER_KEY]["responded_by_user"]["name"] == "ana"
