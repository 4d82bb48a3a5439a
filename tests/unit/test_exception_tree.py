"""Every exception mlops-ops defines derives from MlopsError, and the kinds say what a caller can do."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import mlops_ops
from mlops_ops.core.errors import DataError, MlopsError, ModelIntegrityError, RefusedByPolicy
from mlops_ops.core.optional import MissingExtraError
from mlops_ops.core.services import ServiceUnavailable


def _defined_exceptions() -> dict[str, type[BaseException]]:
    found = {}
    for module_info in pkgutil.walk_packages(mlops_ops.__path__, prefix="mlops_ops."):
        module = importlib.import_module(module_info.name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
            ):
                found[f"{module.__name__}.{name}"] = value
    return found


def test_every_exception_of_the_library_derives_from_mlops_error():
    exceptions = _defined_exceptions()
    assert len(exceptions) >= 30  # the walk really reached the operators, hooks and core
    assert [name for name, cls in exceptions.items() if not issubclass(cls, MlopsError)] == []


@pytest.mark.parametrize(
    ("name", "kind", "builtin"),
    [
        ("mlops_ops.operators.promotion.PromotionRefused", RefusedByPolicy, None),
        ("mlops_ops.operators.gate.GateFailed", RefusedByPolicy, None),
        ("mlops_ops.operators.registry.RegistrationRefused", RefusedByPolicy, None),
        ("mlops_ops.core.alias_log.AliasLogError", ModelIntegrityError, RuntimeError),
        ("mlops_ops.core.artifact_scan.UnsafeArtifactError", ModelIntegrityError, RuntimeError),
        ("mlops_ops.core.signing.SignatureError", RefusedByPolicy, ValueError),
        ("mlops_ops.core.promotion.MoveRefused", RefusedByPolicy, ValueError),
        ("mlops_ops.operators.validation.DataValidationFailed", DataError, ValueError),
        ("mlops_ops.operators.features.TrainingSetRefused", DataError, ValueError),
        ("mlops_ops.core.storage.OutsideRoot", DataError, ValueError),
        ("mlops_ops.core.scoring.publish.UnseenCategoriesRejected", DataError, ValueError),
        ("mlops_ops.core.services.ServiceUnavailable", ServiceUnavailable, ConnectionError),
        ("mlops_ops.core.optional.MissingExtraError", MissingExtraError, ImportError),
    ],
)
def test_each_exception_has_its_kind_and_keeps_its_builtin_base(name, kind, builtin):
    cls = _defined_exceptions()[name]
    assert issubclass(cls, kind)
    if builtin is not None:  # code that caught the built-in base before goes on catching it
        assert issubclass(cls, builtin)


def test_operator_failures_are_airflow_fail_exceptions_so_they_are_not_retried():
    from airflow.sdk.exceptions import AirflowFailException

    operator_errors = {
        name: cls
        for name, cls in _defined_exceptions().items()
        if name.startswith(("mlops_ops.operators.", "mlops_ops.sensors."))
        and not name.endswith("DataSourceError")
    }
    assert len(operator_errors) >= 12
    assert [name for name, cls in operator_errors.items() if not issubclass(cls, AirflowFailException)] == []
