"""Embedded defaults: where mlops-ops keeps its state when no connection or environment says otherwise.

Every default can be overridden by an environment variable, and the MLflow location by an Airflow
connection (``mlflow_default``), so the same DAGs run on a laptop and on the production stack.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Root of the embedded state (MLflow database, artifacts, data), ``.mlops`` in the working directory.
MLOPS_HOME_ENV = "MLOPS_HOME"
#: Overrides the MLflow tracking URI when no ``mlflow_default`` connection exists.
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
#: Overrides the landing zone / data root (a local folder or an ``s3://`` URI).
DATA_ROOT_ENV = "MLOPS_DATA_ROOT"
#: Overrides where the feature store's offline sources and registry live (a local or mounted folder).
FEATURE_ROOT_ENV = "MLOPS_FEATURE_ROOT"


def mlops_home() -> Path:
    """The embedded state folder, absolute, from ``$MLOPS_HOME`` or ``./.mlops``."""
    return Path(os.environ.get(MLOPS_HOME_ENV, ".mlops")).resolve()


def default_tracking_uri() -> str:
    """MLflow tracking and registry URI: ``$MLFLOW_TRACKING_URI`` or SQLite under :func:`mlops_home`."""
    return os.environ.get(TRACKING_URI_ENV) or f"sqlite:///{mlops_home() / 'mlflow.db'}"


def default_artifact_root() -> str:
    """Artifact root for experiments created by mlops-ops: always explicit, never cwd-relative."""
    return os.environ.get("MLOPS_ARTIFACT_ROOT") or (mlops_home() / "artifacts").as_uri()


def data_root() -> str:
    """Root of landed data and outputs: ``$MLOPS_DATA_ROOT`` (path or ``s3://`` URI) or ``.mlops/data``."""
    return os.environ.get(DATA_ROOT_ENV) or str(mlops_home() / "data")


def feature_root() -> str:
    """Root of the feature store's offline sources, registry and SQLite online store: ``$MLOPS_FEATURE_ROOT``,
    else the data root when it is local, else ``<mlops home>/features`` (Feast's file offline store reads
    local Parquet, so an ``s3://`` data root keeps its feature sources on a local or mounted folder)."""
    configured = os.environ.get(FEATURE_ROOT_ENV)
    if configured:
        return configured
    root = data_root()
    return str(mlops_home() / "features") if root.startswith("s3://") else root
