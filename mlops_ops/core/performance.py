"""Live performance of a binary classifier once its labels arrive, and the decay rule that requests a retrain.

A batch-scored interval is joined on its key columns with the labels that landed since; rows without a label
yet are counted (coverage) and left out. The labelled rows give the classification metrics (with the decisions
as batch scoring made them), a business cost (missed positives against false alarms, with configured costs)
and a :class:`DecayVerdict` against a :class:`DecayRule`: floors, ceilings, and the largest allowed drop from
the metrics the model scored on its held-out rows at training time.

Bad input never yields a "healthy" verdict: no joined row, no label at all, probabilities outside [0, 1],
arrays of different lengths raise :class:`~mlops_ops.core.errors.DataError`; a check that cannot be evaluated
(ROC-AUC of an interval holding one class only) makes the verdict ``inconclusive``, not healthy.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from mlops_ops.core.config_files import LoadableConfig, refuse_unknown_fields
from mlops_ops.core.errors import DataError
from mlops_ops.core.gate import TOLERANCE
from mlops_ops.core.json_values import json_safe_mapping
from mlops_ops.core.training import LOWER_IS_BETTER, classification_metrics

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import pandas as pd

    from mlops_ops.core.scoring import Interval

#: The training run's held-out metrics are logged as ``holdout_<metric>`` (TrainOperator).
TRAINING_PREFIX = "holdout_"
#: Metrics computed on an interval's labelled rows (``roc_auc`` may be ``None``: one class only).
LIVE_METRICS = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "log_loss",
    "brier_score",
    "positive_rate",
    "predicted_positive_rate",
)
COST_METRIC = "business_cost_per_row"
#: What a decay rule may name: the live metrics that measure quality (not the rates) and the cost per row.
RULE_METRICS = frozenset({*LIVE_METRICS, COST_METRIC} - {"positive_rate", "predicted_positive_rate"})
#: Rule metrics that TrainOperator also measured on the held-out rows, so a drop from training has a meaning.
TRAINED_METRICS = frozenset(RULE_METRICS - {COST_METRIC})
DECAY_LOWER_IS_BETTER = frozenset({*LOWER_IS_BETTER, COST_METRIC})

Status = Literal["healthy", "decayed", "inconclusive"]


def _finite_number(value: Any, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError) as err:
        raise DataError(f"{what} must be a number, got {value!r}") from err
    if not math.isfinite(number):
        raise DataError(f"{what} must be a finite number, got {value!r}")
    return number


# --------------------------------------------------------------------------------------------------- costs


@dataclass(frozen=True)
class BusinessCosts(LoadableConfig):
    """What one wrong decision costs, in one unit of the business's choosing (:meth:`load`: a YAML file path,
    a mapping, or costs).

    :param missed_positive: cost of a positive the model missed (a delay nobody was warned of).
    :param false_alarm: cost of a positive decision on a negative row (a warning for a flight on time).
    """

    missed_positive: float
    false_alarm: float

    config_name: ClassVar[str] = "business costs"

    def __post_init__(self) -> None:
        # A frozen dataclass cannot normalise its fields; it can refuse what would make every cost meaningless.
        for name in ("missed_positive", "false_alarm"):
            value = _finite_number(getattr(self, name), f"business cost {name}")
            if value < 0:
                raise DataError(f"business cost {name} must be >= 0, got {value}")

    @classmethod
    def from_dict(cls, values: dict[str, Any], origin: str = "business costs") -> BusinessCosts:
        """Build from a mapping ``{"missed_positive": ..., "false_alarm": ...}``, naming ``origin`` in errors."""
        expected = {"missed_positive", "false_alarm"}
        if not isinstance(values, dict) or set(values) != expected:
            given = sorted(values) if isinstance(values, dict) else values
            raise DataError(f"{origin}: expected exactly {sorted(expected)}, got {given!r}")
        try:
            return cls(**values)
        except DataError as err:
            raise DataError(f"{origin}: {err}") from err


@dataclass(frozen=True)
class BusinessCost:
    """The cost of an interval's wrong decisions.

    :param total: ``missed_positives * missed_positive + false_alarms * false_alarm``.
    :param per_row: ``total`` over the labelled rows, comparable between intervals of any size.
    """

    total: float
    per_row: float
    missed_positives: int
    false_alarms: int
    costs: BusinessCosts


# --------------------------------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class ConfusionCounts:
    """Labelled rows by (decision, label)."""

    true_positives: int
    false_positives: int
    true_negatives: int
    false_negatives: int


@dataclass(frozen=True)
class IntervalPerformance:
    """How the model did on an interval's labelled rows.

    :param rows: predictions in the interval.
    :param labelled_rows: those with a label (the only ones measured).
    :param metrics: :data:`LIVE_METRICS`; ``roc_auc`` is ``None`` when the labelled rows hold one class only,
        ``precision``/``recall``/``f1`` when their ratio has nothing to divide (no positive decision/label).
    :param notes: why a metric is missing or degenerate, in words.
    """

    rows: int
    labelled_rows: int
    metrics: dict[str, float | None]
    confusion: ConfusionCounts
    business_cost: BusinessCost
    notes: tuple[str, ...] = ()

    @property
    def unlabelled_rows(self) -> int:
        """Predictions whose label has not arrived (or never will: a cancelled flight)."""
        return self.rows - self.labelled_rows

    @property
    def coverage(self) -> float:
        """Share of the predictions with a label."""
        return self.labelled_rows / self.rows if self.rows else 0.0

    def value(self, metric: str) -> float | None:
        """A live metric, or the business cost per row, by name."""
        if metric == COST_METRIC:
            return self.business_cost.per_row
        return self.metrics.get(metric)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        values = asdict(self)
        values["unlabelled_rows"] = self.unlabelled_rows
        values["coverage"] = self.coverage
        values["notes"] = list(self.notes)
        return json_safe_mapping(values)


def _as_array(values: Any, what: str) -> Any:
    import numpy as np

    try:
        return np.asarray(values, dtype="float64")
    except (TypeError, ValueError) as err:
        raise DataError(f"{what} must be numbers: {err}") from err


def _refuse_outside(values: Any, allowed: Callable[[Any], Any], what: str, expected: str) -> None:
    bad = ~allowed(values)
    if bad.any():
        examples = sorted({float(value) for value in values[bad][:5]}, key=str)
        raise DataError(f"{int(bad.sum())} {what} are {expected} (e.g. {examples})")


def evaluate_interval(
    labels: Any,
    probabilities: Any,
    *,
    costs: BusinessCosts,
    predictions: Any = None,
    threshold: float = 0.5,
) -> IntervalPerformance:
    """Metrics and business cost of one interval.

    :param labels: 0/1 per prediction, NaN (or None) where the label has not arrived; those rows are counted
        as unlabelled and left out.
    :param probabilities: the predicted probability of the positive class per row, in [0, 1].
    :param costs: what a missed positive and a false alarm cost.
    :param predictions: the 0/1 decisions batch scoring made; default ``probabilities >= threshold``.
    :param threshold: the decision threshold when ``predictions`` is not given.
    :return: the interval's performance.
    :raises DataError: naming the problem: lengths differ, no rows, no label at all, labels other than 0/1,
        probabilities missing or outside [0, 1], decisions other than 0/1.
    """
    import numpy as np

    labels = _as_array(labels, "labels")
    probabilities = _as_array(probabilities, "probabilities")
    predictions = (
        (probabilities >= threshold).astype("float64")
        if predictions is None
        else _as_array(predictions, "predictions")
    )
    lengths = {"labels": len(labels), "probabilities": len(probabilities), "predictions": len(predictions)}
    if len(set(lengths.values())) > 1:
        raise DataError(f"labels, probabilities and predictions differ in length: {lengths}")
    rows = len(labels)
    if rows == 0:
        raise DataError("no predictions to evaluate: the interval joined no rows")
    labelled = ~np.isnan(labels)
    if not labelled.any():
        raise DataError(f"labels are missing for every one of the {rows} predictions: nothing to measure yet")
    _refuse_outside(probabilities, lambda v: (v >= 0) & (v <= 1), "probabilities", "outside [0, 1] or NaN")
    _refuse_outside(predictions, lambda v: (v == 0) | (v == 1), "predictions", "not 0 or 1")
    labels, probabilities, predictions = labels[labelled], probabilities[labelled], predictions[labelled]
    _refuse_outside(labels, lambda v: (v == 0) | (v == 1), "labels", "not 0, 1 or missing")

    computed = classification_metrics(labels, probabilities, predicted=predictions)
    metrics: dict[str, float | None] = {name: computed[name] for name in LIVE_METRICS if name in computed}
    metrics["predicted_positive_rate"] = float(predictions.mean())
    positive, decided = labels == 1, predictions == 1
    confusion = ConfusionCounts(
        true_positives=int((positive & decided).sum()),
        false_positives=int((~positive & decided).sum()),
        true_negatives=int((~positive & ~decided).sum()),
        false_negatives=int((positive & ~decided).sum()),
    )
    notes = []
    if math.isnan(computed["roc_auc"]):
        metrics["roc_auc"] = None
        only = "positive" if labels[0] == 1 else "negative"
        notes.append(f"roc_auc is undefined: all {len(labels)} labelled rows are {only}")
    # scikit-learn reports 0 for a ratio with nothing to divide (zero_division=0); a 0 would fire a floor on
    # an interval that says nothing about the model, so an undefined ratio is None, with the reason.
    tp, fp, fn = confusion.true_positives, confusion.false_positives, confusion.false_negatives
    for metric, denominator, why in (
        ("precision", tp + fp, "no positive decision was made"),
        ("recall", tp + fn, "no labelled row is positive"),
        ("f1", 2 * tp + fp + fn, "no positive decision and no positive label"),
    ):
        if denominator == 0:
            metrics[metric] = None
            notes.append(f"{metric} is undefined: {why}")
    total = confusion.false_negatives * costs.missed_positive + confusion.false_positives * costs.false_alarm
    return IntervalPerformance(
        rows=rows,
        labelled_rows=len(labels),
        metrics=metrics,
        confusion=confusion,
        business_cost=BusinessCost(
            total=float(total),
            per_row=float(total) / len(labels),
            missed_positives=confusion.false_negatives,
            false_alarms=confusion.false_positives,
            costs=costs,
        ),
        notes=tuple(notes),
    )


# --------------------------------------------------------------------------------------------------- decay


@dataclass(frozen=True)
class DecayCheck:
    """One check of the decay rule on one metric.

    :param kind: ``"floor"`` (value >= threshold), ``"ceiling"`` (value <= threshold) or ``"max_drop"``
        (the worsening from ``training_value`` <= threshold, in the metric's units).
    :param value: the live value (for ``max_drop`` too, so the reader sees both ends of the drop).
    :param violated: the check fired.
    :param evaluated: ``False`` when the live value is missing (then ``violated`` is ``False``).
    """

    metric: str
    kind: str
    value: float | None
    threshold: float
    training_value: float | None = None
    violated: bool = False
    evaluated: bool = True
    detail: str = ""

    def describe(self) -> str:
        """One line: metric, value, the limit it broke or kept, the training value."""
        value, training_value = self.value, self.training_value
        if not self.evaluated or value is None:
            return f"{self.metric} {self.kind} not evaluated: {self.detail or 'no live value'}"
        if self.kind == "max_drop" and training_value is not None:
            worse = "rose" if self.metric in DECAY_LOWER_IS_BETTER else "dropped"
            change = abs(value - training_value)
            return (
                f"{self.metric} {worse} {change:.4f} from {training_value:.4f} at training to "
                f"{value:.4f} (max drop {self.threshold:.4f})"
            )
        comparison = ">=" if self.kind == "floor" else "<="
        return f"{self.metric} {value:.4f} (must be {comparison} {self.threshold:.4f})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form, with ``message`` = :meth:`describe`."""
        return json_safe_mapping({**asdict(self), "message": self.describe()})


@dataclass(frozen=True)
class DecayVerdict:
    """The decay rule's verdict on one interval.

    ``decayed`` (any check violated: a retrain is requested), ``inconclusive`` (nothing violated, but a check
    could not be evaluated or too few rows were labelled) or ``healthy`` (every check evaluated and kept).
    """

    status: Status
    checks: tuple[DecayCheck, ...]
    labelled_rows: int
    min_labelled_rows: int

    @property
    def retrain_requested(self) -> bool:
        """Whether any check fired."""
        return self.status == "decayed"

    @property
    def violations(self) -> tuple[DecayCheck, ...]:
        """The checks that fired."""
        return tuple(check for check in self.checks if check.violated)

    @property
    def unevaluated(self) -> tuple[DecayCheck, ...]:
        """The checks that could not be evaluated."""
        return tuple(check for check in self.checks if not check.evaluated)

    def summary(self) -> str:
        """One line: the status and, when decayed, ``retrain requested``."""
        if self.status == "decayed":
            return f"retrain requested: {len(self.violations)} of {len(self.checks)} decay checks violated"
        if self.status == "inconclusive":
            if self.labelled_rows < self.min_labelled_rows:
                return (
                    f"inconclusive: {self.labelled_rows} labelled rows, the rule needs "
                    f"{self.min_labelled_rows}"
                )
            return f"inconclusive: {len(self.unevaluated)} of {len(self.checks)} decay checks not evaluated"
        return f"healthy: all {len(self.checks)} decay checks kept"

    def message(self) -> str:
        """The summary and every violated or unevaluated check, one per line."""
        lines = [self.summary()]
        lines += [f"  - {check.describe()}" for check in (*self.violations, *self.unevaluated)]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """``{"status", "retrain_requested", "summary", "reasons", "unevaluated", "checks"}``; ``reasons``
        lists each violated check (metric, kind, value, threshold, training_value, message)."""
        return {
            "status": self.status,
            "retrain_requested": self.retrain_requested,
            "summary": self.summary(),
            "reasons": [check.to_dict() for check in self.violations],
            "unevaluated": [check.to_dict() for check in self.unevaluated],
            "checks": [check.to_dict() for check in self.checks],
        }


@dataclass(frozen=True)
class DecayRule(LoadableConfig):
    """When live performance means the model has decayed and must be retrained (:meth:`load`: a YAML file
    path, a mapping, or a rule).

    :param min_metrics: floors of higher-is-better metrics, e.g. ``{"roc_auc": 0.6}``.
    :param max_metrics: ceilings of lower-is-better metrics, e.g. ``{"business_cost_per_row": 9.0}``.
    :param max_drop: the largest allowed worsening from the model's held-out metrics at training
        (``holdout_<metric>`` of its training run), in the metric's own units: ``{"roc_auc": 0.05}`` fires
        at 0.64 live for a model that scored 0.70.
    :param min_labelled_rows: below this many labelled rows the verdict is ``inconclusive`` (a handful of
        flights says nothing about a model), never healthy nor decayed.
    """

    min_metrics: dict[str, float] = field(default_factory=dict)
    max_metrics: dict[str, float] = field(default_factory=dict)
    max_drop: dict[str, float] = field(default_factory=dict)
    min_labelled_rows: int = 1

    config_name: ClassVar[str] = "decay rule"

    @classmethod
    def from_dict(cls, values: dict[str, Any], origin: str = "decay rule") -> DecayRule:
        """Build from a mapping (a parsed YAML file), naming ``origin`` and the field in errors."""
        refuse_unknown_fields(cls, values, origin)
        allowed = {
            "min_metrics": RULE_METRICS - DECAY_LOWER_IS_BETTER,
            "max_metrics": DECAY_LOWER_IS_BETTER,
            "max_drop": TRAINED_METRICS,
        }
        thresholds = {}
        for name, metrics in allowed.items():
            given = values.get(name) or {}
            if not isinstance(given, dict):
                raise DataError(f"{origin}: {name} must map metric names to numbers, got {given!r}")
            wrong = sorted(set(given) - metrics)
            if wrong:
                raise DataError(f"{origin}: {name} cannot check {wrong}; it takes some of {sorted(metrics)}")
            thresholds[name] = {
                str(metric): _finite_number(value, f"{origin}: {name}.{metric}")
                for metric, value in given.items()
            }
        for metric, drop in thresholds["max_drop"].items():
            if drop < 0:
                raise DataError(f"{origin}: max_drop.{metric} must be >= 0, got {drop}")
        minimum = _finite_number(values.get("min_labelled_rows", 1), f"{origin}: min_labelled_rows")
        if minimum < 1 or minimum != int(minimum):
            raise DataError(f"{origin}: min_labelled_rows must be a whole number >= 1, got {minimum}")
        if not any(thresholds.values()):
            # A rule without a check could only ever say "healthy".
            raise DataError(f"{origin}: the rule checks nothing; set min_metrics, max_metrics or max_drop")
        return cls(**thresholds, min_labelled_rows=int(minimum))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return asdict(self)

    def training_metrics(self, run_metrics: dict[str, float]) -> dict[str, float]:
        """The held-out metrics of a training run's metrics (``holdout_<metric>`` -> ``<metric>``)."""
        return {
            name[len(TRAINING_PREFIX) :]: float(value)
            for name, value in run_metrics.items()
            if name.startswith(TRAINING_PREFIX)
        }

    def judge(self, performance: IntervalPerformance, training: dict[str, float]) -> DecayVerdict:
        """The verdict on ``performance`` for a model whose held-out metrics at training were ``training``.

        :param training: ``{metric: value}`` (see :meth:`training_metrics`).
        :raises DataError: when a ``max_drop`` metric has no training value (the rule cannot be applied to
            this model: an unchecked drop must not read as healthy).
        """
        missing = sorted(
            metric
            for metric in self.max_drop
            if metric not in training or not math.isfinite(float(training[metric]))
        )
        if missing:
            raise DataError(
                f"the decay rule compares {missing} with training, but the model's training run has no "
                f"finite held-out value for them (it has {sorted(training)})"
            )
        checks = []
        for kind, limits in (("floor", self.min_metrics), ("ceiling", self.max_metrics)):
            for metric, threshold in limits.items():
                checks.append(self._limit(kind, metric, performance.value(metric), threshold, performance))
        for metric, allowed in self.max_drop.items():
            checks.append(
                self._drop(metric, performance.value(metric), float(training[metric]), allowed, performance)
            )
        if any(check.violated for check in checks):
            status: Status = "decayed"
        elif performance.labelled_rows < self.min_labelled_rows or any(not c.evaluated for c in checks):
            status = "inconclusive"
        else:
            status = "healthy"
        return DecayVerdict(status, tuple(checks), performance.labelled_rows, self.min_labelled_rows)

    def _unevaluated(
        self,
        kind: str,
        metric: str,
        threshold: float,
        training: float | None,
        performance: IntervalPerformance,
    ) -> DecayCheck:
        why = next((note for note in performance.notes if note.startswith(metric)), f"{metric} is missing")
        return DecayCheck(metric, kind, None, threshold, training, evaluated=False, detail=why)

    def _limit(
        self, kind: str, metric: str, value: float | None, threshold: float, performance: IntervalPerformance
    ) -> DecayCheck:
        if value is None:
            return self._unevaluated(kind, metric, threshold, None, performance)
        kept = value >= threshold - TOLERANCE if kind == "floor" else value <= threshold + TOLERANCE
        return DecayCheck(metric, kind, value, threshold, violated=not kept)

    def _drop(
        self,
        metric: str,
        value: float | None,
        training: float,
        allowed: float,
        performance: IntervalPerformance,
    ) -> DecayCheck:
        if value is None:
            return self._unevaluated("max_drop", metric, allowed, training, performance)
        worsening = value - training if metric in DECAY_LOWER_IS_BETTER else training - value
        return DecayCheck(
            metric, "max_drop", value, allowed, training, violated=worsening > allowed + TOLERANCE
        )


# --------------------------------------------------------------------------------------------------- joining


def interval_step(interval: Interval) -> int:
    """The interval's index on a timeline of intervals of its length since the Unix epoch.

    Consecutive daily intervals get consecutive steps, and a re-run of an interval gets the same step.
    """
    from datetime import UTC, datetime

    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return int((interval.start - epoch) // (interval.end - interval.start))


def join_labels(
    predictions: pd.DataFrame, labels: pd.DataFrame, key_columns: Sequence[str], target: str
) -> pd.DataFrame:
    """The predictions with a ``target`` column from ``labels`` (NaN where no label arrived), one row each.

    :raises DataError: naming the key columns one side lacks, or the keys that are not unique (a join on them
        would count a row twice).
    """
    import pandas as pd

    keys = list(key_columns)
    if not keys:
        raise DataError("no key columns to join predictions with their labels")
    for side, frame, needed in (("predictions", predictions, keys), ("labels", labels, [*keys, target])):
        missing = [column for column in needed if column not in frame.columns]
        if missing:
            raise DataError(f"the {side} lack column(s) {missing} (they have {list(frame.columns)})")
        duplicated = frame.duplicated(keys)
        if duplicated.any():
            example = frame.loc[duplicated, keys].iloc[0].to_dict()
            raise DataError(
                f"{int(duplicated.sum())} {side} rows repeat a key {keys} (e.g. {example}): the join would "
                "count them twice"
            )
    right = labels[[*keys, target]]
    # Keys read from two files may differ in width (int32 vs int64) or string flavour: align on the
    # predictions' types, so equal values match.
    for column in keys:
        if right[column].dtype != predictions[column].dtype:
            try:
                right = right.assign(**{column: right[column].astype(predictions[column].dtype)})
            except (TypeError, ValueError) as err:
                raise DataError(
                    f"key column {column!r} is {predictions[column].dtype} in the predictions and "
                    f"{labels[column].dtype} in the labels: {err}"
                ) from err
    joined = pd.merge(predictions.drop(columns=[target], errors="ignore"), right, on=keys, how="left")
    joined[target] = pd.to_numeric(joined[target], errors="coerce").astype("float64")
    return joined


def read_predictions(
    uri: str, s3_options: dict[str, Any] | None = None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A published predictions partition and its scoring metadata (model name and version, interval).

    :raises DataError: when the partition does not exist (the interval was not scored, or had no rows).
    """
    import pyarrow.parquet as pq

    from mlops_ops.core import scoring, storage

    if not storage.exists(uri, s3_options):
        raise DataError(f"no published predictions at {uri}: score the interval first")
    filesystem, path = storage.resolve(uri, s3_options)
    frame = pq.read_table(path, filesystem=filesystem).to_pandas()
    return frame, scoring.read_file_metadata(uri, s3_options)


def read_labels(
    source_uri: str,
    interval: Interval,
    *,
    key_columns: Sequence[str],
    time_column: str,
    target: str,
    prepare: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
    s3_options: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """The key columns and label of the rows landed under ``source_uri`` in ``interval``.

    Read in record batches and filtered to the interval as batch scoring reads its input; the label is
    ``target`` as ``prepare`` (the model spec's, the one training used) derives it from each raw batch.

    :raises DataError: naming the input or column when the rows cannot give a label.
    """
    import pandas as pd

    from mlops_ops.core import scoring, storage

    config = scoring.ScoringConfig(
        features=(), key_columns=key_columns, time_column=time_column, prepare=prepare
    )
    filesystem, _ = storage.resolve(source_uri, s3_options)
    try:
        units = scoring.find_input_units(source_uri, interval, time_column, s3_options)
    except DataError as err:
        # Its messages speak of the scoring input; here the same files are read for their labels.
        raise DataError(f"labels: {err}".replace("the scoring input", "the labels source")) from err
    parts = []
    for batch, _ in scoring.iter_interval_batches(
        units, config, interval, filesystem, storage.is_s3(source_uri)
    ):
        if batch.num_rows == 0:
            continue
        raw = batch.to_pandas()
        missing = [column for column in key_columns if column not in raw.columns]
        if missing:
            raise DataError(f"the rows under {source_uri} lack key column(s) {missing}")
        prepared = prepare(raw) if prepare is not None else raw
        if target not in prepared.columns:
            raise DataError(
                f"the rows under {source_uri} give no label column {target!r}"
                + (" after the model spec's prepare function" if prepare is not None else "")
            )
        if len(prepared) != len(raw):
            raise DataError(
                f"the prepare function returned {len(prepared)} rows for {len(raw)}; labels need one per row"
            )
        part = raw[list(key_columns)].reset_index(drop=True)
        part[target] = pd.to_numeric(prepared[target], errors="coerce").to_numpy(dtype="float64")
        parts.append(part)
    if not parts:
        return pd.DataFrame({**{column: [] for column in key_columns}, target: []})
    return pd.concat(parts, ignore_index=True)
