"""A small client of Airflow's REST API (``/api/v2``) for tests that drive a running Airflow as a person or a CI
system would: log in, unpause, trigger with ``logical_date`` null, wait, answer human-in-the-loop tasks.

Shared by the ``airflow standalone`` end-to-end tests and the native production-stack tests.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.request

RUN_SECONDS = 300
#: The tasks of a retrain run (dags/retrain.py), each expected to succeed in the lifecycle tests.
RETRAIN_TASKS = (
    "wait_for_data",
    "validate",
    "build_feature_sources",
    "feature_set",
    "train",
    "evaluate_gate",
    "register",
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Airflow:
    """A small REST client of a running Airflow API server (``airflow standalone`` or ``airflow api-server``)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.token = ""

    def request(self, method: str, path: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(
            self.base_url + path,
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={
                "Content-Type": "application/json",
                **({"Authorization": f"Bearer {self.token}"} if self.token else {}),
            },
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"{}")

    def login(self, user: str, password: str) -> None:
        self.token = self.request("POST", "/auth/token", {"username": user, "password": password})[
            "access_token"
        ]

    def wait_for(self, condition, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                value = condition()
            except OSError:
                value = None
            if value:
                return value
            time.sleep(3)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")

    def runs(self, dag_id: str) -> list[dict]:
        return self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns")["dag_runs"]

    def trigger(self, dag_id: str, conf: dict) -> str:
        return self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf})[
            "dag_run_id"
        ]

    def run_state(self, dag_id: str, run_id: str) -> str:
        return self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]

    def wait_run(self, dag_id: str, run_id: str, timeout: float = RUN_SECONDS) -> str:
        return self.wait_for(
            lambda: (state := self.run_state(dag_id, run_id)) in ("success", "failed") and state,
            timeout,
            f"{dag_id} run {run_id} to finish",
        )

    def unpause(self, dag_id: str) -> None:
        self.request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        """Every task instance of the run (mapped ones each with their ``map_index``)."""
        return self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        return {ti["task_id"]: ti["state"] for ti in self.task_instances(dag_id, run_id)}

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict:
        return self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")

    def answer(self, dag_id: str, run_id: str, task_id: str, option: str, comment: str) -> dict:
        """Answer a human-in-the-loop task as the logged-in user, once it waits for input.

        Airflow 3.3 races when an answer lands before the executor has reported the paused try's process:
        the resumed task is queued, the late report looks like an external state change, and the scheduler
        fails the try, whose retry then waits for input again. A person would answer that retry too; so does
        this, until the answered try really resumes (at most three tries).

        :return: the accepted answer, as the API returned it.
        """
        for _ in range(3):
            paused = self.wait_for(
                lambda: (
                    self.task_instance(dag_id, run_id, task_id)["state"] == "awaiting_input"
                    and self.task_instance(dag_id, run_id, task_id)
                ),
                RUN_SECONDS,
                f"{dag_id}.{task_id} in {run_id} to wait for input",
            )
            # A person never answers within seconds of the pause; waiting as one would makes the race rare.
            time.sleep(5)
            answer = self.request(
                "PATCH",
                f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails",
                {"chosen_options": [option], "params_input": {"comment": comment}},
            )
            if self._resumed(dag_id, run_id, task_id, paused["try_number"]):
                return answer
        raise AssertionError(f"{dag_id}.{task_id} in {run_id}: no try resumed after three answers")

    def _resumed(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> bool:
        """Whether the answered try resumed (``True``), or the race failed it and a retry asks again."""

        def settled() -> str | None:
            ti = self.task_instance(dag_id, run_id, task_id)
            if ti["try_number"] > try_number or ti["state"] == "up_for_retry":
                return "retried"
            if ti["state"] in ("running", "success", "failed", "skipped"):
                return "resumed"
            return None  # still awaiting input, or queued: the race, if any, is still to come

        return self.wait_for(settled, RUN_SECONDS, f"{dag_id}.{task_id} in {run_id} to resume") == "resumed"

    def xcom(self, dag_id: str, run_id: str, task_id: str):
        value = self.request(
            "GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
        )["value"]
        return json.loads(value) if isinstance(value, str) else value
