"""What a validation found: one outcome per expectation, one report per file, and their text."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops_ops.core.json_values import to_json_safe
from mlops_ops.core.printable import printable
from mlops_ops.core.validation.expectations import (
    _COLUMN_EXISTS,
    _COLUMN_TYPE,
    _ROW_COUNT,
    _VALUE_LENGTHS,
    _arrow_family,
)

if TYPE_CHECKING:
    pass


#: How many unexpected values (with their row numbers) a failed outcome keeps.
MAX_EXAMPLES = 5


#: Characters of an example value kept in a report (values can be megabytes long).
MAX_EXAMPLE_CHARS = 64


#: Characters of an over-long value shown in a report, escaped.
LONG_VALUE_PREFIX_CHARS = 16


@dataclass(frozen=True)
class ExpectationOutcome:
    """The result of one expectation on one file.

    :param expectation: the expectation type, e.g. ``expect_column_values_to_be_in_set``.
    :param column: the column it is about, ``None`` for table-level expectations (compound ones name their
        columns joined by ``,``).
    :param success: whether the expectation held.
    :param observed: what was observed, JSON-safe: a dtype, a row count, ``{"unexpected_count": ...,
        "unexpected_percent": ...}``, GX's ``observed_value`` or ``{"exception": message}``.
    :param unexpected_examples: up to :data:`MAX_EXAMPLES` offending values as ``{"row": n, "value": v}``.
    :param kwargs: the expectation's kwargs as written in the suite.
    """

    expectation: str
    column: str | None
    success: bool
    observed: Any = None
    unexpected_examples: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of this outcome."""
        return {
            "expectation": self.expectation,
            "column": self.column,
            "success": self.success,
            "observed": to_json_safe(self.observed),
            "unexpected_examples": to_json_safe(self.unexpected_examples),
            "kwargs": to_json_safe(self.kwargs),
        }

    def describe(self) -> str:
        """One line saying what failed (or held): expectation, column, observation and examples."""
        where = f" on {printable(self.column)}" if self.column else ""
        text = f"{self.expectation}{where}: {_describe_observed(self)}"
        if self.unexpected_examples:
            text += f"; examples: {_describe_examples(self.unexpected_examples)}"
        return text


@dataclass(frozen=True)
class ValidationReport:
    """The outcomes of a suite on one file.

    :param suite: the suite name.
    :param file: the file (path or URI) that was validated, as given (:meth:`summary` escapes it).
    :param rows: its row count.
    :param success: whether every expectation held.
    :param outcomes: one outcome per evaluated expectation, structural checks first.
    """

    suite: str
    file: str
    rows: int
    success: bool
    outcomes: tuple[ExpectationOutcome, ...]

    @property
    def failures(self) -> tuple[ExpectationOutcome, ...]:
        """The outcomes that did not hold."""
        return tuple(outcome for outcome in self.outcomes if not outcome.success)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of the report."""
        return {
            "suite": self.suite,
            "file": self.file,
            "rows": int(self.rows),
            "success": bool(self.success),
            "outcomes": [outcome.to_dict() for outcome in self.outcomes],
        }

    def summary(self) -> str:
        """Human summary naming the file and listing each failed expectation with its examples."""
        file = printable(self.file)
        if self.success:
            checked = f"{len(self.outcomes)} expectations, {self.rows} rows"
            return f"{file}: suite {self.suite!r} passed ({checked})"
        lines = [
            f"{file}: suite {self.suite!r} failed {len(self.failures)} of {len(self.outcomes)} "
            f"expectations ({self.rows} rows)"
        ]
        lines += [f"  - {outcome.describe()}" for outcome in self.failures]
        return "\n".join(lines)


def failure_message(reports: Iterable[ValidationReport]) -> str:
    """The summaries of the failed reports, one block per file; empty when all passed."""
    return "\n".join(report.summary() for report in reports if not report.success)


def _describe_observed(outcome: ExpectationOutcome) -> str:
    observed = outcome.observed
    if outcome.expectation == _COLUMN_EXISTS:
        return "column is missing" if not outcome.success else "column exists"
    if outcome.expectation == _COLUMN_TYPE:
        expected = str(outcome.kwargs.get("type_"))
        if not isinstance(observed, Mapping):
            return f"expected dtype {expected}, actual dtype {observed}"
        dtype, arrow_type = observed.get("dtype"), observed.get("arrow_type")
        entries = [entry.strip() for entry in expected.split("|")]
        if dtype in entries:  # the dtype was right, what it holds was not
            family = _arrow_family(str(dtype))
            return f"expected dtype {expected} (Arrow {family}), actual Arrow type {arrow_type}"
        return f"expected dtype {expected}, actual dtype {dtype} (Arrow type {arrow_type})"
    if outcome.expectation == _VALUE_LENGTHS and isinstance(observed, Mapping) and "longest" in observed:
        return (
            f"{observed.get('values_too_long')} value(s) longer than {outcome.kwargs.get('max_value')} "
            f"characters (longest {observed.get('longest')})"
        )
    if outcome.expectation == _ROW_COUNT:
        bounds = f"[{outcome.kwargs.get('min_value')}, {outcome.kwargs.get('max_value')}]"
        return f"{observed} rows, expected between {bounds}"
    if isinstance(observed, Mapping) and "exception" in observed:
        return f"could not be evaluated: {observed['exception']}"
    if isinstance(observed, Mapping) and "unexpected_count" in observed:
        mostly = outcome.kwargs.get("mostly")
        percent = observed.get("unexpected_percent")
        share = f" ({percent:.3g}%)" if isinstance(percent, int | float) else ""
        text = f"{observed['unexpected_count']} of {observed.get('element_count')} values unexpected{share}"
        return text + (f", mostly={mostly}" if mostly is not None else "")
    return f"observed {observed!r}"


def _describe_examples(examples: list[Any]) -> str:
    parts = []
    for example in examples[:MAX_EXAMPLES]:
        if isinstance(example, Mapping) and "length" in example:
            parts.append(
                f"row {example.get('row')}: {example['length']} characters, "
                f"starting '{printable(example.get('starts_with'))}'"
            )
        elif isinstance(example, Mapping) and "row" in example:
            parts.append(f"row {example['row']}: {example.get('value')!r}")
        elif isinstance(example, Mapping):
            parts.append(repr(example.get("value")))
        else:
            parts.append(repr(example))
    return ", ".join(parts)
