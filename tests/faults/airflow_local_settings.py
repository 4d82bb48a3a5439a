"""Cluster policies of the test Airflows started with ``tests/faults`` on their ``PYTHONPATH`` (test-only).

Airflow's own policy hooks change what the tests need without editing the DAGs:

- The fault-injection test (nothing set): retries come after 1 s instead of the DAGs' 30-60 s, with no
  backoff, and four retries, so that up to four faults can hit one task instance of one run (each task
  process costs seconds to start: fewer runs, more faults each).
- The service-down test keeps the DAGs' retries and exponential backoff and only shortens the base delay, so
  that the backoff is observable in seconds: ``MLOPS_TEST_RETRY_DELAYS`` is a JSON object of seconds by
  ``"dag_id.task_id"`` (``"*"`` for every other task), ``MLOPS_TEST_MIN_RETRIES=0`` keeps the DAGs' retries,
  ``MLOPS_TEST_KEEP_BACKOFF=1`` their backoff. ``MLOPS_TEST_UNSCHEDULED_DAGS`` (comma-separated ids) takes
  those DAGs off their schedule: the test triggers each run itself, and unpausing starts none.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta

RETRY_DELAYS = json.loads(os.environ.get("MLOPS_TEST_RETRY_DELAYS") or '{"*": 1}')
RETRIES = int(os.environ.get("MLOPS_TEST_MIN_RETRIES", "4"))
KEEP_BACKOFF = os.environ.get("MLOPS_TEST_KEEP_BACKOFF") == "1"
UNSCHEDULED = {name for name in os.environ.get("MLOPS_TEST_UNSCHEDULED_DAGS", "").split(",") if name}


def task_policy(task) -> None:
    task.retry_delay = timedelta(seconds=RETRY_DELAYS.get(f"{task.dag_id}.{task.task_id}", RETRY_DELAYS["*"]))
    task.retries = max(task.retries or 0, RETRIES)
    if not KEEP_BACKOFF:
        task.retry_exponential_backoff = 0


def dag_policy(dag) -> None:
    if dag.dag_id in UNSCHEDULED:
        from airflow.sdk.definitions.timetables.simple import NullTimetable

        dag.timetable = NullTimetable()
