"""The decay rule: floors, ceilings and the largest allowed drop from the training-time metrics, and its
verdict (healthy, decayed or inconclusive).

The metrics a rule may name are those of the model's task (:mod:`mlops_ops.core.tasks`) and
``business_cost_per_row``; their direction is the task's, so "rmse rose by more than 2.0 from training" reads as
"roc_auc dropped by more than 0.05" does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from mlops_ops.core.config_files import LoadableConfig, refuse_unknown_fields
from mlops_ops.core.errors import DataError
from mlops_ops.core.gate import TOLERANCE
from mlops_ops.core.json_values import json_safe_mapping
from mlops_ops.core.performance.costs import _finite_number
from mlops_ops.core.performance.metrics import (
    COST_METRIC,
    TRAINING_PREFIX,
    IntervalPerformance,
    lower_is_better,
)
from mlops_ops.core.tasks import RECALL_PREFIX, TASKS, get_task

if TYPE_CHECKING:
    from mlops_ops.core.tasks import Task


Status = Literal["healthy", "decayed", "inconclusive"]


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
            worse = "rose" if lower_is_better(self.metric) else "dropped"
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

    def limits(self) -> list[dict[str, Any]]:
        """Every check's limit in the metric's own units, kept or not: ``{"metric", "kind", "value"}`` with
        ``kind`` ``"floor"`` or ``"ceiling"``. A ``max_drop`` becomes the floor (ceiling for a lower-is-better
        metric) it sets under the training value; one without a training value sets none. What a chart of the
        live metric draws as its limit lines."""
        found = []
        for check in self.checks:
            if check.kind in ("floor", "ceiling"):
                found.append({"metric": check.metric, "kind": check.kind, "value": check.threshold})
            elif check.kind == "max_drop" and check.training_value is not None:
                lower = lower_is_better(check.metric)
                found.append(
                    {
                        "metric": check.metric,
                        "kind": "ceiling" if lower else "floor",
                        "value": check.training_value + (check.threshold if lower else -check.threshold),
                        "max_drop": check.threshold,
                    }
                )
        return found

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


#: The sections of a rule that name metrics, and what a misplaced metric needs instead.
SECTIONS: dict[str, str] = {
    "min_metrics": "a floor takes a higher-is-better metric; put a lower-is-better one under max_metrics",
    "max_metrics": "a ceiling takes a lower-is-better metric or business_cost_per_row; put a higher-is-better "
    "one under min_metrics",
    "max_drop": "training measures no business cost",
}


def _takes(task: Task, section: str, metric: str, classes: Sequence[Any] | None = None) -> bool:
    """Whether ``section`` of a rule for a ``task`` model (of ``classes``, when known) may name ``metric``."""
    if metric == COST_METRIC:
        return section == "max_metrics"
    try:
        higher_is_better = task.direction(metric).higher_is_better
    except DataError:
        return False
    if classes is not None and metric not in task.metrics(classes):
        return False  # recall_<class> of a class the model does not know
    return {"min_metrics": higher_is_better, "max_metrics": not higher_is_better, "max_drop": True}[section]


def _measured(metric: str) -> bool:
    """Whether some task measures ``metric``, or it is the business cost (a key in the wrong section)."""
    return metric == COST_METRIC or any(_takes(task, "max_drop", metric) for task in TASKS.values())


def _section_keys(task: Task, section: str, classes: Sequence[Any] | None = None) -> list[str]:
    """The metric keys ``section`` takes for a ``task`` model (``recall_<class>`` when its classes are unknown)."""
    names = [*task.metric_names(classes), COST_METRIC]
    if task.name == "multiclass" and classes is None:
        names.append(f"{RECALL_PREFIX}<class>")
    return sorted(name for name in names if _takes(task, section, name, classes))


@dataclass(frozen=True)
class DecayRule(LoadableConfig):
    """When live performance means the model has decayed and must be retrained (:meth:`load`: a YAML file
    path, a mapping, or a rule).

    The metric keys are those of the model's task and ``business_cost_per_row``: binary ``roc_auc``,
    ``log_loss``, ``brier_score``, ``accuracy``, ``precision``, ``recall``, ``f1``; multiclass ``accuracy``,
    ``f1_macro``, ``f1_weighted``, ``log_loss``, ``recall_<class>``; regression ``rmse``, ``mae``, ``r2``,
    ``mape``. :meth:`check_for` refuses a key the model's task does not measure, naming those it does.

    :param min_metrics: floors of higher-is-better metrics, e.g. ``{"roc_auc": 0.6}``, ``{"r2": 0.5}``.
    :param max_metrics: ceilings of lower-is-better metrics, e.g. ``{"business_cost_per_row": 9.0}``,
        ``{"rmse": 12.5}``.
    :param max_drop: the largest allowed worsening from the model's held-out metrics at training
        (``holdout_<metric>`` of its training run), in the metric's own units: ``{"roc_auc": 0.05}`` fires
        at 0.64 live for a model that scored 0.70, ``{"rmse": 2.0}`` at 13.5 for one that scored 11.0.
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
        """Build from a mapping (a parsed YAML file), naming ``origin`` and the field in errors.

        A key no task measures (a typo) is refused here; :meth:`check_for` refuses one the model's task does
        not measure.
        """
        refuse_unknown_fields(cls, values, origin)
        thresholds = {}
        for section, hint in SECTIONS.items():
            given = values.get(section) or {}
            if not isinstance(given, dict):
                raise DataError(f"{origin}: {section} must map metric names to numbers, got {given!r}")
            wrong = sorted(
                str(metric)
                for metric in given
                if not any(_takes(task, section, str(metric)) for task in TASKS.values())
            )
            if wrong:
                misplaced = [metric for metric in wrong if _measured(metric)]
                allowed = sorted({key for task in TASKS.values() for key in _section_keys(task, section)})
                raise DataError(
                    f"{origin}: {section} cannot check {wrong}"
                    + (f" ({hint})" if misplaced else "")
                    + f"; it takes some of {allowed}"
                )
            thresholds[section] = {
                str(metric): _finite_number(value, f"{origin}: {section}.{metric}")
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

    def check_for(self, task: Task, origin: str = "decay rule", classes: Sequence[Any] | None = None) -> None:
        """Refuse a metric key that ``task`` does not measure (with ``classes``: a ``recall_<class>`` of a class
        the model does not know), or that its section cannot check, naming the keys the section takes.

        :raises DataError: naming ``origin``, the section, the key and the available keys.
        """
        for section in SECTIONS:
            wrong = sorted(
                metric for metric in getattr(self, section) if not _takes(task, section, metric, classes)
            )
            if wrong:
                raise DataError(
                    f"{origin}: {section} cannot check {wrong} on a {task.name} model; it takes some of "
                    f"{_section_keys(task, section, classes)}"
                )

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
        :raises DataError: when the rule names a metric the interval's task does not measure (see
            :meth:`check_for`), or a ``max_drop`` metric has no training value (the rule cannot be applied to
            this model: an unchecked drop must not read as healthy).
        """
        self.check_for(get_task(performance.task), classes=performance.classes)
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
        worsening = value - training if lower_is_better(metric) else training - value
        return DecayCheck(
            metric, "max_drop", value, allowed, training, violated=worsening > allowed + TOLERANCE
        )
