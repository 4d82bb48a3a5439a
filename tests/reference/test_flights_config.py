"""The flights reference project's configuration files: its model spec, gate policy, decay rule, business costs
and expectation suite load, and pass both their JSON Schema and their loader.

Reference tier: these read the reference project's own files (include/flights), so they live outside the unit
tier (moved from tests/unit/core/test_config_schema.py, test_training.py, test_gate.py, test_modelspec.py and
test_performance.py; the unit tier checks
the same loaders on the synthetic files of tests/unit/synthetic.py)."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from mlops_ops.core.config_schema import KINDS, check_file, json_schema
from mlops_ops.core.gate import GatePolicy
from mlops_ops.core.modelspec import ModelSpec, load_callable
from mlops_ops.core.performance import BusinessCosts, DecayRule

PROJECT_ROOT = Path(__file__).resolve().parents[2]
REFERENCE_FILES = {
    "model-spec": "include/flights/model_spec.yaml",
    "gate-policy": "include/flights/gate.yaml",
    "decay-rule": "include/flights/decay.yaml",
    "business-costs": "include/flights/business_costs.yaml",
    "suite": "include/flights/expectations/flights_raw.json",
}


@pytest.mark.parametrize("kind", KINDS)
def test_the_reference_files_pass_both_the_schema_and_the_loader(kind):
    path = PROJECT_ROOT / REFERENCE_FILES[kind]
    jsonschema.validate(yaml.safe_load(path.read_text()), json_schema(kind))  # YAML reads JSON too
    check_file(kind, path)


def test_load_the_real_flights_spec():
    path = PROJECT_ROOT / "include" / "flights" / "model_spec.yaml"

    spec = ModelSpec.load(path)

    assert spec.name == "flight_delay"
    assert spec.target == "delayed"
    assert spec.categorical_features == ("carrier", "origin", "dest", "aircraft_type", "engine_type")
    assert spec.features[:6] == ["carrier", "origin", "dest", "aircraft_type", "engine_type", "day_of_week"]
    assert spec.feature_store == {
        "feature_service": "flight_delay_features",
        "timestamp_column": "time_hour",
        "entity_keys": "include.flights.feature_sources:with_route",
    }
    assert callable(load_callable(spec.feature_store["entity_keys"]))
    assert spec.holdout == {"time_column": "time_hour", "fraction": 0.2}
    assert spec.seed == 42
    assert spec.params["max_iter"] == 300
    assert callable(load_callable(spec.prepare))
    assert callable(load_callable(spec.estimator))
    assert ModelSpec.load(str(path)) == spec
    assert ModelSpec.load(spec) is spec


def test_load_reads_the_real_flights_policy():
    path = PROJECT_ROOT / "include" / "flights" / "gate.yaml"
    values = yaml.safe_load(path.read_text())

    policy = GatePolicy.load(str(path))

    assert policy.min_metrics == {"roc_auc": values["min_metrics"]["roc_auc"]}
    assert policy.max_metrics == {"log_loss": values["max_metrics"]["log_loss"]}
    assert policy.first_model == values["first_model"]
    assert policy.checks == tuple(values["checks"])
    assert all(":" in check for check in policy.checks)
    assert GatePolicy.load(policy) is policy
    assert GatePolicy.load(policy.to_dict()) == policy


def test_the_flights_spec_declares_the_request_ranges_the_api_used_to_hard_code():
    spec = ModelSpec.load(PROJECT_ROOT / "include" / "flights" / "model_spec.yaml")
    assert spec.bounds == {"flight": (0, 99999), "sched_arr_time": (0, 2359), "distance": (1, 10000)}


def test_the_reference_rule_and_costs_load_from_yaml():
    rule = DecayRule.load(str(PROJECT_ROOT / "include" / "flights" / "decay.yaml"))
    assert rule.min_metrics and rule.max_drop
    costs = BusinessCosts.load(str(PROJECT_ROOT / "include" / "flights" / "business_costs.yaml"))
    assert costs.missed_positive > costs.false_alarm > 0
