"""Coercion of operator inputs that arrive as XCom values or rendered templates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def as_mapping(value: Any, argument: str) -> dict[str, Any]:
    """``value`` as a dict: a dict as is, a JSON string parsed (templates render XCom dicts as strings).

    :raises ValueError: naming ``argument`` when the value is empty or not a JSON object.
    """
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.strip():
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            # Jinja renders a dict with Python's repr unless the DAG renders native objects.
            import ast

            try:
                parsed = ast.literal_eval(value)
            except (ValueError, SyntaxError) as err:
                raise ValueError(f"{argument} is neither a mapping nor JSON: {value[:200]!r}") from err
        if isinstance(parsed, dict):
            return parsed
    raise ValueError(
        f"{argument} must be a mapping (or its JSON), got {type(value).__name__}: {str(value)[:200]!r}"
    )


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
