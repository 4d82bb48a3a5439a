"""Fixtures shared by the operator tests: per test module, a local MLflow and the synthetic visits of
tests/unit/synthetic.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlops_ops.hooks.trust import TRUST_HOME_ENV
from tests.unit import synthetic
from tests.unit.operators.support import CODE_REVISION, CONN_ID


@pytest.fixture(scope="module")
def root(request, tmp_path_factory) -> Path:
    """A local MLflow (SQLite + file artifacts) behind connection ``mlflow_test``, and 3,000 synthetic visits
    from the start of each of January and February 2024 (one every 5 minutes, about 10 days) as Parquet under
    ``data/``; ``MLOPS_CODE_REVISION`` is ``CODE_REVISION``; the embedded trust folder (signing key, alias log)
    under ``trust/``."""
    folder = tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2])
    connection = {
        "conn_type": "mlflow",
        "host": f"sqlite:///{folder}/mlflow.db",
        "extra": {"artifact_root": (folder / "artifacts").as_uri()},
    }
    for month in (1, 2):
        path = folder / "data" / f"month=2024-{month:02d}" / "part-0.parquet"
        path.parent.mkdir(parents=True)
        synthetic.visits(3000, seed=month, start=f"2024-{month:02d}-01").to_parquet(path, index=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(connection))
        patch.setenv("MLOPS_CODE_REVISION", CODE_REVISION)
        # Each module its own signing key and alias log, like its own registry.
        patch.setenv(TRUST_HOME_ENV, str(folder / "trust"))
        yield folder


@pytest.fixture(scope="module")
def files(root) -> list[str]:
    """The Parquet files under ``root/data``, sorted."""
    return sorted(str(path) for path in (root / "data").rglob("*.parquet"))


@pytest.fixture(scope="module")
def client(root):
    import mlflow

    uri = f"sqlite:///{root}/mlflow.db"
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
