"""``mlops-ops ci check-data`` and ``ci check-model`` through the real command line, on the synthetic shop visits
of tests/unit/synthetic.py and on synthetic multiclass and regression data; and the CI templates against the real
parser."""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from mlops_ops.ci import checks
from mlops_ops.ci.checks import EXIT_CHECKS_FAILED, EXIT_PASSED, EXIT_UNUSABLE_INPUT
from mlops_ops.cli import build_parser, main
from mlops_ops.core.gate import GateCheck
from tests.unit import synthetic

PROJECT_ROOT = Path(__file__).resolve().parents[3]
TEMPLATES = sorted((PROJECT_ROOT / "docs/ci-templates").glob("*.yml"))
THIS_MODULE = "tests.unit.ci.test_checks"
#: The synthetic visits' uniqueness key, as --unique-key takes it.
KEY = ",".join(synthetic.KEY)


# --- behavioural checks referenced as "tests.unit.ci.test_checks:..." ---------------------------------------


def every_class_is_predicted(model: Any, frame: pd.DataFrame, spec: Any) -> GateCheck:
    from mlops_ops.core.training import features_frame

    predicted = set(model.predict(features_frame(frame, spec)))
    missing = sorted(set(frame[spec.target]) - predicted)
    return GateCheck("every class is predicted", not missing, detail=f"never predicted: {missing}")


def errors_under_a_tenth(model: Any, frame: pd.DataFrame, spec: Any) -> GateCheck:
    from mlops_ops.core.training import features_frame

    worst = float(np.abs(model.predict(features_frame(frame, spec)) - frame[spec.target]).max())
    return GateCheck("largest error", worst <= 0.1, worst, 0.1, "<=")


def check_that_raises(model: Any, frame: pd.DataFrame, spec: Any) -> bool:
    raise RuntimeError("boom on purpose")


# --- fixtures -----------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _sys_path_restored(monkeypatch):
    """check-model puts the working directory on sys.path, as the console script needs; not for other tests."""
    monkeypatch.setattr(sys, "path", list(sys.path))


@pytest.fixture(scope="module")
def visits() -> pd.DataFrame:
    """6,000 synthetic raw visits, one every 5 minutes from 1 January 2024 (about three weeks), with visit_time a
    UTC timestamp as landed."""
    return synthetic.visits(6000, seed=7)


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> dict[str, Path]:
    """The synthetic suite, spec and gate policy files."""
    return synthetic.config_files(tmp_path_factory.mktemp("config"))


@pytest.fixture
def suite(config) -> str:
    return str(config["suite"])


@pytest.fixture
def good(tmp_path, visits) -> str:
    path = tmp_path / "visits_raw.parquet"
    visits.iloc[:3000].to_parquet(path, index=False)
    return str(path)


@pytest.fixture
def visits_spec(config) -> str:
    return str(config["model-spec"])


def _write_yaml(path: Path, values: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump(values))
    return str(path)


def _rows(count: int = 900, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "size": rng.normal(size=count),
            "age": rng.uniform(0, 10, count),
            "region": rng.choice(["north", "south", "east"], count),
        }
    )
    frame["price"] = 100 + 20 * frame["size"] + 3 * frame["age"] + rng.normal(size=count)
    frame["tier"] = np.where(frame["size"] > 0.5, "high", np.where(frame["size"] < -0.5, "low", "mid"))
    return frame


def _synthetic(tmp_path: Path, task: str, target: str, policy: dict[str, Any]) -> tuple[str, str, str]:
    """A spec, a gate policy and a Parquet sample of the synthetic rows for ``task``."""
    spec = {
        "name": f"{task}-model",
        "task": task,
        "target": target,
        "categorical_features": ["region"],
        "numerical_features": ["size", "age"],
        "params": {"max_iter": 30},
    }
    sample = tmp_path / f"{task}.parquet"
    _rows().to_parquet(sample, index=False)
    return (
        _write_yaml(tmp_path / f"{task}_spec.yaml", spec),
        _write_yaml(tmp_path / f"{task}_gate.yaml", policy),
        str(sample),
    )


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["ci", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_exit_codes_are_distinct_and_the_unusable_one_is_the_usage_code():
    assert len({EXIT_PASSED, EXIT_CHECKS_FAILED, EXIT_UNUSABLE_INPUT}) == 3
    assert EXIT_PASSED == 0
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["ci", "check-data", "sample.parquet"])  # no --suite
    assert info.value.code == EXIT_UNUSABLE_INPUT


