"""Cluster policy of the fault-injection Airflow (test-only, on its ``PYTHONPATH``): retries come after 1 s.

The reference DAGs wait 30-60 s between tries and retry twice; Airflow's own policy hook shortens the wait for
the test without editing the DAGs, and allows four retries, so that up to four faults can hit one task
instance of one run (each task process costs seconds to start: fewer runs, more faults each).
"""

from __future__ import annotations

from datetime import timedelta

RETRIES = 4


def task_policy(task) -> None:
    task.retry_delay = timedelta(seconds=1)
    task.retries = max(task.retries or 0, RETRIES)
