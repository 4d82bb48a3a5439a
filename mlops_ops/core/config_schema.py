"""JSON Schema of the configuration files a team writes (model spec, gate policy, decay rule, business costs),
generated from the dataclasses that load them, so the schema and the loader cannot disagree; and of the
expectation suite, kept beside the code that checks it (:func:`mlops_ops.core.validation.suite.suite_json_schema`).

An editor or a team's CI validates files against the schema; :func:`check_file` loads a file exactly as the
operators will, with errors that name the file and the field.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlops_ops.core.errors import DataError

#: The draft the schemas declare.
DRAFT = "https://json-schema.org/draft/2020-12/schema"

_PARAM = re.compile(r"^:param (\w+):\s*(.*)$")
_ROLE = re.compile(r":\w+:`~?([^`]+)`")


def _plain(text: str) -> str:
    """Docstring markup as an editor shows it: roles dropped, double backquotes made single."""
    return _ROLE.sub(r"\1", text).replace("``", "`")


def _classes() -> dict[str, Any]:
    """The configuration kinds and the class that loads each (imported here: the classes import pandas-free
    modules only, but this module is imported by the command line, which stays fast)."""
    from mlops_ops.core.gate import GatePolicy
    from mlops_ops.core.modelspec import ModelSpec
    from mlops_ops.core.performance import BusinessCosts, DecayRule

    return {
        "model-spec": ModelSpec,
        "gate-policy": GatePolicy,
        "decay-rule": DecayRule,
        "business-costs": BusinessCosts,
    }


#: The kinds of configuration file, as the command line names them.
KINDS = ("model-spec", "gate-policy", "decay-rule", "business-costs", "suite")


def _checked_kind(kind: str) -> Any:
    classes = _classes()
    if kind == "suite":
        return None
    if kind not in classes:
        raise DataError(f"unknown configuration kind {kind!r}; expected one of {list(KINDS)}")
    return classes[kind]


def _docstring_parts(cls: type) -> tuple[str, dict[str, str]]:
    """The summary of ``cls``'s docstring and its ``:param name:`` texts (continuation lines joined)."""
    summary: list[str] = []
    params: dict[str, str] = {}
    current: str | None = None
    in_summary = True
    for raw in (cls.__doc__ or "").strip().splitlines():
        line = raw.strip()
        match = _PARAM.match(line)
        if match:
            current = match.group(1)
            params[current] = match.group(2)
        elif current is not None and line:
            params[current] += " " + line
        elif not line:
            in_summary = False  # the summary is the first paragraph
        elif in_summary:
            summary.append(line)
    return _plain(" ".join(summary)), {name: _plain(text) for name, text in params.items()}


def json_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of a configuration kind (:data:`KINDS`).

    Unknown fields are refused (``additionalProperties: false``), as the loader refuses them; each property
    carries the field's documentation.

    :raises DataError: for an unknown kind.
    """
    from pydantic import TypeAdapter

    cls = _checked_kind(kind)
    if cls is None:
        from mlops_ops.core.validation.suite import suite_json_schema

        return suite_json_schema()
    schema: dict[str, Any] = TypeAdapter(cls).json_schema()
    summary, params = _docstring_parts(cls)
    for name, prop in schema.get("properties", {}).items():
        prop.pop("title", None)
        if name in params:
            prop["description"] = params[name]
    schema["description"] = summary
    schema["additionalProperties"] = False
    return {"$schema": DRAFT, **schema, "title": kind}


def check_file(kind: str, path: str | Path) -> Any:
    """Load ``path`` as a ``kind`` file exactly as the operators load it.

    :return: the loaded configuration.
    :raises DataError: naming the file and the field that is wrong (or the unknown kind).
    """
    cls = _checked_kind(kind)
    if cls is None:
        from mlops_ops.core.validation.suite import load_suite

        return load_suite(path)
    loader: Callable[[Any], Any] = cls.load
    return loader(str(path))
