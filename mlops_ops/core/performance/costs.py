"""The business cost of a scored interval's wrong decisions, with configured costs per task:

- binary: a missed positive against a false alarm (``missed_positive``, ``false_alarm``);
- multiclass: a misclassified row (``misclassification``), optionally per (true class, predicted class) in
  ``matrix``;
- regression: each unit of error, predicted too low (``under_prediction``) or too high (``over_prediction``).

The task of a cost table is the one whose fields it sets; :meth:`BusinessCosts.check_for` refuses a table of
another task than the model's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar

from mlops_ops.core.config_files import LoadableConfig
from mlops_ops.core.errors import DataError, required
from mlops_ops.core.json_values import json_safe_mapping

if TYPE_CHECKING:
    from mlops_ops.core.tasks import Task, TaskType

#: The fields each task's cost table requires; multiclass may add :data:`OPTIONAL_FIELDS`.
COST_FIELDS: dict[str, tuple[str, ...]] = {
    "binary": ("missed_positive", "false_alarm"),
    "multiclass": ("misclassification",),
    "regression": ("under_prediction", "over_prediction"),
}
OPTIONAL_FIELDS: dict[str, tuple[str, ...]] = {"multiclass": ("matrix",)}


def _finite_number(value: Any, what: str) -> float:
    if isinstance(value, bool):  # YAML's yes/no is not a cost
        raise DataError(f"{what} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError) as err:
        raise DataError(f"{what} must be a number, got {value!r}") from err
    if not math.isfinite(number):
        raise DataError(f"{what} must be a finite number, got {value!r}")
    return number


def _cost(value: Any, what: str) -> float:
    number = _finite_number(value, what)
    if number < 0:
        raise DataError(f"{what} must be >= 0, got {number}")
    return number


def _table(task: str) -> str:
    """A task's cost fields in words, e.g. ``['misclassification'] (and optionally ['matrix'])``."""
    words = str(sorted(COST_FIELDS[task]))
    optional = OPTIONAL_FIELDS.get(task)
    return words + (f" (and optionally {sorted(optional)})" if optional else "")


def _tables() -> str:
    return "; ".join(f"{task} {_table(task)}" for task in COST_FIELDS)


@dataclass(frozen=True)
class BusinessCosts(LoadableConfig):
    """What one wrong decision costs, in one unit of the business's choosing (:meth:`load`: a YAML file path,
    a mapping, or costs). Set the fields of the model's task only: binary ``missed_positive`` and
    ``false_alarm``; multiclass ``misclassification`` (and optionally ``matrix``); regression
    ``under_prediction`` and ``over_prediction``.

    :param missed_positive: binary: cost of a positive the model missed (a delay nobody was warned of).
    :param false_alarm: binary: cost of a positive decision on a negative row (a warning for a flight on time).
    :param misclassification: multiclass: cost of a row given a class other than its own.
    :param matrix: multiclass: the cost of a row of class ``true`` given class ``predicted``, as
        ``{true: {predicted: cost}}``, where it differs from ``misclassification``; classes as written in the
        labels (``{"fraud": {"legit": 100.0}}``).
    :param under_prediction: regression: cost of one unit of error of a prediction below the label.
    :param over_prediction: regression: cost of one unit of error of a prediction above the label.
    """

    missed_positive: float | None = None
    false_alarm: float | None = None
    misclassification: float | None = None
    matrix: dict[str, dict[str, float]] | None = None
    under_prediction: float | None = None
    over_prediction: float | None = None

    config_name: ClassVar[str] = "business costs"

    def __post_init__(self) -> None:
        given = sorted(item.name for item in fields(self) if getattr(self, item.name) is not None)
        tasks = [
            task for task in COST_FIELDS if set(given) & {*COST_FIELDS[task], *OPTIONAL_FIELDS.get(task, ())}
        ]
        if not tasks:
            raise DataError(f"no cost is set; expected exactly the fields of one task: {_tables()}")
        if len(tasks) > 1:
            raise DataError(
                f"fields {given} mix the cost tables of {' and '.join(tasks)}; expected exactly the fields of one "
                f"task: {_tables()}"
            )
        (task,) = tasks
        if not set(COST_FIELDS[task]) <= set(given):
            raise DataError(f"{task} costs expected exactly {_table(task)}, got {given}")
        for name in given:
            if name != "matrix":
                # A frozen dataclass sets a normalised field this way (a cost read as "5" computes as 5.0).
                object.__setattr__(self, name, _cost(getattr(self, name), f"business cost {name}"))
        if self.matrix is not None:
            object.__setattr__(self, "matrix", _checked_matrix(self.matrix))

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict[str, Any]:
        """The JSON Schema (:mod:`mlops_ops.core.config_schema`) requires the fields of exactly one task, as
        :meth:`__post_init__` does."""
        schema: dict[str, Any] = handler.resolve_ref_schema(handler(core_schema))
        schema["oneOf"] = [{"required": list(required)} for required in COST_FIELDS.values()]
        return schema

    @property
    def task(self) -> TaskType:
        """The task whose cost table this is (the one whose fields are set)."""
        if self.missed_positive is not None:
            return "binary"
        return "multiclass" if self.misclassification is not None else "regression"

    @classmethod
    def from_dict(cls, values: dict[str, Any], origin: str = "business costs") -> BusinessCosts:
        """Build from a mapping (a parsed YAML file), e.g. ``{"missed_positive": ..., "false_alarm": ...}``,
        naming ``origin`` and the field in errors."""
        if not isinstance(values, dict):
            raise DataError(f"{origin}: expected a mapping of costs, got {values!r}"[:200])
        known = {item.name for item in fields(cls)}
        unknown = sorted(str(name) for name in set(values) - known)
        if unknown:
            raise DataError(
                f"{origin}: unknown field(s) {unknown}; expected exactly the fields of one task: {_tables()}"
            )
        try:
            return cls(**values)
        except DataError as err:
            raise DataError(f"{origin}: {err}") from err

    def check_for(
        self, task: Task, origin: str = "business costs", classes: Sequence[Any] | None = None
    ) -> None:
        """Refuse a cost table of another task than ``task``, and a ``matrix`` naming a class the model does not
        know (when ``classes`` are given).

        :raises DataError: naming ``origin``, the fields the task expects and those given.
        """
        if self.task != task.name:
            given = sorted(name for name, _ in self._set_fields())
            raise DataError(
                f"{origin}: a {task.name} model's costs are {_table(task.name)}, got {given} (the costs of a "
                f"{self.task} model)"
            )
        if self.matrix and classes is not None:
            known = {str(value) for value in classes}
            named = {*self.matrix, *(predicted for row in self.matrix.values() for predicted in row)}
            unknown = sorted(named - known)
            if unknown:
                raise DataError(
                    f"{origin}: matrix names class(es) {unknown[:5]} the model does not know "
                    f"(its classes: {sorted(known)[:20]})"
                )

    def misclassification_cost(self, true: Any, predicted: Any) -> float:
        """What a row of class ``true`` given class ``predicted`` costs (0 when they are the same)."""
        if str(true) == str(predicted):
            return 0.0
        default = required(self.misclassification, "the multiclass cost table's misclassification")
        return (self.matrix or {}).get(str(true), {}).get(str(predicted), default)

    def to_dict(self) -> dict[str, Any]:
        """The fields that are set (JSON-safe)."""
        return json_safe_mapping(dict(self._set_fields()))

    def _set_fields(self) -> list[tuple[str, Any]]:
        return [
            (item.name, getattr(self, item.name))
            for item in fields(self)
            if getattr(self, item.name) is not None
        ]


