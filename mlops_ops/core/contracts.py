"""What passes between the lifecycle's steps, typed.

Each step's result is a frozen dataclass with one XCom form (:meth:`StepResult.to_xcom`, a JSON-safe dict, what
the task returns and what templates such as ``{{ ti.xcom_pull('train')['metrics'] }}`` read) and one parser
(:meth:`StepResult.from_xcom`) that accepts the dict, its JSON or its Python repr (what a template renders) and
refuses, with a :class:`~mlops_ops.core.errors.DataError` naming the argument and the missing keys, anything
that is not the result of the step it expects. Keys a result does not know are ignored, so an older or newer
producer's extra keys never break a consumer.
"""

from __future__ import annotations

import ast
import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, ClassVar, Self

from mlops_ops.core.errors import DataError

#: The longest piece of a refused value quoted in an error.
QUOTED_CHARACTERS = 200


def as_mapping(value: Any, argument: str) -> dict[str, Any]:
    """``value`` as a dict: a dict as is, a JSON string parsed, or the Python repr a Jinja template renders.

    :raises DataError: naming ``argument`` when the value is empty or not a mapping (at most
        :data:`QUOTED_CHARACTERS` of it quoted).
    """
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.strip():
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            # Jinja renders a dict with Python's repr unless the DAG renders native objects.
            try:
                parsed = ast.literal_eval(value)
            except (ValueError, SyntaxError) as err:
                raise DataError(
                    f"{argument} is neither a mapping nor JSON: {value[:QUOTED_CHARACTERS]!r}"
                ) from err
        if isinstance(parsed, dict):
            return parsed
    raise DataError(
        f"{argument} must be a mapping (or its JSON), got {type(value).__name__}: "
        f"{str(value)[:QUOTED_CHARACTERS]!r}"
    )


class StepResult:
    """The base of the step results: the XCom form and its checked parser."""

    #: The operator whose result this is, for the message when a value is not one.
    produced_by: ClassVar[str] = ""

    @classmethod
    def from_xcom(cls, value: Any, argument: str, require: tuple[str, ...] = ()) -> Self:
        """The result held in ``value`` (a dict, its JSON or its repr).

        :param argument: the consumer's argument, for messages (``"training"``).
        :param require: keys this consumer needs beyond the result's own required ones (the gate needs a
            training's ``evaluation_uri``, registration does not).
        :raises DataError: naming ``argument`` and every missing key when a required one is absent or empty.
        """
        mapping = as_mapping(value, argument)
        known = {item.name: item for item in fields(cls)}  # type: ignore[arg-type]
        required = [
            name
            for name, item in known.items()
            if item.default is MISSING and item.default_factory is MISSING
        ]
        missing = [name for name in (*required, *require) if mapping.get(name) in (None, "")]
        if missing:
            raise DataError(f"{argument} lacks {missing}: pass {cls.produced_by}'s result")
        return cls(**{name: mapping[name] for name in known if name in mapping})

    def to_xcom(self) -> dict[str, Any]:
        """The JSON-safe dict the task returns."""
        values: dict[str, Any] = asdict(self)  # type: ignore[call-overload]
        return values


@dataclass(frozen=True)
class TrainingResult(StepResult):
    """What ``TrainOperator`` made: an MLflow run with a logged model and its held-out rows.

    :param run_id: the MLflow run.
    :param model_uri: the logged model (``runs:/<run>/model`` or ``models:/m-...``).
    :param model_name: the registered model it is meant for (the spec's name).
    :param evaluation_uri: the held-out rows (Parquet) the gate scores both models on.
    :param metrics: held-out metrics by name.
    :param artifact_sha256: the digest of the model's artifact folder, checked before any load.
    :param training_key: the hash of everything that determines the model (same key, same model).
    :param data_version: the data version's fingerprint.
    """

    produced_by: ClassVar[str] = "TrainOperator"

    run_id: str
    model_uri: str
    model_name: str = ""
    evaluation_uri: str = ""
    experiment_id: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    data_version: str = ""
    training_key: str = ""
    code_revision: str = ""
    artifact_sha256: str = ""
    seed: int | None = None
    device: str = ""
    split: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GateVerdict(StepResult):
    """What ``EvaluateGateOperator`` decided about one training run.

    :param passed: whether the challenger may be registered.
    :param run_id: the training run judged (a verdict approves that run only).
    :param checks: every check, ``{"name", "passed", "value", "threshold", "comparison", "detail"}``.
    """

    produced_by: ClassVar[str] = "EvaluateGateOperator"

    passed: bool
    run_id: str
    checks: list[dict[str, Any]] = field(default_factory=list)
    challenger_metrics: dict[str, Any] = field(default_factory=dict)
    champion_metrics: dict[str, Any] | None = None
    champion_version: str | None = None
    policy: dict[str, Any] = field(default_factory=dict)

    def approves(self, training: TrainingResult) -> bool:
        """Whether this verdict passed, and for ``training``'s run."""
        return self.passed is True and self.run_id == training.run_id


