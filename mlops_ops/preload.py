"""Task processes that start with the operators' libraries already imported.

Airflow runs each task in a process forked from a worker: a LocalExecutor worker, or a process of a Celery
worker's pool. A worker that has not imported pandas, scikit-learn, MLflow, Great Expectations, Evidently and
Feast makes every task import them again: about 10 s of CPU per task for all of them (3.5 s for the task SDK,
pandas, pyarrow, scikit-learn and MLflow alone), on every try. A worker that imported them once hands them to
each task it forks, copy-on-write: a few milliseconds (benchmark ``task_preload``).

Two Airflow settings do it, and nothing in the DAGs changes:

LocalExecutor (Airflow 3.3; ``make up`` sets both)::

    [scheduler]
    mp_start_method = forkserver
    [core]
    mp_forkserver_preload = airflow.sdk,pandas,pyarrow,...   # ",".join(installed_preload_modules())

CeleryExecutor (each worker imports them once, before it forks its pool)::

    [celery]
    celery_config_options = mlops_ops.preload.CELERY_CONFIG

``CELERY_CONFIG`` is the Celery provider's default configuration, with the installed modules of
:data:`TASK_PRELOAD_MODULES` added to Celery's ``imports``. A team whose own training code imports another heavy
library can build the same from :func:`installed_preload_modules` plus its own.
"""

from __future__ import annotations

import importlib.util
from typing import Any

#: What the lifecycle's tasks import before their operators do any work, in import order. The modules of an
#: extra that is not installed are left out by :func:`installed_preload_modules`.
TASK_PRELOAD_MODULES = (
    "airflow.sdk",
    "pandas",
    "pyarrow",
    "pyarrow.parquet",
    "sklearn.ensemble",
    "mlflow",
    "mlflow.sklearn",
    "great_expectations",
    "evidently",
    "feast",
)


def installed_preload_modules(modules: tuple[str, ...] = TASK_PRELOAD_MODULES) -> tuple[str, ...]:
    """``modules`` whose top-level package is installed here (Celery's ``imports`` fails on a missing one)."""
    return tuple(name for name in modules if importlib.util.find_spec(name.partition(".")[0]) is not None)


def __getattr__(name: str) -> Any:
    # Built on first use, so that importing this module reads no Airflow configuration and needs no Celery.
    if name == "CELERY_CONFIG":
        from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

        imports = tuple(DEFAULT_CELERY_CONFIG.get("imports") or ())
        return {**DEFAULT_CELERY_CONFIG, "imports": (*imports, *installed_preload_modules())}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
