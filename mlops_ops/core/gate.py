"""The evaluation gate: may a challenger replace the champion? A pure decision over metric values."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from mlops_ops.core.config_files import LoadableConfig, refuse_unknown_fields
from mlops_ops.core.errors import DataError
from mlops_ops.core.json_values import json_safe_mapping
from mlops_ops.core.tasks import lower_is_better

if TYPE_CHECKING:
    import pandas as pd

    from mlops_ops.core.modelspec import ModelSpec
    from mlops_ops.core.tasks import Task

FirstModelPolicy = Literal["accept", "reject"]

#: Slack for float rounding: a challenger exactly at a threshold (0.695 vs 0.70 - 0.005) passes.
TOLERANCE = 1e-9
#: Name of the check the first-model policy decides when there is no champion yet.
FIRST_MODEL_CHECK = "first model"


@dataclass(frozen=True)
class GateCheck:
    """One check of the gate: ``value`` against ``threshold`` with ``comparison``, and its verdict."""

    name: str
    passed: bool
    value: float | None = None
    threshold: float | None = None
    comparison: str = ""
    detail: str = ""

    def describe(self) -> str:
        """One line for a failure message: name, value, comparison, threshold, detail."""
        text = self.name
        if self.value is not None:
            text += f": {self.value:.4f}"
        if self.threshold is not None:
            text += f" (must be {self.comparison} {self.threshold:.4f})"
        if self.detail:
            text += f" - {self.detail}"
        return text


@dataclass(frozen=True)
class GatePolicy(LoadableConfig):
    """Thresholds of a gate (:meth:`load` reads it from a YAML file path, a mapping or a policy).

    The metric keys are those the model's task measures (:mod:`mlops_ops.core.tasks`): binary ``roc_auc``,
    ``log_loss``, ``brier_score``, ``accuracy``, ``precision``, ``recall``, ``f1``; multiclass ``accuracy``,
    ``f1_macro``, ``f1_weighted``, ``log_loss``, ``recall_<class>``; regression ``rmse``, ``mae``, ``r2``, ``mape``.
    :meth:`check_for` refuses a key the task does not measure, naming those it does.

    :param min_metrics: absolute floors for higher-is-better metrics, e.g. ``{"roc_auc": 0.6}``.
    :param max_metrics: absolute ceilings for lower-is-better metrics, e.g. ``{"log_loss": 0.6}``,
        ``{"rmse": 12.5}``.
    :param max_regression: the largest allowed worsening against the champion, per metric (in the metric's
        own units; for lower-is-better metrics an increase is a worsening).
    :param min_improvement: the gain over the champion required per metric (0 = at least as good).
    :param first_model: with no champion, ``"accept"`` lets the absolute checks decide; ``"reject"`` refuses.
    :param checks: behavioural checks, ``"module:function"`` references called as
        ``function(model, labelled_rows, spec)`` on the held-out rows, each returning a bool or a GateCheck.
    """

    min_metrics: dict[str, float] = field(default_factory=dict)
    max_metrics: dict[str, float] = field(default_factory=dict)
    max_regression: dict[str, float] = field(default_factory=dict)
    min_improvement: dict[str, float] = field(default_factory=dict)
    first_model: FirstModelPolicy = "accept"
    checks: tuple[str, ...] = ()

    config_name: ClassVar[str] = "gate policy"

    @classmethod
    def from_dict(cls, values: dict[str, Any], origin: str = "gate policy") -> GatePolicy:
        """Build from a mapping (a parsed YAML file), naming ``origin`` in errors."""
        refuse_unknown_fields(cls, values, origin)
        if values.get("first_model", "accept") not in ("accept", "reject"):
            raise DataError(
                f"{origin}: first_model must be 'accept' or 'reject', got {values['first_model']!r}"
            )
        thresholds = {}
        for name in ("min_metrics", "max_metrics", "max_regression", "min_improvement"):
            given = values.get(name) or {}
            if not isinstance(given, dict):
                raise DataError(f"{origin}: {name} must map metric names to numbers, got {given!r}")
            try:
                thresholds[name] = {str(k): float(v) for k, v in given.items()}
            except (TypeError, ValueError) as err:
                raise DataError(f"{origin}: {name} must map metric names to numbers ({err})") from err
        checks = values.get("checks") or ()
        # A single string would otherwise become one check per character.
        if not isinstance(checks, list | tuple) or not all(isinstance(check, str) for check in checks):
            raise DataError(
                f"{origin}: checks must be a list of 'module:function' references, got {checks!r}"
            )
        return cls(
            **thresholds,
            first_model=values.get("first_model", "accept"),
            checks=tuple(checks),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        values = asdict(self)
        values["checks"] = list(self.checks)
        return values

    def check_for(self, task: Task, origin: str = "gate policy") -> None:
        """Refuse a metric key ``task`` does not measure, and a floor on a lower-is-better metric or a ceiling
        on a higher-is-better one (which could never mean what it says), naming the key and what to use.

        :raises DataError: naming ``origin``, the key and the available keys or the right section.
        """
        for section in ("min_metrics", "max_metrics", "max_regression", "min_improvement"):
            task.check_metric_keys(list(getattr(self, section)), f"{origin}: {section}")
        for name in self.min_metrics:
            if task.lower_is_better(name):
                raise DataError(
                    f"{origin}: min_metrics.{name} is a floor on a lower-is-better metric; "
                    f"put its ceiling under max_metrics"
                )
        for name in self.max_metrics:
            if not task.lower_is_better(name):
                raise DataError(
                    f"{origin}: max_metrics.{name} is a ceiling on a higher-is-better metric; "
                    f"put its floor under min_metrics"
                )


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict with every check, as evidence for the registry and the approver."""

    passed: bool
    checks: tuple[GateCheck, ...]
    challenger_metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    champion_version: str | None
    policy: dict[str, Any]

    @property
    def failures(self) -> tuple[GateCheck, ...]:
        """The checks that failed."""
        return tuple(check for check in self.checks if not check.passed)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (NaN becomes ``None``)."""
        return json_safe_mapping(asdict(self))

    def summary(self) -> str:
        """One line: passed or failed, and against which champion."""
        against = f"champion v{self.champion_version}" if self.champion_version else "no champion"
        verdict = "passed" if self.passed else f"failed {len(self.failures)} of {len(self.checks)} checks"
        return f"gate {verdict} against {against}"

    def failure_message(self) -> str:
        """Every failing check against its threshold, one per line."""
        lines = [f"The challenger {self.summary()}:"]
        lines += [f"  - {check.describe()}" for check in self.failures]
        return "\n".join(lines)


def run_behavioural_checks(
    references: Sequence[str], model: Any, rows: pd.DataFrame, spec: ModelSpec
) -> list[GateCheck]:
    """Run a policy's behavioural checks on ``model`` with the labelled ``rows``.

    Each ``"module:function"`` is called as ``function(model, labelled_rows, spec)`` and returns a bool or a
    :class:`GateCheck`. A check that cannot be imported, raises, or returns anything else is a failed check
    naming why, so one broken check never hides the others.

    :param references: the policy's ``checks``.
    :param model: the model judged.
    :param rows: the held-out rows; those whose target is missing are left out.
    :param spec: the model's spec (target, features), handed to each check.
    :return: one check per reference, in order; a bare bool becomes a check named by its reference.
    """
    from mlops_ops.core.modelspec import load_callable

    labelled = rows[rows[spec.target].notna()]
    checks = []
    for reference in references:
        try:
            outcome = load_callable(reference)(model, labelled, spec)
        except Exception as err:  # a crashing check is a failed check, reported with its error
            outcome = GateCheck(reference, False, detail=f"raised {type(err).__name__}: {err}")
        if isinstance(outcome, bool):
            outcome = GateCheck(reference, outcome)
        if not isinstance(outcome, GateCheck):
            outcome = GateCheck(
                reference, False, detail=f"returned {type(outcome).__name__}, not a GateCheck"
            )
        checks.append(outcome)
    return checks


def _metric(metrics: dict[str, float], name: str, who: str) -> float:
    if name not in metrics:
        raise DataError(f"the gate needs metric {name!r} of the {who}, which has only {sorted(metrics)}")
    return float(metrics[name])


def decide(
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    policy: GatePolicy,
    *,
    champion_version: str | None = None,
    extra_checks: tuple[GateCheck, ...] = (),
    task: Task | None = None,
) -> GateDecision:
    """Decide whether ``challenger`` passes ``policy`` against ``champion`` (``None``: no champion yet).

    A metric that is NaN (e.g. ROC-AUC on one class) fails every check it takes part in.

    :param task: the model's task, whose metric directions decide what a gain is; default the direction any
        task gives the metric's name (:func:`~mlops_ops.core.tasks.lower_is_better`).
    """
    lower = task.lower_is_better if task is not None else lower_is_better
    checks: list[GateCheck] = []
    for name, floor in policy.min_metrics.items():
        value = _metric(challenger, name, "challenger")
        checks.append(GateCheck(f"{name} >= floor", value >= floor - TOLERANCE, value, floor, ">="))
    for name, ceiling in policy.max_metrics.items():
        value = _metric(challenger, name, "challenger")
        checks.append(GateCheck(f"{name} <= ceiling", value <= ceiling + TOLERANCE, value, ceiling, "<="))

    if champion is None:
        checks.append(
            GateCheck(
                FIRST_MODEL_CHECK,
                policy.first_model == "accept",
                detail=f"no champion yet; first-model policy is {policy.first_model!r}",
            )
        )
    else:
        for name, allowed in policy.max_regression.items():
            gain = _gain(name, challenger, champion, lower(name))
            checks.append(
                GateCheck(
                    f"{name} regression vs champion",
                    gain >= -allowed - TOLERANCE,
                    gain,
                    -allowed if allowed else 0.0,
                    ">=",
                    f"challenger {challenger[name]:.4f}, champion {champion[name]:.4f}",
                )
            )
        for name, required in policy.min_improvement.items():
            gain = _gain(name, challenger, champion, lower(name))
            checks.append(
                GateCheck(
                    f"{name} improvement vs champion",
                    gain >= required - TOLERANCE,
                    gain,
                    required,
                    ">=",
                    f"challenger {challenger[name]:.4f}, champion {champion[name]:.4f}",
                )
            )
    checks.extend(extra_checks)
    return GateDecision(
        passed=all(check.passed for check in checks),
        checks=tuple(checks),
        challenger_metrics=dict(challenger),
        champion_metrics=dict(champion) if champion is not None else None,
        champion_version=champion_version,
        policy=policy.to_dict(),
    )


def _gain(name: str, challenger: dict[str, float], champion: dict[str, float], lower_better: bool) -> float:
    """How much better the challenger is on ``name`` (positive = better), whatever the metric's direction."""
    difference = _metric(challenger, name, "challenger") - _metric(champion, name, "champion")
    return -difference if lower_better else difference
