"""Lineage recorded on every run and model version: where the model came from and why it was made.

All tags share the ``mlops.`` prefix so they can be searched in MLflow (``tags.`mlops.data_version` = '...'``).
"""

from __future__ import annotations

import os
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

PREFIX = "mlops."
DATA_VERSION = PREFIX + "data_version"
DATA_FILES = PREFIX + "data_files"
TRAINING_RUN = PREFIX + "training_run_id"
TRAINING_KEY = PREFIX + "training_key"
CODE_REVISION = PREFIX + "code_revision"
SEED = PREFIX + "seed"
TRIGGER_REASON = PREFIX + "trigger_reason"
ARTIFACT_SHA256 = PREFIX + "artifact_sha256"
GATE_PASSED = PREFIX + "gate.passed"
GATE_SUMMARY = PREFIX + "gate.summary"
DAG_ID = PREFIX + "airflow.dag_id"
RUN_ID = PREFIX + "airflow.run_id"
TASK_ID = PREFIX + "airflow.task_id"
TRY_NUMBER = PREFIX + "airflow.try_number"
MODEL_SPEC = PREFIX + "model_spec"
DEVICE = PREFIX + "device"

#: Libraries whose versions decide what a model computes; recorded with every training.
TRACKED_LIBRARIES = (
    "scikit-learn",
    "numpy",
    "pandas",
    "pyarrow",
    "scipy",
    "mlflow",
    "apache-airflow",
    "mlops-ops",
)

#: MLflow tag values are limited to 5000 characters on most backends.
MAX_TAG_LENGTH = 5000


def library_versions(names: tuple[str, ...] = TRACKED_LIBRARIES) -> dict[str, str]:
    """Installed versions of ``names`` (missing ones are left out)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def pip_requirements(names: tuple[str, ...] = ("scikit-learn", "numpy", "pandas", "scipy")) -> list[str]:
    """Pinned requirements for a logged model; explicit, because MLflow's inference takes seconds."""
    return [f"{name}=={version}" for name, version in library_versions(names).items()]


def code_revision(path: str | Path | None = None) -> str:
    """The code revision: ``$MLOPS_CODE_REVISION``, else the git commit of ``path`` (``+dirty`` if modified).

    :return: a commit id, or ``"unknown"`` outside a git checkout (e.g. a packaged image without .git: set
        ``MLOPS_CODE_REVISION`` at image build).
    """
    if os.environ.get("MLOPS_CODE_REVISION"):
        return os.environ["MLOPS_CODE_REVISION"]
    folder = str(Path(path or Path.cwd()).resolve())
    if not Path(folder).is_dir():
        folder = str(Path(folder).parent)
    try:
        commit = subprocess.run(
            ["git", "-C", folder, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", folder, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}+dirty" if dirty else commit


def airflow_tags(
    dag_id: str | None, run_id: str | None, task_id: str | None, try_number: Any
) -> dict[str, str]:
    """Tags naming the Airflow task try that made a run or version."""
    values = {DAG_ID: dag_id, RUN_ID: run_id, TASK_ID: task_id, TRY_NUMBER: try_number}
    return {key: str(value) for key, value in values.items() if value is not None}


def clip_tag(value: str) -> str:
    """``value`` cut to what every MLflow backend stores."""
    return value if len(value) <= MAX_TAG_LENGTH else value[: MAX_TAG_LENGTH - 3] + "..."