# --- check-data ---------------------------------------------------------------------------------------------


def test_a_good_sample_passes_as_parquet_and_as_csv(tmp_path, capsys, suite, good, visits):
    # As a CSV: visit_time is text, a column without missing values reads as integers.
    csv = tmp_path / "visits_raw.csv"
    visits.iloc[3000:6000].to_csv(csv, index=False)
    report_file = tmp_path / "data-check.json"

    code, out, err = _run(capsys, "check-data", "--suite", suite, good, str(csv), "--json", str(report_file))

    assert (code, err) == (EXIT_PASSED, "")
    assert "suite 'visits_raw'" in out and "2 file(s), 6000 rows" in out
    assert "PASSED" in out
    result = json.loads(report_file.read_text())
    assert result["status"] == "passed" and result["exit_code"] == EXIT_PASSED
    assert result["suite"] == "visits_raw" and result["rows"] == 6000 and result["failed"] == []


def test_a_broken_column_fails_naming_file_expectation_column_and_examples(
    tmp_path, capsys, suite, good, visits
):
    broken = visits.iloc[3000:6000].reset_index(drop=True)
    broken.loc[[4, 9], "store"] = ["XXX", "ZZZ"]
    broken["day"] = broken["day"].astype("float64")
    bad = tmp_path / "visits_bad.parquet"
    broken.to_parquet(bad, index=False)
    report_file = tmp_path / "data-check.json"

    code, out, _ = _run(capsys, "check-data", "--suite", suite, good, str(bad), "--json", str(report_file))

    assert code == EXIT_CHECKS_FAILED
    assert f"{bad}: suite 'visits_raw' failed 2 of" in out
    assert "expect_column_values_to_be_in_set on store: 2 of 3000 values unexpected" in out
    assert "row 4: 'XXX', row 9: 'ZZZ'" in out
    assert "on day: expected dtype int64, actual dtype float64" in out
    assert good not in out.replace(f"{bad}", "")
    assert "FAILED: 2 expectation(s) in 1 file(s)" in out
    result = json.loads(report_file.read_text())
    assert result["status"] == "failed" and result["exit_code"] == EXIT_CHECKS_FAILED
    failed = {(entry["file"], entry["expectation"], entry["column"]) for entry in result["failed"]}
    assert failed == {
        (str(bad), "expect_column_values_to_be_in_set", "store"),
        (str(bad), "expect_column_values_to_be_of_type", "day"),
    }


def test_a_csv_value_that_is_no_timestamp_is_named_by_the_type_check(tmp_path, capsys, suite, visits):
    rows = visits.iloc[:500].copy()
    rows["visit_time"] = rows["visit_time"].astype(str)
    rows.loc[3, "visit_time"] = "sometime"
    csv = tmp_path / "visits_raw.csv"
    rows.to_csv(csv, index=False)

    code, out, _ = _run(capsys, "check-data", "--suite", suite, str(csv))

    assert code == EXIT_CHECKS_FAILED
    assert "expect_column_values_to_be_of_type on visit_time: expected dtype datetime64[ns, UTC]" in out


def test_the_operator_options_apply(tmp_path, capsys, suite, good, visits):
    again = tmp_path / "again.parquet"
    # width must not be null: three rows of the good file again, their width missing.
    visits.iloc[10:13].assign(width=float("nan")).to_parquet(again, index=False)

    code, out, _ = _run(
        capsys,
        "check-data",
        "--suite",
        suite,
        good,
        str(again),
        "--unique-key",
        KEY,
        "--exclude-columns",
        "width",
    )

    assert code == EXIT_CHECKS_FAILED
    assert f"{again}: 3 key(s) ({', '.join(synthetic.KEY)}) already in {good}" in out
    assert "width" not in out  # excluded: its missing values are not judged
    assert (
        _run(capsys, "check-data", "--suite", suite, good, str(again), "--exclude-columns", "width")[0] == 0
    )
    # Not excluded, the missing widths fail the not-null expectation: the exclusion above was what passed them.
    code, out, _ = _run(capsys, "check-data", "--suite", suite, good, str(again))
    assert code == EXIT_CHECKS_FAILED and "expect_column_values_to_not_be_null on width" in out


