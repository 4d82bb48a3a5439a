"""A test-only DAG of the native stack: three tasks that want the ``gpu`` pool at the same time.

Nothing but the pool keeps them apart: the ``gpu`` worker runs two tasks at once and the DAG allows four,
so with one pool slot they must run one after another, and overlapping start/end times prove the pool broken.
It runs beside a retrain, whose ``train`` task competes for the same slot.
"""

from __future__ import annotations

import os
import time
from datetime import datetime

from airflow.sdk import dag, task


@dag(
    dag_id="gpu_pool_probe",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["test"],
    default_args={"owner": "tests", "retries": 0},
)
def gpu_pool_probe():
    @task(pool="gpu", queue=os.environ.get("MLOPS_GPU_QUEUE") or "default")
    def hold_gpu(slot: int) -> int:
        # Long enough that a second task started while this one runs would be seen overlapping.
        time.sleep(4)
        return slot

    hold_gpu.expand(slot=[0, 1, 2])


gpu_pool_probe()
