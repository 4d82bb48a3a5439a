"""Configuration files of the pure core (gate policy, decay rule, business costs): YAML mappings turned into
frozen dataclasses that name the file and the field in every error."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from mlops_ops.core.errors import DataError


def read_yaml_mapping(path: str, what: str) -> dict[str, Any]:
    """The mapping in YAML file ``path`` (``{}`` for an empty file).

    :raises DataError: naming ``path`` and ``what`` when it cannot be read or is not a mapping.
    """
    import yaml

    try:
        with open(path) as handle:
            values = yaml.safe_load(handle) or {}
    except (OSError, yaml.YAMLError) as err:
        raise DataError(f"{path}: cannot read the {what}: {err}") from err
    if not isinstance(values, dict):
        raise DataError(f"{path}: the {what} must be a mapping, got {type(values).__name__}")
    return values


def refuse_unknown_fields(cls: type, values: dict[str, Any], origin: str) -> None:
    """Refuse keys of ``values`` that are not fields of dataclass ``cls`` (a typo must not be ignored)."""
    known = {item.name for item in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise DataError(f"{origin}: unknown field(s) {unknown}; expected some of {sorted(known)}")


class LoadableConfig:
    """Mixin of a configuration dataclass with ``from_dict(values, origin=...)``: :meth:`load` it from a YAML
    file path, a mapping, or an instance (returned as it is)."""

    #: What the file holds, for error messages ("gate policy").
    config_name: ClassVar[str] = "configuration"

    @classmethod
    def from_dict(
        cls, values: dict[str, Any], origin: str
    ) -> Any:  # pragma: no cover - each class defines it
        raise NotImplementedError

    @classmethod
    def load(cls, source: Any) -> Any:
        """An instance from a YAML file path, a mapping, or an instance."""
        if isinstance(source, cls):
            return source
        if isinstance(source, dict):
            return cls.from_dict(source, origin=cls.config_name)
        return cls.from_dict(read_yaml_mapping(source, cls.config_name), origin=str(source))
