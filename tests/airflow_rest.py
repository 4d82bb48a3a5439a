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

    def answer(self, dag_id: str, run_id: str, task_id: str, option: str, comment: str) -> dict:
        """Answer a human-in-the-loop task as the logged-in user, once it waits for input."""
        self.wait_for(
            lambda: self.task_states(dag_id, run_id).get(task_id) == "awaiting_input",
            RUN_SECONDS,
            f"{dag_id}.{task_id} in {run_id} to wait for input",
        )
        # Airflow 3.3 races when an answer lands within a second of the pause: the resumed task is queued
        # before the executor reports the pausing process, the scheduler calls that an external state change
        # and fails the try. A person never answers that fast; wait as one would.
        time.sleep(5)
        return self.request(
            "PATCH",
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails",
            {"chosen_options": [option], "params_input": {"comment": comment}},
        )

    def xcom(self, dag_id: str, run_id: str, task_id: str):
        value = self.request(
            "GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
        )["value"]
        return json.loads(value) if isinstance(value, str) else value