def test_the_printed_failures_are_bounded(tmp_path, capsys, suite, visits, monkeypatch):
    monkeypatch.setattr(checks, "MAX_PRINTED_LINES", 3)
    files = []
    for part in range(3):
        path = tmp_path / f"part-{part}.parquet"
        visits.iloc[:50].assign(store="XXX").to_parquet(path, index=False)
        files.append(str(path))

    code, out, _ = _run(capsys, "check-data", "--suite", suite, *files, "--json", str(tmp_path / "r.json"))

    assert code == EXIT_CHECKS_FAILED
    assert f"more line(s): every failure is in {tmp_path / 'r.json'}" in out
    assert len(json.loads((tmp_path / "r.json").read_text())["failed"]) >= 3


@pytest.mark.parametrize("problem", ["missing file", "unreadable file", "bad suite", "missing suite"])
def test_unusable_input_is_named_with_its_own_exit_code(tmp_path, capsys, suite, good, problem):
    files = [good]
    if problem == "missing file":
        files.append(str(tmp_path / "nowhere.parquet"))
        expected = f"no such file: {tmp_path / 'nowhere.parquet'}"
    elif problem == "unreadable file":
        files.append(str(tmp_path / "corrupt.parquet"))
        Path(files[-1]).write_bytes(b"PAR1 not parquet")
        expected = f"cannot read {tmp_path / 'corrupt.parquet'}"
    elif problem == "bad suite":
        suite = str(tmp_path / "suite.json")
        Path(suite).write_text(json.dumps({"name": "s", "expectations": [{"type": "expect_wonders"}]}))
        expected = "unknown expectation type 'expect_wonders'"
    else:
        suite = str(tmp_path / "no_suite.json")
        expected = f"{suite}: cannot read expectation suite"
    report_file = tmp_path / "data-check.json"

    code, _, err = _run(capsys, "check-data", "--suite", suite, *files, "--json", str(report_file))

    assert code == EXIT_UNUSABLE_INPUT
    assert err.startswith("error: ") and expected in err
    result = json.loads(report_file.read_text())
    assert result["status"] == "unusable_input" and expected in result["error"]


# --- check-model --------------------------------------------------------------------------------------------


def test_the_visit_model_passes_its_floors_and_a_behavioural_check(tmp_path, capsys, good, visits_spec):
    policy = _write_yaml(
        tmp_path / "gate.yaml",
        {
            "min_metrics": {"roc_auc": 0.55},
            "max_metrics": {"log_loss": 0.65},
            "max_regression": {"roc_auc": 0.005},
            "first_model": "reject",  # no champion on a sample: not judged here, said so
            "checks": [f"{synthetic.THIS_MODULE}:every_store_better_than_chance"],
        },
    )
    report_file = tmp_path / "model-check.json"

    code, out, err = _run(
        capsys,
        "check-model",
        "--model-spec",
        visits_spec,
        "--gate-policy",
        policy,
        good,
        "--json",
        str(report_file),
    )

    assert (code, err) == (EXIT_PASSED, ""), out
    assert f"model '{synthetic.MODEL}' (binary) on 1 file(s)" in out
    assert re.search(r"roc_auc = 0\.\d{4}", out)
    assert "PASS roc_auc >= floor" in out and "PASS log_loss <= ceiling" in out
    assert "PASS roc_auc in every store" in out and "worst store" in out
    assert "first model" not in out and "regression vs champion" not in out
    assert checks.CHAMPION_NOT_COMPARED in out
    result = json.loads(report_file.read_text())
    assert result["status"] == "passed" and result["task"] == "binary"
    assert [check["name"] for check in result["checks"]] == [
        "roc_auc >= floor",
        "log_loss <= ceiling",
        "roc_auc in every store",
    ]
    assert (
        result["split"]["rows_train"]
        + result["split"]["rows_evaluation"]
        + result["split"]["rows_unlabelled"]
        == 3000
    )
    assert result["not_checked"] == checks.CHAMPION_NOT_COMPARED


