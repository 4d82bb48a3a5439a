"""Performance monitoring on the real 2013 flights: how often the reference decay rule fires per month, and
the cost of measuring an interval.

``uv run python -m benchmarks.performance_monitoring`` trains flight_delay (the reference spec) on January-June
with TrainOperator's time-ordered holdout (latest 20%), measures every day of 2013 with
``evaluate_interval`` and judges it with ``include/flights/decay.yaml``: the rule should seldom fire on the
months the model was trained on and more often after. Also times ``evaluate_interval`` on 1M rows (median of
3). Prints JSON.
"""

from __future__ import annotations

import json
import statistics
import time
import warnings
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


def run() -> dict:
    import numpy as np

    from include.flights.data import flights
    from include.flights.features import prepare_features
    from mlops_ops.core import training
    from mlops_ops.core.modelspec import ModelSpec
    from mlops_ops.core.performance import BusinessCosts, DecayRule, evaluate_interval

    warnings.filterwarnings("ignore")
    spec = ModelSpec.load(PROJECT / "include" / "flights" / "model_spec.yaml")
    rule = DecayRule.load(str(PROJECT / "include" / "flights" / "decay.yaml"))
    costs = BusinessCosts.load(str(PROJECT / "include" / "flights" / "business_costs.yaml"))
    frame = prepare_features(flights())
    trained_on = frame[(frame["month"] <= 6) & frame[spec.target].notna()]
    times = trained_on["time_hour"]
    cut = times.min() + (1 - spec.holdout["fraction"]) * (times.max() - times.min())
    model = training.fit(spec, trained_on[times < cut], params=spec.params, seed=spec.seed)
    held_out = training.evaluate(model, trained_on[times >= cut], spec)
    frame["probability"] = training.positive_probability(model, training.features_frame(frame, spec))

    per_month: dict[int, dict[str, int]] = {}
    for (month, _), day in frame.groupby([frame["month"], frame["time_hour"].dt.date]):
        verdict = rule.judge(evaluate_interval(day[spec.target], day["probability"], costs=costs), held_out)
        counts = per_month.setdefault(int(month), {"days": 0, "decayed": 0, "inconclusive": 0})
        counts["days"] += 1
        counts[verdict.status] = counts.get(verdict.status, 0) + 1

    rng = np.random.default_rng(0)
    labels, probabilities = rng.integers(0, 2, 1_000_000).astype(float), rng.random(1_000_000)
    seconds = []
    for _ in range(3):
        started = time.perf_counter()
        evaluate_interval(labels, probabilities, costs=costs)
        seconds.append(time.perf_counter() - started)
    return {
        "benchmark": "performance_monitoring",
        "held_out": {name: round(value, 4) for name, value in held_out.items()},
        "decay_rule": rule.to_dict(),
        "days_per_month": per_month,
        "evaluate_interval_1m_rows_median_s": round(statistics.median(seconds), 3),
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