def _checked_matrix(matrix: Any) -> dict[str, dict[str, float]]:
    """``matrix`` with classes as strings and costs as floats; refuses a shape or cost that is wrong."""
    if not isinstance(matrix, Mapping):
        raise DataError(
            f"business cost matrix must map a true class to {{predicted class: cost}}, got {matrix!r}"
        )
    checked: dict[str, dict[str, float]] = {}
    for true, row in matrix.items():
        if not isinstance(row, Mapping):
            raise DataError(f"business cost matrix.{true} must map a predicted class to a cost, got {row!r}")
        checked[str(true)] = {}
        for predicted, value in row.items():
            if str(predicted) == str(true):
                raise DataError(
                    f"business cost matrix.{true}.{predicted} is the cost of a right decision; leave it out"
                )
            checked[str(true)][str(predicted)] = _cost(value, f"business cost matrix.{true}.{predicted}")
    return checked


@dataclass(frozen=True)
class BusinessCost:
    """The cost of an interval's wrong decisions (the counts of the costs' task are set, the others ``None``).

    :param total: binary ``missed_positives * missed_positive + false_alarms * false_alarm``; multiclass the
        cost of each misclassified row; regression ``under_prediction_units * under_prediction +
        over_prediction_units * over_prediction``.
    :param per_row: ``total`` over the labelled rows, comparable between intervals of any size.
    :param missed_positives: binary: positive rows decided negative.
    :param false_alarms: binary: negative rows decided positive.
    :param misclassified: multiclass: rows given another class than their own.
    :param under_prediction_units: regression: the summed error of the predictions below their label.
    :param over_prediction_units: regression: the summed error of the predictions above their label.
    """

    total: float
    per_row: float
    costs: BusinessCosts
    missed_positives: int | None = None
    false_alarms: int | None = None
    misclassified: int | None = None
    under_prediction_units: float | None = None
    over_prediction_units: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """``{"total", "per_row", <the task's counts>, "costs"}`` (JSON-safe)."""
        counts = {
            name: getattr(self, name)
            for name in (
                "missed_positives",
                "false_alarms",
                "misclassified",
                "under_prediction_units",
                "over_prediction_units",
            )
            if getattr(self, name) is not None
        }
        return json_safe_mapping(
            {"total": self.total, "per_row": self.per_row, **counts, "costs": self.costs.to_dict()}
        )