def test_the_visit_model_fails_a_floor_and_a_behavioural_check(tmp_path, capsys, visits, visits_spec):
    # The held-out fifth buys far more often than the trained days: the model is miscalibrated there.
    shifted = synthetic.with_more_purchases_late(visits, fraction=0.2, share=0.5, seed=3)
    sample = tmp_path / "visits_raw.parquet"
    shifted.to_parquet(sample, index=False)
    late = shifted[shifted[synthetic.TIME_COLUMN] >= _holdout_start(shifted)]
    early = shifted.drop(late.index)
    assert late[synthetic.TARGET].mean() - early[synthetic.TARGET].mean() > 2 * synthetic.MAX_CALIBRATION_GAP
    policy = _write_yaml(
        tmp_path / "gate.yaml",
        {
            "min_metrics": {"roc_auc": 0.9},
            "checks": [
                f"{synthetic.THIS_MODULE}:every_store_better_than_chance",
                f"{synthetic.THIS_MODULE}:calibrated_on_average",
            ],
        },
    )

    code, out, _ = _run(
        capsys, "check-model", "--model-spec", visits_spec, "--gate-policy", policy, str(sample)
    )

    assert code == EXIT_CHECKS_FAILED
    assert re.search(r"FAIL roc_auc >= floor: 0\.\d{4} \(must be >= 0\.9000\)", out)
    assert re.search(r"FAIL mean probability vs purchase rate: 0\.\d{4} \(must be <= 0\.0800\)", out)
    assert "PASS roc_auc in every store" in out
    assert "FAILED: 2 of 3 check(s)" in out


def _holdout_start(frame: pd.DataFrame) -> pd.Timestamp:
    """Where the spec's holdout (the latest fifth of the time range) begins."""
    times = frame[synthetic.TIME_COLUMN]
    return times.min() + (times.max() - times.min()) * 0.8


def test_a_multiclass_model_passes_and_reads_a_csv_sample(tmp_path, capsys):
    spec, policy, sample = _synthetic(
        tmp_path,
        "multiclass",
        "tier",
        {
            "min_metrics": {"f1_macro": 0.8, "recall_low": 0.7},
            "checks": [f"{THIS_MODULE}:every_class_is_predicted"],
        },
    )
    csv = tmp_path / "multiclass.csv"
    pd.read_parquet(sample).to_csv(csv, index=False)

    code, out, _ = _run(capsys, "check-model", "--model-spec", spec, "--gate-policy", policy, str(csv))

    assert code == EXIT_PASSED, out
    assert "model 'multiclass-model' (multiclass)" in out
    assert (
        "f1_macro = " in out and "PASS recall_low >= floor" in out and "PASS every class is predicted" in out
    )


def test_a_regression_model_fails_a_floor_and_behavioural_checks_with_json(tmp_path, capsys):
    spec, policy, sample = _synthetic(
        tmp_path,
        "regression",
        "price",
        {
            "min_metrics": {"r2": 0.999},
            "max_metrics": {"rmse": 50.0},
            "checks": [f"{THIS_MODULE}:errors_under_a_tenth", f"{THIS_MODULE}:check_that_raises"],
        },
    )
    report_file = tmp_path / "model-check.json"

    code, out, _ = _run(
        capsys,
        "check-model",
        "--model-spec",
        spec,
        "--gate-policy",
        policy,
        sample,
        "--json",
        str(report_file),
    )

    assert code == EXIT_CHECKS_FAILED
    assert "FAIL r2 >= floor" in out and "PASS rmse <= ceiling" in out
    assert "FAIL largest error" in out
    assert f"FAIL {THIS_MODULE}:check_that_raises - raised RuntimeError: boom on purpose" in out
    assert "FAILED: 3 of 4 check(s)" in out
    result = json.loads(report_file.read_text())
    assert result["status"] == "failed" and result["exit_code"] == EXIT_CHECKS_FAILED
    assert result["task"] == "regression" and set(result["metrics"]) >= {"rmse", "mae", "r2"}
    assert [check["passed"] for check in result["checks"]] == [False, True, False, False]


def test_the_spec_trains_as_train_operator_would(tmp_path):
    """Same spec, same rows, same seed: the metrics TrainOperator's core steps give."""
    from mlops_ops.core import training
    from mlops_ops.core.modelspec import ModelSpec

    spec_file, policy, sample = _synthetic(tmp_path, "regression", "price", {})
    spec = ModelSpec.load(Path(spec_file))
    prepared = training.split(training.prepare(pd.read_parquet(sample), spec), spec)
    model = training.fit(spec, prepared.train, params=spec.params, seed=spec.seed)

    verdict = checks.check_model([sample], spec_file, policy)

    assert verdict.metrics == training.evaluate(model, prepared.evaluation, spec)
    assert verdict.checks == () and verdict.passed


