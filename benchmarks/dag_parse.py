"""What parsing the project's DAG files costs, against a bare ``import airflow.sdk`` in a fresh process.

The dag-processor pays the difference on every parse of every file, so our DAG files and operator modules must
import nothing heavy. Both sides run in fresh interpreters, interleaved, so machine noise hits them alike.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DAG_FILES = sorted(str(path) for path in (PROJECT_ROOT / "dags").glob("*.py"))

BASELINE = "import airflow.sdk"
DAG_PARSE = (
    "import runpy, sys\n"
    "import airflow.sdk\n"
    f"sys.path.insert(0, {str(PROJECT_ROOT)!r})\n"
    f"for path in {DAG_FILES!r}: runpy.run_path(path)\n"
)


def _seconds(code: str, environment: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=environment, capture_output=True)
    return time.perf_counter() - started


def _measure(environment: dict[str, str], repeats: int) -> dict:
    _seconds(DAG_PARSE, environment)  # warm the page cache, and the bytecode cache where it is written
    baseline, dag_parse = [], []
    for _ in range(repeats):
        baseline.append(_seconds(BASELINE, environment))
        dag_parse.append(_seconds(DAG_PARSE, environment))
    return {
        "baseline_median_s": round(statistics.median(baseline), 3),
        "dag_parse_median_s": round(statistics.median(dag_parse), 3),
        "ratio": round(statistics.median(dag_parse) / statistics.median(baseline), 3),
        "baseline_s": [round(value, 3) for value in baseline],
        "dag_parse_s": [round(value, 3) for value in dag_parse],
    }


def run(repeats: int = 7) -> dict:
    """Median wall time of each side over ``repeats`` interleaved runs, and their ratio.

    Measured twice: with Python's bytecode cache, as a deployed Airflow image runs (the goal applies to this
    one), and with ``PYTHONDONTWRITEBYTECODE=1``, as this sandbox may run, where every module compiles from
    source on every import.
    """
    environment = {**os.environ, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    environment.pop("PYTHONDONTWRITEBYTECODE", None)
    cached = _measure(environment, repeats)
    # An empty cache prefix hides the .pyc files written above, so every import compiles from source.
    with tempfile.TemporaryDirectory() as empty_cache:
        uncached = _measure(
            {**environment, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": empty_cache}, repeats
        )
    return {
        "benchmark": "dag_parse",
        "what": f"fresh process: import airflow.sdk + run every DAG file in dags/ ({len(DAG_FILES)} files) "
        "vs a fresh process that only imports airflow.sdk",
        "repeats": repeats,
        "dag_files": [Path(path).name for path in DAG_FILES],
        **cached,
        "goal_ratio": 1.1,
        "without_bytecode_cache": uncached,
    }
