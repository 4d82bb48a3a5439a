"""``python -m benchmarks [NAME ...]``: run the benchmarks (all by default), print a summary, write JSON to
benchmarks/results/. Exits 1 when a figure misses its goal. The serving benchmark needs Redis on 127.0.0.1:6379;
``MLOPS_BENCH_SERVING_SECONDS`` shortens it (default 60 s); ``MLOPS_BENCH_VS_MLFLOW_SECONDS`` sets the length of
each rate step of serving_vs_mlflow (default 10 s). The streaming benchmark needs Redis too."""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
NAMES = (
    "dag_parse",
    "batch_scoring",
    "drift",
    "serving",
    "serving_predict",
    "serving_vs_mlflow",
    "model_quality",
    "registry_security",
    "models_view",
    "streaming",
    "mlflow_auth",
    "task_preload",
)


def _summary(result: dict) -> tuple[str, bool]:
    if result["benchmark"] in (
        "serving",
        "serving_predict",
        "serving_vs_mlflow",
        "model_quality",
        "models_view",
        "streaming",
        "mlflow_auth",
        "task_preload",
    ):
        from importlib import import_module

        return import_module(f"benchmarks.{result['benchmark']}").report(result)
    if result["benchmark"] == "registry_security":
        loads, backup = result["trusted_load"], result["backup"]
        ok = all(check["ok"] for check in result["checks"])
        return (
            f"registry_security (median of {result['repeats']}): trusted load vs MLflow's load: "
            f"skops {loads['skops']['trusted_load_median_s']} s vs {loads['skops']['mlflow_load_median_s']} s "
            f"(+{loads['skops']['overhead_s']} s), cloudpickle {loads['cloudpickle']['trusted_load_median_s']} s vs "
            f"{loads['cloudpickle']['mlflow_load_median_s']} s; scoring one day {result['day_scoring_s']} s; "
            f"backup of {backup['versions']} versions: export {backup['export_s']} s, import {backup['import_s']} s, "
            f"{backup['backup_mb']} MB, restored = source: {backup['restored_equals_source']}: "
            f"{'ok' if ok else 'MISSED'}",
            ok,
        )
    if result["benchmark"] == "dag_parse":
        ok = result["ratio"] <= result["goal_ratio"]
        return (
            f"dag_parse: {result['dag_parse_median_s']} s vs baseline {result['baseline_median_s']} s "
            f"= {result['ratio']}x (goal <= {result['goal_ratio']}x, median of {result['repeats']}): "
            f"{'ok' if ok else 'OVER GOAL'}; without a bytecode cache {result['without_bytecode_cache']['ratio']}x",
            ok,
        )
    lines = [f"{result['benchmark']} (median of {result['repeats']}):"]
    for check in result["checks"]:
        lines.append(
            f"  {check['name']}: {check['value']}x (goal {check['goal']}): {'ok' if check['ok'] else 'MISSED'}"
        )
    for key in (
        "throughput",
        "compute_bound_forest",
        "memory",
        "scale_out_2_shards",
        "engine",
        "evidently",
        "engine_10x_rows",
    ):
        if key in result:
            figures = {k: v for k, v in result[key].items() if not isinstance(v, list)}
            lines.append(f"  {key}: {json.dumps(figures)}")
    return "\n".join(lines), all(check["ok"] for check in result["checks"])


def main(names: list[str]) -> int:
    # A throwaway Airflow home: the benchmark must not depend on (or touch) the developer's .airflow/.
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="mlops-bench-airflow-"))
    # The benchmarks run on embedded state of their own (connections only where a server is measured).
    os.environ.setdefault("MLOPS_PROFILE", "embedded")
    unknown = sorted(set(names) - set(NAMES))
    if unknown:
        print(f"unknown benchmark(s) {unknown}; choose from {list(NAMES)}", file=sys.stderr)
        return 2
    machine = {"python": sys.version.split()[0], "machine": platform.machine(), "cpus": os.cpu_count()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    failed = False
    for name in names or NAMES:
        module = __import__(f"benchmarks.{name}", fromlist=["run"])
        result = {**module.run(), "measured_at": datetime.now(UTC).isoformat(timespec="seconds"), **machine}
        (RESULTS / f"{result['benchmark']}.json").write_text(json.dumps(result, indent=2) + "\n")
        line, ok = _summary(result)
        failed |= not ok
        print(line, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
