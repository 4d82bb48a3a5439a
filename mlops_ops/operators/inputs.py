"""Coercion of operator inputs that arrive as XCom values or rendered templates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Importable from here as before (team DAGs use it); it lives with the step results it parses.
from mlops_ops.core.contracts import as_mapping as as_mapping


def project_path(path: str | Path, dag_folder: str | None) -> Path:
    """Find a project file: ``path`` as is when absolute, else under the project root, else the working dir.

    The project root is the parent of the DAG's folder (``dags/``), which is where ``include/`` lives in an
    Airflow project (the Astro layout).

    :raises FileNotFoundError: naming every place looked in.
    """
    candidate = Path(path).expanduser()
    if candidate.is_absolute():
        if candidate.is_file():
            return candidate
        raise FileNotFoundError(f"{candidate} does not exist")
    places = ([Path(dag_folder).resolve().parent / candidate] if dag_folder else []) + [
        Path.cwd() / candidate
    ]
    for place in places:
        if place.is_file():
            return place
    raise FileNotFoundError(f"{str(path)!r} not found (looked in: {', '.join(map(str, places))})")


def config_source(source: str | dict[str, Any], dag_folder: str | None) -> str | dict[str, Any]:
    """A configuration argument as a ``load`` method takes it: a mapping as is, a path found in the project.

    :raises FileNotFoundError: naming every place looked in.
    """
    return source if isinstance(source, dict) else str(project_path(source, dag_folder))


def dag_folder_of(context: Any) -> str | None:
    """The folder of the DAG file of the running task, if known."""
    dag = (context or {}).get("dag")
    fileloc = getattr(dag, "fileloc", None)
    return str(Path(fileloc).parent) if fileloc else None


def load_model_spec(model_spec: str | dict[str, Any], dag_folder: str | None) -> Any:
    """The :class:`~mlops_ops.core.modelspec.ModelSpec` of a mapping or of a YAML path in the project.

    :raises ValueError: (a ``DataError``) for an invalid spec; :raises FileNotFoundError: naming where it looked.
    """
    from mlops_ops.core.modelspec import ModelSpec

    return ModelSpec.load(
        model_spec if isinstance(model_spec, dict) else project_path(model_spec, dag_folder)
    )
