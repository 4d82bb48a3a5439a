"""Data and prediction drift between a reference window and a current window, decided like Evidently.

The verdicts reproduce Evidently 0.7's ``DataDriftPreset`` defaults column by column (its
``_get_default_stattest``): with at most 1,000 non-null reference values, a numerical column with more than 5
distinct values gets the two-sample Kolmogorov-Smirnov test (drift when p <= 0.05), a column with 3-5 values
(or a categorical one with more than 2) the chi-square test and one with 1-2 values the two-proportion Z-test
(drift when p < 0.05); with more reference values, a numerical column with more than 5 distinct values gets the
Wasserstein distance normed by the reference's standard deviation, anything else the Jensen-Shannon distance
of the value frequencies (drift when the distance >= 0.1). The dataset drifts when the share of drifting columns
reaches ``drift_share``. Same methods, same thresholds, same sizes, so the same verdicts: the tests compare
both on real and synthetic data.

Unlike Evidently, which holds both windows as DataFrames and sorts each numerical column three times, the
engine summarizes a window chunk by chunk into per-column value counts (:class:`WindowSummary`), so a window
can be streamed from Parquet batches and two summaries compared without the rows. Every test above is a
function of the value counts, so this is exact, up to the order of floating-point sums (scores agree with
Evidently's to about 1e-15), with one documented approximation: a numerical column whose window holds more
than ``max_distinct`` distinct values is quantized onto a grid of width ``std / 10**4`` (coarsened until it
fits), which moves every value by at most half a cell. The Wasserstein distance then moves by at most the mean
of the two cell widths, reported per column as ``score_error_bound`` (about 1e-4 of a standard deviation, a
thousandth of the 0.1 threshold); counts, means and standard deviations stay exact. A column is marked
``approximate`` when that happened.

Columns are declared numerical or categorical, never guessed: Evidently would take a 0/1 integer column for a
categorical one. Data that cannot be compared (a column missing from one window, all-null in one, an empty
window, a numerical column holding text) raises :class:`DriftInputError` naming the column: no verdict is
better than a false "no drift".
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mlops_ops.core.errors import DataError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

NUMERICAL = "numerical"
CATEGORICAL = "categorical"

#: Evidently switches from p-value tests to distances above this many non-null reference values.
SMALL_SAMPLE_ROWS = 1000
#: Evidently's default thresholds: p-values for the tests on small samples, distances on large ones.
P_VALUE_THRESHOLD = 0.05
DISTANCE_THRESHOLD = 0.1
#: A numerical window with more distinct values than this is quantized (see the module docstring).
MAX_DISTINCT = 1 << 18
#: The first quantization grid: this fraction of the window's standard deviation.
GRID_FRACTION_OF_STD = 1e-4
#: A categorical column with more distinct values than this is an identifier, not a category.
MAX_CATEGORIES = 100_000
#: Classes whose share of the predictions is reported per interval (the rest summed as ``(other)``).
MAX_CLASS_SHARES = 20

#: method -> (Evidently's display name, kind of score, default threshold)
METHODS: dict[str, tuple[str, str, float]] = {
    "ks": ("K-S p_value", "p_value", P_VALUE_THRESHOLD),
    "chisquare": ("chi-square p_value", "p_value", P_VALUE_THRESHOLD),
    "z": ("Z-test p_value", "p_value", P_VALUE_THRESHOLD),
    "wasserstein": ("Wasserstein distance (normed)", "distance", DISTANCE_THRESHOLD),
    "jensenshannon": ("Jensen-Shannon distance", "distance", DISTANCE_THRESHOLD),
}


class DriftInputError(DataError):
    """The two windows cannot be compared; the message names the column and the window."""


@dataclass
class _NumericalCounts:
    """Value counts of one numerical column in one window, plus exact moments (Chan's parallel update)."""

    values: np.ndarray = field(default_factory=lambda: np.empty(0))
    counts: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    rows: int = 0
    mean: float = 0.0
    m2: float = 0.0
    grid: float | None = None  # the quantization cell width, once quantized
    origin: float = 0.0

    def add(self, chunk: np.ndarray, max_distinct: int) -> None:
        if chunk.size == 0:
            return
        chunk_mean = float(chunk.mean())
        chunk_m2 = float(np.square(chunk - chunk_mean).sum())
        total = self.rows + chunk.size
        delta = chunk_mean - self.mean
        self.m2 += chunk_m2 + delta * delta * self.rows * chunk.size / total
        self.mean += delta * chunk.size / total
        self.rows = total
        if self.grid is not None:
            chunk = self._snap(chunk)
        values, counts = _sorted_counts(np.sort(chunk))
        self.values, self.counts = _merge_counts(self.values, self.counts, values, counts)
        while self.values.size > max_distinct:
            self._coarsen()

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / self.rows) if self.rows else 0.0

    def _snap(self, values: np.ndarray) -> np.ndarray:
        if self.grid is None:
            raise RuntimeError("no quantization grid yet")
        return np.round((values - self.origin) / self.grid) * self.grid + self.origin

    def _coarsen(self) -> None:
        if self.grid is None:
            self.origin = float(self.values[0])
            self.grid = max(self.std * GRID_FRACTION_OF_STD, np.finfo(float).tiny)
        else:
            self.grid *= 2
        snapped, inverse = np.unique(self._snap(self.values), return_inverse=True)
        self.values, self.counts = snapped, np.bincount(inverse, weights=self.counts).astype(np.int64)


