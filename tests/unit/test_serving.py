"""The prediction API's model thread limit, without a feature store (the API end to end is in integration)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mlops_ops.serving import Predictor, ServingConfig

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _predictor(model_threads: int) -> Predictor:
    # Only the thread limit is under test: no store, no model (Predictor.__init__ opens the feature store).
    predictor = Predictor.__new__(Predictor)
    predictor.config = ServingConfig(model_threads=model_threads)
    predictor._thread_limit = None
    return predictor


def _openmp_threads_in_a_new_thread(predictor: Predictor) -> list[int]:
    """OpenMP's thread counts as seen inside the limit, from a worker thread (where batches are scored)."""
    from threadpoolctl import threadpool_info

    seen: list[int] = []

    def work() -> None:
        with predictor._model_threads():
            seen.extend(info["num_threads"] for info in threadpool_info() if info["user_api"] == "openmp")

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    return seen


def test_a_predict_in_a_worker_thread_uses_one_openmp_thread():
    """Run in a fresh interpreter without the suite's OMP_NUM_THREADS=1, so the default (every core) shows."""
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one core: OpenMP's default is one thread already")
    script = (
        "import json, sklearn.ensemble\n"
        "from tests.unit.test_serving import _openmp_threads_in_a_new_thread, _predictor\n"
        "print(json.dumps([_openmp_threads_in_a_new_thread(_predictor(n)) for n in (0, 1)]))\n"
    )
    environment = {key: value for key, value in os.environ.items() if key != "OMP_NUM_THREADS"}
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=environment, cwd=PROJECT_ROOT
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    unlimited, limited = json.loads(completed.stdout.strip().splitlines()[-1])
    if not unlimited:
        pytest.skip("no OpenMP runtime loaded by scikit-learn here")
    assert set(limited) == {1}
    assert max(unlimited) > 1  # what the limit prevents: a worker thread otherwise gets every core
