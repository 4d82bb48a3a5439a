"""``python -m benchmarks [NAME ...]``: run every benchmark (or the named ones), print a summary, write JSON to
benchmarks/results/. The serving benchmark needs Redis on 127.0.0.1:6379; ``MLOPS_BENCH_SERVING_SECONDS``
shortens it (default 60 s)."""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> int:
    # A throwaway Airflow home: the benchmark must not depend on (or touch) the developer's .airflow/.
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="mlops-bench-airflow-"))
    from benchmarks import dag_parse, serving

    chosen = set(sys.argv[1:])
    modules = [m for m in (dag_parse, serving) if not chosen or m.__name__.rpartition(".")[2] in chosen]
    machine = {"python": sys.version.split()[0], "machine": platform.machine(), "cpus": os.cpu_count()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    failed = False
    for module in modules:
        result = {**module.run(), "measured_at": datetime.now(UTC).isoformat(timespec="seconds"), **machine}
        (RESULTS / f"{result['benchmark']}.json").write_text(json.dumps(result, indent=2) + "\n")
        if hasattr(module, "report"):
            line, ok = module.report(result)
            failed |= not ok
            print(line)
            continue
        verdict = "ok" if result["ratio"] <= result["goal_ratio"] else "OVER GOAL"
        failed |= verdict != "ok"
        print(
            f"{result['benchmark']}: {result['dag_parse_median_s']} s vs baseline {result['baseline_median_s']} s "
            f"= {result['ratio']}x (goal <= {result['goal_ratio']}x, median of {result['repeats']}): {verdict}; "
            f"without a bytecode cache {result['without_bytecode_cache']['ratio']}x"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
