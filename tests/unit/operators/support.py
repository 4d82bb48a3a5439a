"""Plain helpers shared by the operator tests (the fixtures are in ``conftest.py`` beside this file)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

CONN_ID = "mlflow_test"
CODE_REVISION = "0123456789abcdef0123456789abcdef01234567"


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


POLICY = {"min_metrics": {"roc_auc": 0.5}, "first_model": "accept"}


def train_and_gate(
    root: Path, airflow_run_id: str, model_spec: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train on the rows under ``root / "data"`` with TrainOperator and judge it with EvaluateGateOperator.

    :param model_spec: the spec of those rows (the unit tests: the synthetic visits'; tests/integration's
        registry backup: the flights spec of ``tests/flights_spec.py``).
    """
    from mlops_ops.operators.gate import EvaluateGateOperator
    from mlops_ops.operators.training import TrainOperator

    spec = model_spec

    files = sorted(str(path) for path in (root / "data").rglob("*.parquet"))
    training = TrainOperator(
        task_id="train",
        model_spec=spec,
        data_version={"fingerprint": "sha256:registry-sample", "files": files},
        evaluation_root=str(root / "eval"),
        mlflow_conn_id=CONN_ID,
    ).execute(context={"ti": make_ti(airflow_run_id, "train")})
    decision = EvaluateGateOperator(
        task_id="evaluate_gate",
        training=training,
        model_spec=spec,
        policy=POLICY,
        mlflow_conn_id=CONN_ID,
    ).execute(context={"ti": make_ti(airflow_run_id, "evaluate_gate")})
    return training, decision