@dataclass(frozen=True)
class RegisteredVersion(StepResult):
    """What ``RegisterOperator`` registered and pointed ``alias`` at.

    :param registered_new: ``False`` when a retry or an identical training found the version made before.
    :param signed_by: the id of the key that signed the registration.
    """

    produced_by: ClassVar[str] = "RegisterOperator"

    model_name: str
    version: str
    alias: str
    model_uri: str
    run_id: str
    registered_new: bool = False
    data_version: str | None = None
    signed_by: str = ""

    #: The keys an asset event of the registration carries (what a promotion DAG scheduled on it reads).
    ASSET_KEYS: ClassVar[tuple[str, ...]] = ("model_name", "version", "alias", "model_uri")

    def asset_extra(self) -> dict[str, Any]:
        """The asset event's extra."""
        return {key: str(getattr(self, key)) for key in self.ASSET_KEYS}


@dataclass(frozen=True)
class FeatureSetResult(StepResult):
    """What ``FeatureSetOperator`` built: a point-in-time training set of one feature service.

    :param uri: the training set (Parquet).
    :param feature_service: the feature service joined.
    :param fingerprint: the digest of the entity rows and the feature service (the training set's version).
    """

    produced_by: ClassVar[str] = "FeatureSetOperator"

    uri: str
    feature_service: str
    fingerprint: str
    rows_in: int = 0
    rows_out: int = 0
    rows_unmatched: int = 0
    rows_with_missing: int = 0
    missing: dict[str, int] = field(default_factory=dict)
    features: list[str] = field(default_factory=list)
    data_version: dict[str, Any] | None = None


@dataclass(frozen=True)
class DriftOutcome(StepResult):
    """What ``DriftCheckOperator`` found on one interval (:func:`mlops_ops.core.drift_check.drift_outcome`).

    :param drift_detected: the dataset drifted (the share of drifting columns reached ``drift_share``).
    :param retrain_requested: drift was detected and ``on_drift`` is ``"request_retrain"``.
    :param reason: one line on what drifted, when it did (a retrain's trigger reason).
    :param columns: each column's test (``ColumnDrift.to_dict``); ``prediction`` the prediction's, not counted.
    :param prediction_distribution: the interval's predictions (``WindowSummary.distribution``), or ``None``.
    :param report_uri: Evidently's report on samples of both windows; ``result_uri`` this outcome as JSON.
    :param airflow_run: ``dag_id/run_id`` of the check.
    """

    produced_by: ClassVar[str] = "DriftCheckOperator"

    model_name: str
    model_version: str
    interval: dict[str, Any]
    share: float
    drift_share: float
    dataset_drift: bool
    drift_detected: bool
    on_drift: str = "warn"
    retrain_requested: bool = False
    reason: str | None = None
    summary: str = ""
    drifted_columns: list[str] = field(default_factory=list)
    number_of_columns: int = 0
    reference_rows: int = 0
    current_rows: int = 0
    columns: list[dict[str, Any]] = field(default_factory=list)
    prediction: dict[str, Any] | None = None
    prediction_drift: bool = False
    new_categories: dict[str, list[str]] = field(default_factory=dict)
    prediction_distribution: dict[str, Any] | None = None
    report_uri: str | None = None
    report_sample_rows: dict[str, int] = field(default_factory=dict)
    result_uri: str | None = None
    airflow_run: str | None = None


@dataclass(frozen=True)
class PerformanceOutcome(StepResult):
    """What ``PerformanceMonitorOperator`` measured on one interval once its labels arrived.

    :param metrics: the task's live metrics on the labelled rows (``None`` where undefined, with the reason in
        ``notes``); ``confusion`` the binary or multiclass counts.
    :param decay: the decay verdict (``status``, ``retrain_requested``, ``summary``, ``reasons``,
        ``unevaluated``).
    :param mlflow: where the interval was logged (monitoring run, step, what was logged already).
    :param pushed: samples pushed to the Prometheus pushgateway (0 without one).
    """

    produced_by: ClassVar[str] = "PerformanceMonitorOperator"

    model_name: str
    model_version: str
    interval: dict[str, Any]
    rows: int
    labelled_rows: int
    metrics: dict[str, Any]
    decay: dict[str, Any]
    business_cost: dict[str, Any] = field(default_factory=dict)
    confusion: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    unlabelled_rows: int = 0
    coverage: float = 0.0
    task: str = "binary"
    classes: list[Any] | None = None
    mlflow: dict[str, Any] = field(default_factory=dict)
    pushed: int = 0

    def to_xcom(self) -> dict[str, Any]:
        """The JSON-safe dict the task returns; ``confusion`` (regression) and ``classes`` (binary, regression) are
        left out where the task has none, as :meth:`IntervalPerformance.to_dict` leaves them out."""
        values = super().to_xcom()
        for optional in ("confusion", "classes"):
            if values[optional] is None:
                del values[optional]
        return values