def _sorted_counts(ordered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values and their counts of a sorted array (faster than ``np.unique`` on floats)."""
    if ordered.size == 0:
        return ordered, np.empty(0, dtype=np.int64)
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    return ordered[starts], np.diff(np.append(starts, ordered.size))


def _merge_counts(
    values: np.ndarray, counts: np.ndarray, more_values: np.ndarray, more_counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    if values.size == 0:
        return more_values, more_counts
    merged, inverse = np.unique(np.concatenate((values, more_values)), return_inverse=True)
    return merged, np.bincount(inverse, weights=np.concatenate((counts, more_counts))).astype(np.int64)


@dataclass
class _CategoricalCounts:
    """Value counts of one categorical column in one window."""

    counts: dict[Any, int] = field(default_factory=dict)
    rows: int = 0
    kinds: set[str] = field(default_factory=set)

    def add(self, chunk: Any, column: str, window: str) -> None:
        """Count a pandas Series or a pyarrow Array (Arrow's hash counting is several times faster on text)."""
        if hasattr(chunk, "value_counts") and not hasattr(chunk, "to_pylist"):
            pairs = chunk.value_counts(dropna=True, sort=False).items()
        else:
            import pyarrow.compute as pc

            counted = pc.value_counts(chunk.drop_null())
            pairs = zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist(), strict=True)
        added = 0
        for value, count in pairs:
            self.counts[value] = self.counts.get(value, 0) + int(count)
            added += int(count)
            self.kinds.add("number" if isinstance(value, (int, float, np.number)) else "text")
        self.rows += added
        if len(self.counts) > MAX_CATEGORIES:
            raise DriftInputError(
                f"column {column!r} has more than {MAX_CATEGORIES:,} distinct values in the {window} window: "
                "an identifier, not a category; leave it out of the drift check"
            )


class WindowSummary:
    """What the drift tests need from one window, built chunk by chunk in bounded memory.

    :param numerical: names of the numerical columns.
    :param categorical: names of the categorical columns.
    :param name: the window's name in error messages (``"reference"``, ``"current"``).
    :param max_distinct: distinct values kept exactly per numerical column before quantizing.
    """

    def __init__(
        self,
        numerical: Sequence[str],
        categorical: Sequence[str],
        name: str,
        max_distinct: int = MAX_DISTINCT,
    ) -> None:
        overlap = sorted(set(numerical) & set(categorical))
        if overlap:
            raise DriftInputError(f"column(s) {overlap} are declared both numerical and categorical")
        if not numerical and not categorical:
            raise DriftInputError(
                "no columns to check for drift: declare numerical and/or categorical columns"
            )
        self.name = name
        self.max_distinct = max_distinct
        self.numerical = {column: _NumericalCounts() for column in numerical}
        self.categorical = {column: _CategoricalCounts() for column in categorical}
        self.rows = 0

    @property
    def columns(self) -> list[str]:
        return [*self.numerical, *self.categorical]

    def add(self, frame: pd.DataFrame | pa.RecordBatch | pa.Table) -> None:
        """Count one chunk of rows: a DataFrame, or a pyarrow RecordBatch or Table, with the declared columns."""
        arrow = not hasattr(frame, "columns") or not hasattr(frame, "iloc")
        names = frame.schema.names if arrow else frame.columns
        missing = [column for column in self.columns if column not in names]
        if missing:
            raise DriftInputError(f"the {self.name} window lacks column(s) {missing}")
        for column, summary in self.numerical.items():
            values = _arrow_floats(frame.column(column)) if arrow else _pandas_floats(frame[column])
            if values is None:
                kind = frame.schema.field(column).type if arrow else frame[column].dtype
                raise DriftInputError(
                    f"column {column!r} is declared numerical but holds {kind} values in the {self.name} window"
                )
            summary.add(values[np.isfinite(values)], self.max_distinct)
        for column, counts in self.categorical.items():
            values = frame.column(column) if arrow else frame[column]
            if arrow and hasattr(values, "combine_chunks"):
                values = values.combine_chunks()
            counts.add(values, column, self.name)
        self.rows += frame.num_rows if arrow else len(frame)

    def distribution(self, column: str, max_classes: int = MAX_CLASS_SHARES) -> dict[str, Any]:
        """How one column's values are spread in this window, from the counts already kept (nothing re-read).

        A numerical column: ``{"kind": "numerical", "rows", "mean", "p10", "p50", "p90"}``; the mean is exact, the
        quantiles are exact until the column had more than ``max_distinct`` distinct values, then within one
        quantization cell. A categorical column: ``{"kind": "categorical", "rows", "shares": {value: share}}``
        for the ``max_classes`` most frequent values (the rest summed as ``"(other)"``). Missing values are not
        counted.

        :raises KeyError: ``column`` is not one of the window's columns.
        """
        if column in self.numerical:
            counts = self.numerical[column]
            found: dict[str, Any] = {"kind": NUMERICAL, "rows": counts.rows}
            if counts.rows:
                cumulative = np.cumsum(counts.counts)
                found["mean"] = counts.mean
                for name, quantile in (("p10", 0.1), ("p50", 0.5), ("p90", 0.9)):
                    # The smallest value with at least q of the rows at or below it (the lower quantile).
                    position = int(np.searchsorted(cumulative, quantile * counts.rows, side="left"))
                    found[name] = float(counts.values[min(position, counts.values.size - 1)])
            return found
        tally = self.categorical[column].counts
        total = sum(tally.values())
        ranked = sorted(tally.items(), key=lambda item: (-item[1], str(item[0])))
        shares = {str(value): count / total for value, count in ranked[:max_classes]} if total else {}
        rest = sum(count for _, count in ranked[max_classes:])
        if rest:
            shares["(other)"] = rest / total
        return {"kind": CATEGORICAL, "rows": total, "shares": shares}


def _pandas_floats(series: pd.Series) -> np.ndarray | None:
    import pandas as pd

    if not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)):
        return None
    floats: np.ndarray = series.to_numpy(dtype="float64", na_value=np.nan)
    return floats


