"""One-row predictions in a worker thread, as the prediction API makes them: every core vs one thread.

The API scores batches of a few rows in worker threads (``asyncio.to_thread``). A gradient-boosting predict
there starts OpenMP threads on every core by default, and their synchronisation costs more than the trees: the
profile of the API under load put 80% of its time in ``predict``. This measures ``predict_proba`` of one row
(HistGradientBoosting, 100 iterations, 15 features) in one worker thread, the two settings interleaved, the
first 20 calls of each dropped; ``--model-threads 1`` (the API's default) is the second.
"""

from __future__ import annotations

import os
import threading
import time

CALLS = 400
WARM_UP = 20


def run() -> dict:
    """Median and p99 of both settings, with the load average (the machine is shared)."""
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import ThreadpoolController

    rng = np.random.default_rng(0)
    features = rng.normal(size=(20_000, 15))
    labels = (features[:, 0] + rng.normal(size=20_000) > 0).astype(int)
    model = HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(features, labels)
    controller = ThreadpoolController()
    row = features[:1]
    timings: dict[str, list[float]] = {"every_core": [], "one_thread": []}

    def work() -> None:
        for _ in range(CALLS):
            for label, values in timings.items():
                started = time.perf_counter()
                if label == "one_thread":
                    with controller.limit(limits=1):
                        model.predict_proba(row)
                else:
                    model.predict_proba(row)
                values.append((time.perf_counter() - started) * 1000)

    load_before = [round(value, 2) for value in os.getloadavg()]
    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    figures = {}
    for label, values in timings.items():
        ordered = sorted(values[WARM_UP:])
        figures[label] = {
            "p50_ms": round(ordered[len(ordered) // 2], 3),
            "p99_ms": round(ordered[int(len(ordered) * 0.99)], 3),
        }
    return {
        "benchmark": "serving_predict",
        "calls": CALLS - WARM_UP,
        **figures,
        "p99_ratio": round(figures["one_thread"]["p99_ms"] / figures["every_core"]["p99_ms"], 3),
        "load_average_before": load_before,
        "load_average_after": [round(value, 2) for value in os.getloadavg()],
    }


def report(result: dict) -> tuple[str, bool]:
    """One line; the goal is that one thread is not slower at p99."""
    ok = result["p99_ratio"] <= 1.0
    every, one = result["every_core"], result["one_thread"]
    return (
        f"serving_predict: one-row predict in a worker thread, every core p50 {every['p50_ms']} / p99 "
        f"{every['p99_ms']} ms vs one thread p50 {one['p50_ms']} / p99 {one['p99_ms']} ms "
        f"(p99 {result['p99_ratio']}x; load average {result['load_average_before']})",
        ok,
    )
