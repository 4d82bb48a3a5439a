"""Plain helpers shared by the operator tests (the fixtures are in ``conftest.py`` beside this file)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[3]
SPEC_PATH = PROJECT_ROOT / "include" / "flights" / "model_spec.yaml"
CONN_ID = "mlflow_test"
CODE_REVISION = "0123456789abcdef0123456789abcdef01234567"


def flights_spec() -> dict[str, Any]:
    """The real flight-delay spec with a small estimator, to keep training under a second."""
    return {**yaml.safe_load(SPEC_PATH.read_text()), "params": {"max_iter": 20}}


def make_ti(run_id: str, task_id: str = "train", try_number: int = 1, map_index: int = -1) -> SimpleNamespace:
    """A stand-in for ``context["ti"]`` of DAG ``retrain``; pushes JSON-checked and recorded in ``.pushed``."""
    pushed: dict[str, Any] = {}

    def xcom_push(key: str, value: Any) -> None:
        json.dumps(value, allow_nan=False)  # what a real XCom backend would need
        pushed[key] = value

    return SimpleNamespace(
        dag_id="retrain",
        run_id=run_id,
        task_id=task_id,
        try_number=try_number,
        map_index=map_index,
        xcom_push=xcom_push,
        pushed=pushed,
    )