@pytest.mark.parametrize(
    "problem",
    [
        "key the task does not measure",
        "missing column",
        "feature store",
        "missing file",
        "unreadable file",
        "bad reference",
    ],
)
def test_unusable_model_input_is_named_with_its_own_exit_code(tmp_path, capsys, problem):
    spec, policy, sample = _synthetic(tmp_path, "regression", "price", {"min_metrics": {"r2": 0.5}})
    training_function = []
    if problem == "key the task does not measure":
        policy = _write_yaml(tmp_path / "gate.yaml", {"min_metrics": {"roc_auc": 0.6}})
        expected = "metric key(s) ['roc_auc']"
    elif problem == "missing column":
        pd.read_parquet(sample).drop(columns=["age"]).to_parquet(sample, index=False)
        expected = "missing column(s) ['age'] needed by model 'regression-model'"
    elif problem == "feature store":
        # A spec reading a feature service, given raw visits (without the service's columns).
        numerical = [*synthetic.NUMERICAL, *synthetic.STORE_FEATURES]
        with_store = synthetic.spec(feature_store=synthetic.FEATURE_STORE, numerical_features=numerical)
        spec, sample = _write_yaml(tmp_path / "store_spec.yaml", with_store), str(tmp_path / "raw.parquet")
        synthetic.visits(50, seed=1).to_parquet(sample, index=False)
        policy = str(synthetic.config_files(tmp_path / "config")["gate-policy"])
        expected = "the sample must be its point-in-time training set"
    elif problem == "missing file":
        sample = str(tmp_path / "nowhere.csv")
        expected = f"no such file: {sample}"
    elif problem == "unreadable file":
        Path(sample).write_bytes(b"PAR1 not parquet")
        expected = "not a readable Parquet sample"
    else:
        training_function = ["--training-function", "no_such_module:train"]
        expected = "training regression-model on the sample failed: cannot import module 'no_such_module'"
    report_file = tmp_path / "model-check.json"

    code, _, err = _run(
        capsys,
        "check-model",
        "--model-spec",
        spec,
        "--gate-policy",
        policy,
        sample,
        *training_function,
        "--json",
        str(report_file),
    )

    assert code == EXIT_UNUSABLE_INPUT
    assert err.startswith("error: ") and expected in err, err
    assert json.loads(report_file.read_text())["status"] == "unusable_input"


# --- the CI templates ---------------------------------------------------------------------------------------


def _command_lines(values: Any) -> list[str]:
    """Every ``mlops-ops ...`` command line in the strings of a parsed YAML document (continuations joined)."""
    if isinstance(values, dict):
        return [line for value in values.values() for line in _command_lines(value)]
    if isinstance(values, list):
        return [line for value in values for line in _command_lines(value)]
    if not isinstance(values, str):
        return []
    lines = values.replace("\\\n", " ").splitlines()
    return [line.strip() for line in lines if line.strip().startswith("mlops-ops ")]


def _arguments(line: str) -> list[str]:
    """The command's arguments, up to the first shell operator."""
    tokens = shlex.split(line, comments=True)
    operators = {"|", "||", "&&", ";", ">", ">>", "2>&1"}
    end = next((i for i, token in enumerate(tokens) if token in operators), len(tokens))
    return tokens[1:end]


def test_there_is_a_github_and_a_gitlab_template():
    assert [path.name for path in TEMPLATES] == ["github-actions.yml", "gitlab-ci.yml"]


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda path: path.name)
def test_every_command_in_a_template_parses_with_the_real_parser(template):
    document = yaml.safe_load(template.read_text())
    assert isinstance(document, dict)
    lines = _command_lines(document)
    actions = [_arguments(line)[:2] for line in lines]
    assert (
        ["ci", "check-data"] in actions and ["ci", "check-model"] in actions and ["ci", "retrain"] in actions
    )
    parser = build_parser()
    for line in lines:
        try:
            args = parser.parse_args(_arguments(line))
        except SystemExit as exc:
            pytest.fail(f"{template.name}: {line!r} does not parse (exit {exc.code})")
        assert callable(args.handler), line
