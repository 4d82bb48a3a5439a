"""A benchmark measurement in a fresh process of its own (its peak RSS, garbage collections and imports its own)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def run_worker(module: str, *arguments: str, environment: dict[str, str] | None = None) -> dict:
    """Run ``python -m module arguments...`` from the project root and return the JSON object its last line
    of output holds.

    :param module: the worker module, e.g. ``benchmarks.drift_worker``.
    :param arguments: its command-line arguments.
    :param environment: its whole environment (default: this process's).
    :raises RuntimeError: when it exits non-zero, with the end of its stderr.
    """
    completed = subprocess.run(
        [sys.executable, "-m", module, *arguments],
        cwd=PROJECT_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{module} {' '.join(arguments[:1])} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])
