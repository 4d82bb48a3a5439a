"""The embedded default deployment: Airflow and MLflow on one machine, state kept in the project folder.

Airflow on SQLite under ``.airflow/``, MLflow tracking and registry on SQLite at ``.mlops/mlflow.db`` with
artifacts under ``.mlops/artifacts``, data under ``.mlops/data``. Every value is only a default: a variable
already set in the environment wins, so the same commands run against the production stack.
"""

from __future__ import annotations

import os
from pathlib import Path

from mlops_ops.preload import installed_preload_modules


def embedded_environment(project: Path) -> dict[str, str]:
    """Environment variables of the embedded deployment for the project at ``project``."""
    project = project.resolve()
    return {
        "AIRFLOW_HOME": str(project / ".airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(project / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(project / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # A 2-core machine: a few task processes at once, one DAG run of each DAG at a time.
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "2",
        "AIRFLOW__SCHEDULER__PARSING_PROCESSES": "1",
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        # Every task process is forked by a LocalExecutor worker. Started by a forkserver that has imported the
        # libraries the operators use, a worker hands them to each task copy-on-write instead of each task
        # importing them again (Airflow 3.3's own settings; see mlops_ops.preload).
        "AIRFLOW__SCHEDULER__MP_START_METHOD": "forkserver",
        "AIRFLOW__CORE__MP_FORKSERVER_PRELOAD": ",".join(installed_preload_modules()),
        # Sensors wait in the triggerer, not in a worker slot (DataVersionSensor honours this default).
        "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True",
        # The connection form's "Test" button calls the hook's test_connection() (off by default in Airflow 3).
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "MLOPS_HOME": str(project / ".mlops"),
        # Hooks without their connection use the embedded state (.mlops/) only in this profile.
        "MLOPS_PROFILE": "embedded",
        # The reference project's feature repository, read by FeastHook when no feast_default connection exists.
        "MLOPS_FEAST_REPO": str(project / "include" / "flights" / "feature_repo"),
        "GX_ANALYTICS_ENABLED": "false",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        # include/ (the reference use case) is imported as a package from the project root.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(project), os.environ.get("PYTHONPATH", "")])),
    }


def apply_embedded_defaults(project: Path) -> dict[str, str]:
    """Set the embedded defaults in ``os.environ`` where not set already; return the effective values.

    Must run before ``airflow`` is imported in this process: Airflow reads its configuration at import.
    """
    for key, value in embedded_environment(project).items():
        if key == "PYTHONPATH":
            os.environ[key] = value
        else:
            os.environ.setdefault(key, value)
    return {key: os.environ[key] for key in embedded_environment(project)}