def _arrow_floats(array: Any) -> np.ndarray | None:
    import pyarrow as pa

    kind = array.type
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
        return None
    floats: np.ndarray = array.cast(pa.float64()).to_numpy(zero_copy_only=False)
    return floats


@dataclass(frozen=True)
class ColumnDrift:
    """One column's drift test: method, score, threshold and verdict, as Evidently reports them."""

    column: str
    column_type: str
    method: str
    score: float
    threshold: float
    drifted: bool
    reference_rows: int
    current_rows: int
    new_categories: tuple[str, ...] = ()
    approximate: bool = False
    score_error_bound: float = 0.0

    @property
    def method_name(self) -> str:
        """Evidently's display name of the method (as in ``ValueDrift(column=..., method=...)``)."""
        return METHODS[self.method][0]

    def describe(self) -> str:
        """One line: column, method, score against threshold, verdict."""
        kind = METHODS[self.method][1]
        relation = ("<=" if self.method == "ks" else "<") if kind == "p_value" else ">="
        if not self.drifted:
            relation = {"<=": ">", "<": ">=", ">=": "<"}[relation]
        text = (
            f"{self.column} ({self.column_type}): {self.method_name} {self.score:.4g} {relation} "
            f"{self.threshold:g} -> {'drift' if self.drifted else 'no drift'}"
        )
        if self.new_categories:
            text += f"; new categories {list(self.new_categories)}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "column_type": self.column_type,
            "method": self.method,
            "method_name": self.method_name,
            "score": _finite(self.score),
            "threshold": self.threshold,
            "drifted": self.drifted,
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "new_categories": list(self.new_categories),
            "approximate": self.approximate,
            "score_error_bound": self.score_error_bound,
        }


