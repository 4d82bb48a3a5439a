"""Expectation suites: read, checked and normalised before any file is validated."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mlops_ops.core.errors import DataError
from mlops_ops.core.validation.expectations import _referenced_columns
from mlops_ops.core.validation.gx import _gx_module, _to_gx_expectation

#: The keys a suite may hold; any other is refused (a misspelt "expectations" would otherwise check nothing).
SUITE_KEYS = ("name", "columns", "expectations", "max_string_length", "max_string_length_per_column")
#: Keys kept for people and tools (Great Expectations' own suites carry them), never read.
INFORMATIONAL_KEYS = ("$schema", "description", "meta", "notes", "id")


def suite_json_schema() -> dict[str, Any]:
    """The JSON Schema of a suite file: the shape :func:`check_suite` accepts (GX itself then checks each
    expectation type and its kwargs, which a schema cannot list)."""
    positive = {"type": "integer", "minimum": 1}
    dtypes = {"type": "string", "minLength": 1}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "suite",
        "description": "A plain-JSON Great Expectations suite: dtypes per column, text lengths, expectations.",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "name": {
                "type": "string",
                "minLength": 1,
                "description": "the suite's name (default the file's)",
            },
            "columns": {
                "type": "object",
                "description": "column -> an accepted pandas dtype, an 'arrow:<type>', or a list of them",
                "additionalProperties": {
                    "anyOf": [dtypes, {"type": "array", "items": dtypes, "minItems": 1}],
                },
            },
            "expectations": {
                "type": "array",
                "description": "Great Expectations 1.x expectation types with their kwargs",
                "items": {
                    "type": "object",
                    "required": ["type"],
                    "properties": {"type": {"type": "string"}, "kwargs": {"type": "object"}},
                },
            },
            "max_string_length": {**positive, "description": "longest text value, in characters"},
            "max_string_length_per_column": {
                "type": "object",
                "description": "column -> its longest text value, in characters",
                "additionalProperties": positive,
            },
            **{key: {"description": "kept for people and tools, never read"} for key in INFORMATIONAL_KEYS},
        },
    }


def load_suite(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check a plain-JSON expectation suite.

    :param path: the suite file.
    :return: the suite as a dict with ``name``, ``columns`` (possibly empty) and ``expectations``.
    :raises DataError: naming the file, if it is missing, not JSON, malformed, or names an unknown expectation
        type or invalid kwargs.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise DataError(f"{source}: cannot read expectation suite ({err})") from err
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{source}: expectation suite is not valid JSON ({err})") from err
    if isinstance(raw, dict):
        raw.setdefault("name", Path(path).stem)
    return check_suite(raw, source=source)


def check_suite(suite: Any, source: str = "<suite>") -> dict[str, Any]:
    """Check a suite's shape and that every expectation type and its kwargs are known to GX.

    :param suite: the parsed suite.
    :param source: where it came from, for error messages.
    :return: a normalised copy: ``name``, ``columns`` (column -> list of accepted dtypes), ``expectations``
        (each with ``type`` and ``kwargs``), ``max_string_length`` (``None``: not set) and
        ``max_string_length_per_column`` (column -> characters, possibly empty).
    :raises DataError: naming ``source`` and what is wrong.
    """
    normalised = _normalise_suite(suite, source)
    if normalised["expectations"]:
        _gx_module()
        for position, item in enumerate(normalised["expectations"]):
            _to_gx_expectation(item["type"], item["kwargs"], position, source)
    return normalised


def _normalise_suite(suite: Any, source: str) -> dict[str, Any]:
    """Check the suite's JSON shape (no GX) and return a normalised copy; idempotent."""
    if not isinstance(suite, Mapping):
        raise DataError(f"{source}: expectation suite must be a JSON object, got {type(suite).__name__}")
    unknown = sorted(str(key) for key in suite if key not in SUITE_KEYS + INFORMATIONAL_KEYS)
    if unknown:
        raise DataError(f"{source}: unknown suite key(s) {unknown}; expected some of {list(SUITE_KEYS)}")
    name = suite.get("name")
    if not isinstance(name, str) or not name:
        raise DataError(f"{source}: expectation suite needs a non-empty string 'name'")
    columns_raw = suite.get("columns") or {}
    if not isinstance(columns_raw, Mapping):
        raise DataError(f"{source}: 'columns' must map column names to dtypes")
    columns: dict[str, list[str]] = {}
    for column, dtypes in columns_raw.items():
        accepted = [dtypes] if isinstance(dtypes, str) else dtypes
        if not isinstance(accepted, list) or not accepted or not all(isinstance(d, str) for d in accepted):
            raise DataError(f"{source}: 'columns'.{column} must be a dtype string or a list of them")
        columns[str(column)] = list(accepted)
    max_length = suite.get("max_string_length")
    if max_length is not None and not _positive_int(max_length):
        raise DataError(f"{source}: 'max_string_length' must be a positive integer, got {max_length!r}")
    per_column_raw = suite.get("max_string_length_per_column") or {}
    if not isinstance(per_column_raw, Mapping) or not all(_positive_int(v) for v in per_column_raw.values()):
        raise DataError(
            f"{source}: 'max_string_length_per_column' must map column names to positive integers"
        )
    expectations_raw = suite.get("expectations", [])
    if not isinstance(expectations_raw, list):
        raise DataError(f"{source}: 'expectations' must be a list")
    expectations = []
    for position, item in enumerate(expectations_raw):
        if not isinstance(item, Mapping) or not isinstance(item.get("type"), str):
            raise DataError(f"{source}: expectation #{position} must be an object with a string 'type'")
        kwargs = item.get("kwargs", {})
        if not isinstance(kwargs, Mapping):
            raise DataError(f"{source}: expectation #{position} ({item['type']}): 'kwargs' must be an object")
        expectations.append({"type": item["type"], "kwargs": dict(kwargs)})
    return {
        "name": name,
        "columns": columns,
        "expectations": expectations,
        "max_string_length": max_length,
        "max_string_length_per_column": {str(column): int(n) for column, n in per_column_raw.items()},
    }


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def without_columns(suite: Mapping[str, Any], columns: Iterable[str]) -> dict[str, Any]:
    """The suite less what it says about ``columns`` alone: their dtype entries and every expectation whose
    columns are all among them (a compound expectation that also names other columns is kept).

    For input that legitimately lacks some columns' values: batch scoring's rows, whose labels arrive later.

    :param suite: a suite from :func:`load_suite` or a dict of the same shape.
    :param columns: the columns not to judge.
    :return: a normalised copy.
    """
    suite = _normalise_suite(suite, source=f"suite {suite.get('name')!r}")
    excluded = set(columns)
    return {
        "name": suite["name"],
        "columns": {column: dtypes for column, dtypes in suite["columns"].items() if column not in excluded},
        "expectations": [
            item
            for item in suite["expectations"]
            if not (referenced := _referenced_columns(item["kwargs"])) or not set(referenced) <= excluded
        ],
        "max_string_length": suite["max_string_length"],
        "max_string_length_per_column": dict(suite["max_string_length_per_column"]),
    }
