"""An Airflow connection to a throwaway SQLite MLflow, for tests that talk to a real registry."""

from __future__ import annotations

import json
from pathlib import Path


def sqlite_mlflow_connection(monkeypatch, conn_id: str, folder: Path, **extra: str) -> str:
    """Define connection ``conn_id`` (as an ``AIRFLOW_CONN_*`` variable) to MLflow on SQLite under ``folder``,
    artifacts in ``folder/art`` plus ``extra``; return the tracking URI."""
    uri = f"sqlite:///{folder}/mlflow.db"
    connection = {
        "conn_type": "mlflow",
        "host": uri,
        "extra": {"artifact_root": (folder / "art").as_uri(), **extra},
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))
    return uri