@dataclass(frozen=True)
class DriftResult:
    """The verdict over all columns, and separately the prediction's drift (not counted in the share)."""

    columns: tuple[ColumnDrift, ...]
    drift_share: float
    reference_rows: int
    current_rows: int
    prediction: ColumnDrift | None = None

    @property
    def drifted_columns(self) -> tuple[ColumnDrift, ...]:
        return tuple(column for column in self.columns if column.drifted)

    @property
    def share(self) -> float:
        """The share of drifting columns (Evidently's ``DriftedColumnsCount.share``)."""
        return len(self.drifted_columns) / len(self.columns)

    @property
    def dataset_drift(self) -> bool:
        """Whether the share of drifting columns reaches ``drift_share``."""
        return self.share >= self.drift_share

    @property
    def new_categories(self) -> dict[str, list[str]]:
        return {
            column.column: list(column.new_categories) for column in self.columns if column.new_categories
        }

    def summary(self) -> str:
        """One line for logs and alerts."""
        verdict = "DRIFT" if self.dataset_drift else "no dataset drift"
        text = (
            f"{verdict}: {len(self.drifted_columns)} of {len(self.columns)} columns drifted "
            f"(share {self.share:.2f}, threshold {self.drift_share:g})"
        )
        if self.drifted_columns:
            text += ": " + ", ".join(column.column for column in self.drifted_columns)
        if self.prediction is not None:
            text += f"; prediction {'drifted' if self.prediction.drifted else 'stable'}"
        return text

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (the XCom the drift operator pushes)."""
        return {
            "dataset_drift": self.dataset_drift,
            "share": self.share,
            "drift_share": self.drift_share,
            "drifted_columns": [column.column for column in self.drifted_columns],
            "number_of_columns": len(self.columns),
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "columns": [column.to_dict() for column in self.columns],
            "prediction": self.prediction.to_dict() if self.prediction else None,
            "new_categories": self.new_categories,
            "summary": self.summary(),
        }


def summarize(
    chunks: Iterable[pd.DataFrame],
    numerical: Sequence[str],
    categorical: Sequence[str],
    name: str,
    max_distinct: int = MAX_DISTINCT,
) -> WindowSummary:
    """A :class:`WindowSummary` of ``chunks`` (a DataFrame, or any iterable of DataFrames)."""
    import pandas as pd

    summary = WindowSummary(numerical, categorical, name, max_distinct)
    for chunk in [chunks] if isinstance(chunks, pd.DataFrame) else chunks:
        summary.add(chunk)
    return summary


def compare(
    reference: WindowSummary,
    current: WindowSummary,
    *,
    drift_share: float = 0.5,
    thresholds: Mapping[str, float] | None = None,
    prediction_column: str | None = None,
) -> DriftResult:
    """Test every declared column of ``current`` against ``reference``.

    :param reference: the summary of the reference window (e.g. the champion's training data).
    :param current: the summary of the current window, with the same declared columns.
    :param drift_share: the dataset drifts when at least this share of the columns drifts (Evidently's default 0.5).
    :param thresholds: per-column thresholds replacing the method's default (a p-value or a distance).
    :param prediction_column: a declared column holding the model's output: tested the same way but reported as
        ``prediction`` and left out of the share.
    :raises DriftInputError: naming the column when the windows cannot be compared.
    """
    if not 0 < drift_share <= 1:
        raise DriftInputError(f"drift_share must be in (0, 1], got {drift_share}")
    for kind, ours, theirs in (
        (NUMERICAL, reference.numerical, current.numerical),
        (CATEGORICAL, reference.categorical, current.categorical),
    ):
        if list(ours) != list(theirs):
            raise DriftInputError(
                f"the windows declare different {kind} columns: reference {list(ours)}, current {list(theirs)}"
            )
    for window in (reference, current):
        if window.rows == 0:
            raise DriftInputError(f"the {window.name} window is empty: no rows to compare")
    thresholds = dict(thresholds or {})
    unknown = sorted(set(thresholds) - set(reference.columns))
    if unknown:
        raise DriftInputError(f"thresholds given for undeclared column(s) {unknown}")
    if prediction_column is not None and prediction_column not in reference.columns:
        raise DriftInputError(f"prediction column {prediction_column!r} is not a declared column")

    results = []
    for column in reference.columns:
        numerical = column in reference.numerical
        pair: tuple[_NumericalCounts | _CategoricalCounts, _NumericalCounts | _CategoricalCounts] = (
            (reference.numerical[column], current.numerical[column])
            if numerical
            else (reference.categorical[column], current.categorical[column])
        )
        for window, summary in zip((reference, current), pair, strict=True):
            if summary.rows == 0:
                raise DriftInputError(
                    f"column {column!r} has no non-null values in the {window.name} window "
                    f"({window.rows} rows): it cannot be compared"
                )
        if numerical:
            ref, cur = reference.numerical[column], current.numerical[column]
            result = _numerical_drift(column, ref, cur, thresholds.get(column))
        else:
            ref_counts, cur_counts = reference.categorical[column], current.categorical[column]
            if ref_counts.kinds and cur_counts.kinds and ref_counts.kinds != cur_counts.kinds:
                raise DriftInputError(
                    f"column {column!r} holds {'/'.join(sorted(ref_counts.kinds))} values in the reference "
                    f"window but {'/'.join(sorted(cur_counts.kinds))} values in the current window"
                )
            result = _categorical_drift(column, ref_counts, cur_counts, thresholds.get(column))
        results.append(result)
    prediction = next((r for r in results if r.column == prediction_column), None)
    features = tuple(r for r in results if r.column != prediction_column)
    if not features:
        raise DriftInputError("no feature columns to check besides the prediction")
    return DriftResult(
        columns=features,
        drift_share=drift_share,
        reference_rows=reference.rows,
        current_rows=current.rows,
        prediction=prediction,
    )


def detect_drift(
    reference: pd.DataFrame | Iterable[pd.DataFrame],
    current: pd.DataFrame | Iterable[pd.DataFrame],
    numerical: Sequence[str],
    categorical: Sequence[str],
    *,
    drift_share: float = 0.5,
    thresholds: Mapping[str, float] | None = None,
    prediction_column: str | None = None,
    max_distinct: int = MAX_DISTINCT,
) -> DriftResult:
    """Summarize both windows (DataFrames or iterables of chunks) and :func:`compare` them."""
    return compare(
        summarize(reference, numerical, categorical, "reference", max_distinct),
        summarize(current, numerical, categorical, "current", max_distinct),
        drift_share=drift_share,
        thresholds=thresholds,
        prediction_column=prediction_column,
    )


def _numerical_drift(
    column: str, ref: _NumericalCounts, cur: _NumericalCounts, threshold: float | None
) -> ColumnDrift:
    distinct = np.union1d(ref.values, cur.values).size
    if ref.rows <= SMALL_SAMPLE_ROWS:
        if distinct > 5:
            method = "ks"
            score = _ks_p_value(ref, cur)
        else:
            method = "chisquare" if distinct > 2 else "z"
            score = _categorical_p_value(
                method, dict(zip(ref.values.tolist(), ref.counts.tolist(), strict=True)),
                dict(zip(cur.values.tolist(), cur.counts.tolist(), strict=True)),
            )  # fmt: skip
    elif distinct <= 5:
        method = "jensenshannon"
        score = _jensen_shannon(
            dict(zip(ref.values.tolist(), ref.counts.tolist(), strict=True)),
            dict(zip(cur.values.tolist(), cur.counts.tolist(), strict=True)),
        )
    else:
        method = "wasserstein"
        norm = max(ref.std, 0.001)
        score = _wasserstein(ref.values, ref.counts, cur.values, cur.counts) / norm
    approximate = ref.grid is not None or cur.grid is not None
    bound = (
        ((ref.grid or 0.0) + (cur.grid or 0.0)) / 2 / max(ref.std, 0.001) if method == "wasserstein" else 0.0
    )
    return _verdict(column, NUMERICAL, method, score, threshold, ref.rows, cur.rows, (), approximate, bound)


def _categorical_drift(
    column: str, ref: _CategoricalCounts, cur: _CategoricalCounts, threshold: float | None
) -> ColumnDrift:
    distinct = len(ref.counts.keys() | cur.counts.keys())
    if ref.rows <= SMALL_SAMPLE_ROWS:
        method = "chisquare" if distinct > 2 else "z"
        score = _categorical_p_value(method, ref.counts, cur.counts)
    else:
        method = "jensenshannon"
        score = _jensen_shannon(ref.counts, cur.counts)
    new = tuple(sorted(str(value) for value in cur.counts.keys() - ref.counts.keys()))
    return _verdict(column, CATEGORICAL, method, score, threshold, ref.rows, cur.rows, new, False, 0.0)


def _verdict(
    column: str,
    column_type: str,
    method: str,
    score: float,
    threshold: float | None,
    reference_rows: int,
    current_rows: int,
    new_categories: tuple[str, ...],
    approximate: bool,
    score_error_bound: float,
) -> ColumnDrift:
    threshold = METHODS[method][2] if threshold is None else float(threshold)
    if method == "ks":
        drifted = score <= threshold
    elif METHODS[method][1] == "p_value":
        drifted = score < threshold
    else:
        drifted = score >= threshold
    return ColumnDrift(
        column=column,
        column_type=column_type,
        method=method,
        score=float(score),
        threshold=threshold,
        drifted=bool(drifted),
        reference_rows=reference_rows,
        current_rows=current_rows,
        new_categories=new_categories,
        approximate=approximate,
        score_error_bound=score_error_bound,
    )


def _wasserstein(
    u_values: np.ndarray, u_counts: np.ndarray, v_values: np.ndarray, v_counts: np.ndarray
) -> float:
    """SciPy's ``wasserstein_distance`` of the two samples, from their value counts: the integral of
    ``|U - V|`` between consecutive distinct values of both."""
    all_values = np.union1d(u_values, v_values)
    deltas = np.diff(all_values)
    u_cumulative = np.concatenate(([0], np.cumsum(u_counts)))
    v_cumulative = np.concatenate(([0], np.cumsum(v_counts)))
    u_cdf = u_cumulative[np.searchsorted(u_values, all_values[:-1], "right")] / u_cumulative[-1]
    v_cdf = v_cumulative[np.searchsorted(v_values, all_values[:-1], "right")] / v_cumulative[-1]
    return float(np.dot(np.abs(u_cdf - v_cdf), deltas))


def _ks_p_value(ref: _NumericalCounts, cur: _NumericalCounts) -> float:
    """SciPy's two-sided ``ks_2samp`` p-value (method ``auto``), from the value counts."""
    from scipy import stats

    n1, n2 = int(ref.counts.sum()), int(cur.counts.sum())
    if max(n1, n2) <= 10_000:  # SciPy's exact method: rebuild the (small) samples and let it compute
        return float(
            stats.ks_2samp(np.repeat(ref.values, ref.counts), np.repeat(cur.values, cur.counts)).pvalue
        )
    # SciPy's asymptotic branch: the statistic from both empirical CDFs, Smirnov's distribution.
    all_values = np.union1d(ref.values, cur.values)
    cdf1 = np.concatenate(([0], np.cumsum(ref.counts)))[np.searchsorted(ref.values, all_values, "right")] / n1
    cdf2 = np.concatenate(([0], np.cumsum(cur.counts)))[np.searchsorted(cur.values, all_values, "right")] / n2
    differences = cdf1 - cdf2
    statistic = max(float(np.clip(-differences.min(), 0, 1)), float(differences.max()))
    m, n = sorted([float(n1), float(n2)], reverse=True)
    return float(np.clip(stats.kstwo.sf(statistic, np.round(m * n / (m + n))), 0, 1))


def _categorical_p_value(method: str, ref: Mapping[Any, int], cur: Mapping[Any, int]) -> float:
    """Evidently's chi-square (current counts vs reference frequencies) or two-proportion Z-test p-value."""
    from scipy import stats

    n1, n2 = sum(ref.values()), sum(cur.values())
    keys = list(ref.keys() | cur.keys())
    if method == "chisquare":
        scale = n2 / n1
        expected = [ref.get(key, 0) * scale for key in keys]
        observed = [cur.get(key, 0) for key in keys]
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(stats.chisquare(observed, expected)[1])
    if len(ref) == 1 and len(cur) == 1 and next(iter(ref)) == next(iter(cur)):
        return 1.0
    first = sorted(keys)[0]
    p1 = float(n1 - ref.get(first, 0)) / n1
    p2 = float(n2 - cur.get(first, 0)) / n2
    pooled = float(p1 * n1 + p2 * n2) / (n1 + n2)
    z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    return float(2 * (1 - stats.norm.cdf(np.abs(z))))


def _jensen_shannon(ref: Mapping[Any, int], cur: Mapping[Any, int]) -> float:
    from scipy.spatial import distance

    n1, n2 = sum(ref.values()), sum(cur.values())
    keys = list(ref.keys() | cur.keys())
    return float(
        distance.jensenshannon(
            np.array([ref.get(key, 0) / n1 for key in keys]), np.array([cur.get(key, 0) / n2 for key in keys])
        )
    )


def _finite(value: float) -> float | None:
    """JSON has no NaN or infinity: such scores are pushed as null."""
    return value if math.isfinite(value) else None
