"""The prediction API's model thread limit, without a feature store (the API end to end is in integration)."""

from __future__ import annotations

import os
import threading

import pytest

from mlops_ops.serving import Predictor, ServingConfig


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
    import sklearn.ensemble  # noqa: F401 - loads the OpenMP runtime the model's predict uses

    unlimited = _openmp_threads_in_a_new_thread(_predictor(0))
    if not unlimited:
        pytest.skip("no OpenMP runtime loaded by scikit-learn here")
    limited = _openmp_threads_in_a_new_thread(_predictor(1))
    assert set(limited) == {1}
    # What the limit prevents: a worker thread otherwise gets the default, every core.
    if (os.cpu_count() or 1) > 1 and "OMP_NUM_THREADS" not in os.environ:
        assert max(unlimited) > 1
