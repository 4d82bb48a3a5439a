"""Embedded defaults: where mlops-ops keeps its state when no connection or environment says otherwise.

Every default can be overridden by an environment variable, and the MLflow location by an Airflow
connection (``mlflow_default``), so the same DAGs run on a laptop and on the production stack. A missing MLflow
or trust connection falls back to the embedded state only in the embedded profile (``MLOPS_PROFILE=embedded``,
what ``make demo`` and ``make up`` set): anywhere else it is an error, so a production worker whose connection
is missing fails instead of writing a registry and a signing key of its own on local disk.
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


#: ``embedded`` lets hooks fall back to the embedded state when their connection does not exist.
PROFILE_ENV = "MLOPS_PROFILE"
EMBEDDED_PROFILE = "embedded"


def embedded_profile() -> bool:
    """Whether this process runs the embedded profile (``$MLOPS_PROFILE`` is ``embedded``)."""
    return os.environ.get(PROFILE_ENV, "").strip().lower() == EMBEDDED_PROFILE


def missing_connection(conn_id: str, conn_type: str, what: str) -> str:
    """The message for a connection that does not exist outside the embedded profile.

    :param what: what the connection holds, e.g. ``"host = the tracking URI"``.
    """
    return (
        f"no Airflow connection {conn_id!r}: create it (conn type {conn_type}, {what}), or set "
        f"{PROFILE_ENV}={EMBEDDED_PROFILE} to use the embedded state under {mlops_home()}"
    )


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
    return str(mlops_home() / "features") if "://" in root else root
