"""One contract over every operator, sensor and trigger the provider registers (scikit-learn's
``parametrize_with_checks`` idea): construction does no I/O, template fields are real arguments, docstrings
document every argument, triggers round-trip ``serialize()``, modules import nothing heavy."""

from __future__ import annotations

import builtins
import importlib
import inspect
import json
import os
import socket
import subprocess
import sys
from unittest import mock

import pytest
from airflow.sdk import BaseHook, BaseOperator

from mlops_ops.assets import retrain_request_asset
from mlops_ops.get_provider_info import get_provider_info

INFO = get_provider_info()
OPERATOR_MODULES = [m for group in INFO["operators"] + INFO["sensors"] for m in group["python-modules"]]
TRIGGER_MODULES = [m for group in INFO["triggers"] for m in group["python-modules"]]
HOOK_MODULES = [m for group in INFO["hooks"] for m in group["python-modules"]]
HEAVY = {
    "mlflow",
    "evidently",
    "great_expectations",
    "feast",
    "sklearn",
    "pandas",
    "pyarrow",
    "boto3",
    "deltalake",
}

DATA_VERSION = {"fingerprint": "sha256:0", "source": "/data", "kind": "local", "files": ["/data/a.parquet"]}
TRAINING = {"run_id": "r", "model_uri": "models:/m-1", "evaluation_uri": "/e.parquet", "model_name": "m"}
#: Minimal arguments of each class; a new operator without an entry here fails test_every_class_is_covered.
ARGUMENTS = {
    "DataVersionSensor": {"source": "/data/flights"},
    "DataValidationOperator": {"data_version": DATA_VERSION, "suite": "suite.json"},
    "TrainOperator": {"model_spec": "spec.yaml", "data_version": DATA_VERSION},
    "EvaluateGateOperator": {"training": TRAINING, "model_spec": "spec.yaml", "policy": "gate.yaml"},
    "RegisterOperator": {"training": TRAINING, "decision": {"passed": True, "run_id": "r"}},
    "PromoteOperator": {"model_name": "m", "version": "2", "expected_version": "1"},
    "RollbackOperator": {"model_name": "m", "reason": "v2 mispredicts"},
    "PromotionRequestOperator": {"model_name": "m"},
    "RecordedApprovalOperator": {"subject": "Promote?", "body": "evidence"},
    "PinModelVersionOperator": {"model_name": "m"},
    "BatchScoreOperator": {
        "model_name": "m",
        "source": "/data/flights",
        "interval_start": "2013-07-01",
        "interval_end": "2013-07-02",
        "key_columns": ["id"],
        "time_column": "time_hour",
    },
    "PublishPredictionsOperator": {
        "model_name": "m",
        "interval_start": "2013-07-01",
        "interval_end": "2013-07-02",
        "model": {"name": "m", "version": "1"},
        "shard_count": 2,
    },
    "CompactStreamOperator": {
        "model_name": "m",
        "interval_start": "2013-07-01",
        "interval_end": "2013-07-02",
        "key_columns": ["id"],
    },
    "FeastMaterializeOperator": {},
    "FeatureSetOperator": {"entities": DATA_VERSION, "feature_service": "team_features"},
    "FeatureSkewCheckOperator": {"feature_service": "team_features"},
    "DriftCheckOperator": {
        "model_name": "m",
        "source": "/data/flights",
        "interval_start": "2013-07-01",
        "interval_end": "2013-07-08",
        "model_spec": "spec.yaml",
        "time_column": "time_hour",
    },
    "RequestRetrainOperator": {
        "model_name": "m",
        "request": retrain_request_asset("m"),
        "evidence": [],
    },
    "PerformanceMonitorOperator": {
        "model_name": "m",
        "labels_source": "/data/flights",
        "key_columns": ["id"],
        "time_column": "time_hour",
        "model_spec": "spec.yaml",
        "decay_rule": "decay.yaml",
        "business_costs": "costs.yaml",
    },
}


def _classes(modules, base):
    found = []
    for name in modules:
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if (
                cls.__module__ == name
                and issubclass(cls, base)
                and cls is not base
                and not cls.__name__.startswith("_")
            ):
                found.append(cls)
    return found


