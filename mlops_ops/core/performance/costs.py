"""The business cost of a scored interval: missed positives against false alarms, with configured costs."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from mlops_ops.core.config_files import LoadableConfig
from mlops_ops.core.errors import DataError

if TYPE_CHECKING:
    pass


def _finite_number(value: Any, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError) as err:
        raise DataError(f"{what} must be a number, got {value!r}") from err
    if not math.isfinite(number):
        raise DataError(f"{what} must be a finite number, got {value!r}")
    return number


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
