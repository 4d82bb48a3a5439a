"""Import of optional integrations, failing with the name of the extra that provides them."""

from __future__ import annotations

import importlib
from types import ModuleType

from mlops_ops.core.errors import MlopsError


class MissingExtraError(MlopsError, ImportError):
    """An optional integration is used but its ``mlops-ops[extra]`` is not installed."""


def import_optional(module_name: str, extra: str) -> ModuleType:
    """Import ``module_name`` or raise :class:`MissingExtraError` naming the extra to install.

    :param module_name: the module to import, e.g. ``"great_expectations"``.
    :param extra: the mlops-ops extra that installs it, e.g. ``"validation"``.
    :return: the imported module.
    """
    try:
        return importlib.import_module(module_name)
    except ImportError as err:
        raise MissingExtraError(
            f"{module_name!r} is not installed: install it with `pip install 'mlops-ops[{extra}]'` "
            f"(or 'mlops-ops[all]')."
        ) from err