OPERATORS = _classes(OPERATOR_MODULES, BaseOperator)


def test_every_class_is_covered():
    assert sorted(cls.__name__ for cls in OPERATORS) == sorted(ARGUMENTS)


@pytest.mark.parametrize("cls", OPERATORS, ids=lambda cls: cls.__name__)
def test_construction_does_no_io(cls):
    def forbidden(*args, **kwargs):
        raise AssertionError(f"{cls.__name__}.__init__ did I/O: {args[:1]}")

    with (
        mock.patch.object(BaseHook, "get_connection", side_effect=forbidden),
        mock.patch.object(socket.socket, "connect", forbidden),
        mock.patch.object(builtins, "open", forbidden),
        mock.patch.object(subprocess, "run", forbidden),
    ):
        operator = cls(task_id="contract", **ARGUMENTS[cls.__name__])
    assert operator.task_id == "contract"


@pytest.mark.parametrize("cls", OPERATORS, ids=lambda cls: cls.__name__)
def test_template_fields_are_init_arguments_stored_under_their_name(cls):
    # Arguments of every class up the hierarchy: a subclass may inherit its templated arguments.
    parameters = {
        name
        for klass in cls.__mro__
        if issubclass(klass, BaseOperator) and klass is not BaseOperator and "__init__" in vars(klass)
        for name in inspect.signature(klass.__init__).parameters
    }
    operator = cls(task_id="contract", **ARGUMENTS[cls.__name__])
    for field in cls.template_fields:
        assert field in parameters, f"{cls.__name__}.template_fields has {field!r}, not an __init__ argument"
        assert hasattr(operator, field)
        # A template field named like a BaseOperator attribute (e.g. "params") breaks DAG serialization.
        assert field not in inspect.signature(BaseOperator.__init__).parameters, field


@pytest.mark.parametrize("cls", OPERATORS, ids=lambda cls: cls.__name__)
def test_docstring_documents_every_argument_and_the_result(cls):
    doc = inspect.getdoc(cls) or ""
    arguments = [
        name for name in inspect.signature(cls.__init__).parameters if name not in ("self", "kwargs")
    ]
    missing = [name for name in arguments if f":param {name}:" not in doc]
    assert missing == [], f"{cls.__name__} does not document {missing}"
    assert ":return:" in doc or cls.__name__.endswith("Sensor") and "XCom" in doc


@pytest.mark.parametrize("module_name", TRIGGER_MODULES)
def test_triggers_round_trip_serialize(module_name):
    from airflow.triggers.base import BaseTrigger

    triggers = _classes([module_name], BaseTrigger)
    assert triggers
    for cls in triggers:
        trigger = cls(source="/data/flights", seen_fingerprints=["sha256:0"], poke_interval=5.0)
        classpath, kwargs = trigger.serialize()
        json.dumps(kwargs)
        module, _, name = classpath.rpartition(".")
        rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
        assert rebuilt.serialize() == (classpath, kwargs)


def test_provider_modules_import_nothing_heavy():
    """What the dag-processor pays for importing our operators, sensors, triggers and hooks."""
    modules = OPERATOR_MODULES + TRIGGER_MODULES + HOOK_MODULES + ["mlops_ops.assets"]
    script = (
        "import json, sys\n"
        f"for name in {modules!r}: __import__(name)\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({sorted(HEAVY)!r}))))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=os.environ.copy()
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert json.loads(completed.stdout.strip().splitlines()[-1]) == []


def test_hooks_declare_their_connection():
    hooks = _classes(HOOK_MODULES, BaseHook)
    declared = {entry["hook-class-name"] for entry in INFO["connection-types"]}
    for hook in hooks:
        assert f"{hook.__module__}.{hook.__name__}" in declared
        for attribute in ("conn_name_attr", "default_conn_name", "conn_type", "hook_name"):
            assert getattr(hook, attribute), f"{hook.__name__}.{attribute} is empty"
        assert "test_connection" in vars(hook)
