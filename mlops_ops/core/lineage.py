"""Lineage recorded on every run and model version: where the model came from and why it was made.

All tags share the ``mlops.`` prefix so they can be searched in MLflow (``tags.`mlops.data_version` = '...'``).
"""

from __future__ import annotations

import hashlib
import os

# Runs git only, with a fixed argument list and no shell.
import subprocess  # nosec B404
from importlib import metadata
from pathlib import Path
from typing import Any

PREFIX = "mlops."
DATA_VERSION = PREFIX + "data_version"
DATA_FILES = PREFIX + "data_files"
#: The point-in-time training set a model was trained on: ``{"uri", "feature_service", "fingerprint", "rows"}``.
FEATURE_SET = PREFIX + "feature_set"
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
MAP_INDEX = PREFIX + "airflow.map_index"
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

#: The revision recorded when the code's origin cannot be known; such trainings are never taken as identical.
UNKNOWN_REVISION = "unknown"

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
    """The code revision: ``$MLOPS_CODE_REVISION``, else the git commit of ``path``.

    :return: a commit id; ``<commit>+dirty.<hash of the uncommitted diff>`` when tracked files were edited;
        ``"unknown"`` outside a git checkout (a packaged image without .git: set ``MLOPS_CODE_REVISION`` at
        image build, as the Dockerfile does).
    """
    if os.environ.get("MLOPS_CODE_REVISION"):
        return os.environ["MLOPS_CODE_REVISION"]
    folder = str(Path(path or Path.cwd()).resolve())
    if not Path(folder).is_dir():
        folder = str(Path(folder).parent)
    try:
        # git from PATH on purpose (its location differs per image); fixed arguments, no shell.
        commit = subprocess.run(  # nosec B603 B607
            ["git", "-C", folder, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        changes = subprocess.run(  # nosec B603 B607
            ["git", "-C", folder, "diff", "HEAD", "--binary"], capture_output=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN_REVISION
    if not changes:
        return commit
    # Uncommitted edits are part of the code: two different edits must not share a revision.
    return f"{commit}+dirty.{hashlib.sha256(changes).hexdigest()[:12]}"


def airflow_tags(
    dag_id: str | None,
    run_id: str | None,
    task_id: str | None,
    try_number: Any,
    map_index: Any = None,
) -> dict[str, str]:
    """Tags naming the Airflow task try that made a run or version (``map_index`` -1 when not mapped)."""
    values = {DAG_ID: dag_id, RUN_ID: run_id, TASK_ID: task_id, TRY_NUMBER: try_number, MAP_INDEX: map_index}
    return {key: str(value) for key, value in values.items() if value is not None}


def airflow_tags_of(task_instance: Any) -> dict[str, str]:
    """:func:`airflow_tags` of a running task instance (``context["ti"]``); empty outside Airflow."""
    return airflow_tags(
        *(
            getattr(task_instance, name, None)
            for name in ("dag_id", "run_id", "task_id", "try_number", "map_index")
        )
    )


def clip_tag(value: str) -> str:
    """``value`` cut to what every MLflow backend stores."""
    return value if len(value) <= MAX_TAG_LENGTH else value[: MAX_TAG_LENGTH - 3] + "..."


def dataset_identity(location: str) -> tuple[str, str]:
    """The OpenLineage ``(namespace, name)`` of a data location, after OpenLineage's naming conventions:
    ``s3://bucket/key`` -> ``("s3://bucket", "key")``, a local path or ``file://`` URL -> ``("file", "/abs/path")``.
    """
    location = str(location)
    if "://" in location and not location.startswith("file://"):
        scheme, rest = location.split("://", 1)
        bucket, _, key = rest.partition("/")
        return f"{scheme}://{bucket}", key
    path = location.removeprefix("file://")
    return "file", str(Path(path).absolute())
