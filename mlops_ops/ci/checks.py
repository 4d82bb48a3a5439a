"""``mlops-ops ci check-data`` and ``ci check-model``: the DAGs' data suite and model checks on a sample, in CI.

Both run what the DAGs run, through the same core functions, on files committed to the team's repository, so a
pull request that breaks the data contract or the model's behaviour fails before it is merged:

- ``check-data`` validates Parquet or CSV files with the suite and options of ``DataValidationOperator``
  (:func:`mlops_ops.core.validation.validate_data_files`);
- ``check-model`` trains the spec's model on a sample as ``TrainOperator`` does (``prepare``, ``split``, ``fit``),
  scores the held-out part, and applies the gate policy's absolute floors and ceilings and its behavioural checks
  (:func:`mlops_ops.core.gate.decide`, :func:`mlops_ops.core.gate.run_behavioural_checks`). The comparison with
  the champion needs the registry: it happens only in the retrain DAG.

Neither needs Airflow, MLflow or a network. The team's own code (``prepare``, behavioural checks, a training
function) is imported from the working directory, as the DAGs import it from the project root.

Exit status: :data:`EXIT_PASSED`, :data:`EXIT_CHECKS_FAILED` (the sample or the model failed a check; each is
printed), :data:`EXIT_UNUSABLE_INPUT` (a file, the suite, the spec or the policy cannot be used, or training
fails on the sample; named on stderr). ``--json FILE`` writes the result, whatever the status.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_ops.core.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

    from mlops_ops.core.gate import GateCheck
    from mlops_ops.core.modelspec import ModelSpec
    from mlops_ops.core.validation import DataFilesReport

#: Every check passed.
EXIT_PASSED = 0
#: The data broke an expectation, or the model failed a floor, a ceiling or a behavioural check.
EXIT_CHECKS_FAILED = 1
#: Nothing could be checked: a missing or unreadable file, a bad suite, spec or policy, or training failing on
#: the sample (the same code as a usage error of the command line).
EXIT_UNUSABLE_INPUT = 2
#: The ``status`` of the ``--json`` result, per exit status.
STATUSES = {EXIT_PASSED: "passed", EXIT_CHECKS_FAILED: "failed", EXIT_UNUSABLE_INPUT: "unusable_input"}

#: Lines of failures printed; the rest are in the ``--json`` file.
MAX_PRINTED_LINES = 60

#: Said wherever a model check's verdict is shown: what a sample cannot check.
CHAMPION_NOT_COMPARED = (
    "not checked here: the comparison with the champion (max_regression, min_improvement, first_model) needs "
    "the registry and happens only in the retrain DAG"
)


# --- the checks ---------------------------------------------------------------------------------------------


def check_data(
    files: Sequence[str],
    suite: str | os.PathLike[str],
    *,
    exclude_columns: Sequence[str] = (),
    unique_key: Sequence[str] | None = None,
    max_string_length: int | None = None,
) -> DataFilesReport:
    """Validate sample files with an expectation suite and the options of ``DataValidationOperator``.

    :param files: Parquet or CSV (``*.csv``, typed by the suite) files.
    :param suite: the suite's JSON file.
    :param exclude_columns: columns not judged (the operator's ``exclude_columns``).
    :param unique_key: columns identifying a row across all files (the operator's ``unique_key``).
    :param max_string_length: the longest text value accepted (the operator's ``max_string_length``).
    :return: the report; a file that cannot be read is one of its failures (see :func:`unusable_files`).
    :raises DataError: naming a missing file or the suite, when the suite cannot be read or is malformed.
    """
    from mlops_ops.core.validation import load_suite, validate_data_files, without_columns

    _refuse_missing(files)
    loaded = load_suite(suite)
    if exclude_columns:
        loaded = without_columns(loaded, exclude_columns)
    return validate_data_files(
        files, loaded, max_string_length=max_string_length, unique_key=unique_key or None, csv=True
    )


def unusable_files(report: DataFilesReport) -> list[str]:
    """The files of ``report`` that could not be read at all, escaped."""
    from mlops_ops.core.printable import printable

    return [printable(failure.file) for failure in report.failures if failure.unusable_file]


@dataclass(frozen=True)
class ModelCheck:
    """The verdict of the model checks on a sample.

    :param model: the spec's model name.
    :param task: the spec's task.
    :param split: the rows in, unlabelled, trained on, held out, and the split time.
    :param metrics: the held-out metrics of the task.
    :param checks: the policy's floors and ceilings, then its behavioural checks.
    """

    model: str
    task: str
    split: dict[str, Any]
    metrics: dict[str, float]
    checks: tuple[GateCheck, ...]

    @property
    def passed(self) -> bool:
        """Whether every check passed."""
        return all(check.passed for check in self.checks)

    @property
    def failures(self) -> tuple[GateCheck, ...]:
        """The checks that failed."""
        return tuple(check for check in self.checks if not check.passed)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (NaN becomes ``None``)."""
        from mlops_ops.core.json_values import json_safe_mapping

        return json_safe_mapping(
            {
                "model": self.model,
                "task": self.task,
                "split": self.split,
                "metrics": self.metrics,
                "checks": [asdict(check) for check in self.checks],
            }
        )


def check_model(
    files: Sequence[str],
    model_spec: str | os.PathLike[str],
    gate_policy: str | os.PathLike[str],
    *,
    training_function: str | None = None,
) -> ModelCheck:
    """Train the spec's model on sample files as ``TrainOperator`` does, and judge it as the gate does with no
    champion: the policy's floors and ceilings on the held-out metrics, then its behavioural checks.

    :param files: Parquet or CSV files: the raw rows ``prepare`` takes, or, for a spec with a feature store, its
        point-in-time training set (what ``FeatureSetOperator`` writes and ``TrainOperator`` reads).
    :param model_spec: the model spec's YAML file.
    :param gate_policy: the gate policy's YAML file.
    :param training_function: ``"module:function"`` training the model instead of the spec's estimator (the
        operator's ``training_function``).
    :return: the verdict.
    :raises DataError: naming the file, the spec, the policy or the step that cannot be used (a key the task
        does not measure, a missing column, too few rows to split, training failing on the sample).
    """
    from mlops_ops.core import gate, training
    from mlops_ops.core.modelspec import ModelSpec

    spec = ModelSpec.load(Path(model_spec))
    policy = gate.GatePolicy.load(str(gate_policy))
    policy.check_for(
        spec.prediction_task, f"{gate_policy}: the gate policy of {spec.task} model {spec.name!r}"
    )
    raw = _read_sample(files, spec)
    try:
        prepared = training.split(_prepared(raw, spec), spec)
        # As TrainOperator with no overrides: the spec's params and seed, on the CPU.
        model = training.fit(
            spec,
            prepared.train,
            params=dict(spec.params),
            seed=spec.seed,
            device="cpu",
            training_function=training_function,
        )
        metrics = training.evaluate(model, prepared.evaluation, spec)
    # A malformed reference, bad params, a non-numeric feature, a model of another task (TaskMismatchError is a
    # TypeError): training fails on this input, as TrainOperator's TrainingFailed says.
    except (TypeError, ValueError) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(f"training {spec.name} on the sample failed: {err}") from err
    behavioural = gate.run_behavioural_checks(policy.checks, model, prepared.evaluation, spec)
    # No champion: only the absolute checks and the behavioural ones mean anything on a sample.
    decision = gate.decide(
        metrics,
        None,
        replace(policy, first_model="accept"),
        extra_checks=tuple(behavioural),
        task=spec.prediction_task,
    )
    return ModelCheck(
        model=spec.name,
        task=spec.task,
        split=prepared.summary(),
        metrics=metrics,
        checks=tuple(check for check in decision.checks if check.name != gate.FIRST_MODEL_CHECK),
    )


def _prepared(raw: pd.DataFrame, spec: ModelSpec) -> pd.DataFrame:
    from mlops_ops.core import training

    try:
        return training.prepare(raw, spec)
    except DataError as err:
        if spec.feature_store is None:
            raise
        service = spec.feature_store["feature_service"]
        raise DataError(
            f"{err}; model {spec.name!r} reads feature service {service!r}: the sample must be its "
            "point-in-time training set (the rows FeatureSetOperator writes, which TrainOperator reads), not "
            "raw landed rows"
        ) from err


def _refuse_missing(files: Sequence[str]) -> None:
    from mlops_ops.core.printable import printable

    missing = [printable(file) for file in files if not Path(file).is_file()]
    if missing:
        raise DataError(f"no such file: {', '.join(missing)}")


def _read_sample(files: Sequence[str], spec: ModelSpec) -> pd.DataFrame:
    """The sample's rows, in file order: Parquet files read together as ``TrainOperator`` reads a data version;
    a CSV with the types pandas infers, its holdout time column parsed as UTC timestamps (the landed type)."""
    import pandas as pd

    from mlops_ops.core import storage
    from mlops_ops.core.printable import printable

    _refuse_missing(files)
    if not any(file.lower().endswith(".csv") for file in files):
        try:
            return storage.read_parquet(files)
        except ValueError as err:  # pyarrow's ArrowInvalid names the file
            raise DataError(f"not a readable Parquet sample ({printable(err)})") from err
    frames = []
    for file in files:
        if not file.lower().endswith(".csv"):
            frames.append(_read_sample([file], spec))
            continue
        try:
            frame = pd.read_csv(file)
        except ValueError as err:  # pandas' ParserError, a UnicodeDecodeError
            raise DataError(f"{printable(file)}: not a readable CSV file ({printable(err)})") from err
        time_column = spec.holdout.get("time_column")
        if time_column in frame.columns and not pd.api.types.is_datetime64_any_dtype(frame[time_column]):
            try:
                frame[time_column] = pd.to_datetime(frame[time_column], utc=True)
            except (ValueError, TypeError) as err:
                raise DataError(
                    f"{printable(file)}: holdout time column {time_column!r} holds values that are not "
                    f"timestamps ({printable(err)})"
                ) from err
        frames.append(frame)
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


# --- the commands -------------------------------------------------------------------------------------------


def add_commands(actions: argparse._SubParsersAction) -> None:
    """Register ``ci check-data`` and ``ci check-model``."""
    exits = (
        f"Exit status: {EXIT_PASSED} when every check passes, {EXIT_CHECKS_FAILED} when a check fails (each is "
        f"printed), {EXIT_UNUSABLE_INPUT} when an input cannot be used (named on stderr)."
    )
    data = actions.add_parser(
        "check-data",
        help="validate sample files with the expectation suite and options of the DAG's validation",
        description="Validate Parquet or CSV sample files with an expectation suite, as DataValidationOperator "
        "validates a data version (a CSV is typed by the suite's columns). " + exits,
    )
    data.add_argument(
        "--suite", required=True, metavar="SUITE.json", help="the expectation suite's JSON file"
    )
    data.add_argument("files", nargs="+", metavar="DATA", help="Parquet or CSV (*.csv) files")
    data.add_argument(
        "--exclude-columns",
        type=_column_list,
        action="extend",
        default=[],
        metavar="COLUMN[,COLUMN...]",
        help="columns not judged, as the operator's exclude_columns (repeatable)",
    )
    data.add_argument(
        "--unique-key",
        type=_column_list,
        action="extend",
        default=[],
        metavar="COLUMN[,COLUMN...]",
        help="columns identifying a row across all the files, as the operator's unique_key",
    )
    data.add_argument(
        "--max-string-length",
        type=int,
        metavar="N",
        help="the longest text value accepted, as the operator's max_string_length (default: the suite's)",
    )
    data.add_argument("--json", metavar="FILE", help="also write the result to FILE as JSON")
    data.set_defaults(handler=_check_data)

    model = actions.add_parser(
        "check-model",
        help="train the spec's model on a sample and apply the gate policy's floors and behavioural checks",
        description="Train the model spec's model on sample files as TrainOperator does, score its held-out "
        "rows and apply the gate policy as EvaluateGateOperator does with no champion: the floors and ceilings "
        "(min_metrics, max_metrics) and the behavioural checks. The comparison with the champion happens only "
        "in the retrain DAG. The team's code (prepare, checks) is imported from the working directory. "
        + exits,
    )
    model.add_argument("--model-spec", required=True, metavar="SPEC.yaml", help="the model spec's YAML file")
    model.add_argument(
        "--gate-policy", required=True, metavar="GATE.yaml", help="the gate policy's YAML file"
    )
    model.add_argument(
        "files",
        nargs="+",
        metavar="DATA",
        help="Parquet or CSV files: the raw rows, or the point-in-time training set for a spec with a feature "
        "store",
    )
    model.add_argument(
        "--training-function",
        metavar="MODULE:FUNCTION",
        help="trains the model instead of the spec's estimator, as TrainOperator's training_function",
    )
    model.add_argument("--json", metavar="FILE", help="also write the result to FILE as JSON")
    model.set_defaults(handler=_check_model)


def _column_list(text: str) -> list[str]:
    columns = [column.strip() for column in text.split(",")]
    if not all(columns):
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of column names")
    return columns


def _check_data(args: argparse.Namespace) -> int:
    from mlops_ops.core.errors import MlopsError
    from mlops_ops.core.printable import printable

    result: dict[str, Any] = {"command": "check-data", "suite_file": args.suite, "files": list(args.files)}
    try:
        report = check_data(
            args.files,
            args.suite,
            exclude_columns=args.exclude_columns,
            unique_key=args.unique_key,
            max_string_length=args.max_string_length,
        )
    except MlopsError as err:  # a missing file, a bad suite, the validation extra missing
        return _unusable(args, result, str(err))
    result.update(
        suite=report.suite,
        rows=report.rows,
        failed=[failure.to_dict() for failure in report.failures],
    )
    print(
        f"suite {report.suite!r} ({printable(args.suite)}) on {len(report.files)} file(s), {report.rows} rows"
    )
    if report.success:
        print("PASSED: every expectation held in every file")
        return _finish(args, result, EXIT_PASSED)
    _print_bounded(report.failure_message("the sample").splitlines(), args.json)
    unreadable = unusable_files(report)
    if unreadable:
        return _unusable(args, result, f"cannot read {', '.join(unreadable)}")
    print(f"FAILED: {len(report.failures)} expectation(s) in {report.failed_files} file(s)")
    return _finish(args, result, EXIT_CHECKS_FAILED)


def _check_model(args: argparse.Namespace) -> int:
    from mlops_ops.core.errors import MlopsError

    # The team's prepare, checks and training function import from the project root, as Airflow imports them
    # from beside dags/; a console script does not put the working directory on sys.path.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    result: dict[str, Any] = {
        "command": "check-model",
        "model_spec": args.model_spec,
        "gate_policy": args.gate_policy,
        "files": list(args.files),
        "not_checked": CHAMPION_NOT_COMPARED,
    }
    try:
        verdict = check_model(
            args.files, args.model_spec, args.gate_policy, training_function=args.training_function
        )
    except (
        MlopsError
    ) as err:  # a bad spec or policy, a missing file or column, training failing on the sample
        return _unusable(args, result, str(err))
    result.update(verdict.to_dict())
    split = verdict.split
    print(
        f"model {verdict.model!r} ({verdict.task}) on {len(args.files)} file(s): {split['rows_train']} rows "
        f"trained on, {split['rows_evaluation']} held out ({split['rows_unlabelled']} unlabelled left out)"
    )
    print("held-out metrics:")
    for name, value in verdict.metrics.items():
        print(f"  {name} = {_number(value)}")
    print("checks:")
    for check in verdict.checks:
        print(f"  {'PASS' if check.passed else 'FAIL'} {check.describe()}")
    if not verdict.checks:
        print("  (the gate policy sets no floor, ceiling or behavioural check)")
    print(CHAMPION_NOT_COMPARED)
    if verdict.passed:
        print(f"PASSED: {len(verdict.checks)} check(s)")
        return _finish(args, result, EXIT_PASSED)
    print(f"FAILED: {len(verdict.failures)} of {len(verdict.checks)} check(s)")
    return _finish(args, result, EXIT_CHECKS_FAILED)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.4f}"


def _print_bounded(lines: list[str], json_file: str | None) -> None:
    for line in lines[:MAX_PRINTED_LINES]:
        print(line)
    if len(lines) > MAX_PRINTED_LINES:
        where = f"in {json_file}" if json_file else "with --json FILE"
        print(f"... {len(lines) - MAX_PRINTED_LINES} more line(s): every failure is {where}")


def _unusable(args: argparse.Namespace, result: dict[str, Any], message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return _finish(args, {**result, "error": message}, EXIT_UNUSABLE_INPUT)


def _finish(args: argparse.Namespace, result: dict[str, Any], code: int) -> int:
    """Write ``--json`` (the result, its status and exit code) and return ``code``."""
    if args.json:
        from mlops_ops.core.json_values import to_json_safe

        document = to_json_safe({**result, "status": STATUSES[code], "exit_code": code})
        Path(args.json).write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
    return code
