"""The configuration files' JSON Schema: generated from the loaders, published in docs/schemas/, agreeing with the
loaders on good files (the synthetic model's of tests/unit/synthetic.py) and on bad ones. The flights reference
project's own files are checked in tests/reference/test_flights_config.py."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from mlops_ops.cli import main
from mlops_ops.core.config_schema import KINDS, _classes, check_file, json_schema
from mlops_ops.core.errors import DataError
from tests.unit import synthetic

PROJECT_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def good_files(tmp_path) -> dict[str, Path]:
    """A good file of each kind: the synthetic visit model's configuration."""
    return synthetic.config_files(tmp_path / "config")


def test_every_kind_has_a_loader():
    assert (*_classes(), "suite") == KINDS


@pytest.mark.parametrize("kind", KINDS)
def test_the_published_schema_is_the_one_the_code_generates(kind):
    """Regenerate with `uv run mlops-ops config schema KIND --out docs/schemas/KIND.schema.json`."""
    published = json.loads((PROJECT_ROOT / "docs" / "schemas" / f"{kind}.schema.json").read_text())
    assert published == json_schema(kind)


@pytest.mark.parametrize("kind", KINDS)
def test_good_files_pass_both_the_schema_and_the_loader(kind, good_files):
    path = good_files[kind]
    jsonschema.validate(yaml.safe_load(path.read_text()), json_schema(kind))  # YAML reads JSON too
    check_file(kind, path)


def test_a_suite_with_a_misspelt_key_is_refused_by_both_instead_of_checking_nothing(tmp_path, good_files):
    suite = json.loads(good_files["suite"].read_text())
    suite["expectaions"] = suite.pop("expectations")
    with pytest.raises(jsonschema.ValidationError, match="'expectaions' was unexpected"):
        jsonschema.validate(suite, json_schema("suite"))
    path = tmp_path / "suite.json"
    path.write_text(json.dumps(suite))
    with pytest.raises(DataError, match=r"suite.json: unknown suite key\(s\) \['expectaions'\]"):
        check_file("suite", path)


def test_each_field_is_documented_and_unknown_fields_are_refused_by_both(tmp_path, good_files):
    schema = json_schema("model-spec")
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"name", "target", "categorical_features", "numerical_features"}
    assert all(prop.get("description") for prop in schema["properties"].values())
    values = {**yaml.safe_load(good_files["model-spec"].read_text()), "traget": "x"}
    with pytest.raises(jsonschema.ValidationError, match="'traget' was unexpected"):
        jsonschema.validate(values, schema)
    bad = tmp_path / "spec.yaml"
    bad.write_text(yaml.safe_dump(values))
    with pytest.raises(DataError, match=r"spec.yaml: unknown field\(s\) \['traget'\]"):
        check_file("model-spec", bad)


def test_the_command_line_prints_schemas_and_checks_files(tmp_path, capsys, good_files):
    assert main(["config", "schema", "gate-policy"]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "gate-policy"
    bad = tmp_path / "gate.yaml"
    bad.write_text("first_model: maybe\n")
    good = good_files["gate-policy"]
    assert main(["config", "check", "gate-policy", str(good), str(bad)]) == 2
    out, err = capsys.readouterr()
    assert f"{good}: a valid gate-policy" in out
    assert "first_model must be 'accept' or 'reject', got 'maybe'" in err and "gate.yaml" in err
    with pytest.raises(SystemExit):
        main(["config", "schema", "pipeline"])
