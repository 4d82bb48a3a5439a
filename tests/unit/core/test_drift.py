"""The drift engine against Evidently 0.7's DataDriftPreset: same methods, scores and verdicts per column, on
synthetic frames (the same comparison on the real flights is in tests/reference/test_drift_flights.py)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from mlops_ops.core import drift
from mlops_ops.core.drift import DriftInputError, detect_drift

NUMERICAL = ["amount", "level", "count"]
CATEGORICAL = ["flag", "colour", "side"]


def evidently_verdicts(reference, current, numerical, categorical, drift_share=0.5):
    """Evidently's per-column (method, threshold, score) and its drifted share."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    # Evidently would also test undeclared text columns it finds in the frame.
    reference, current = reference[numerical + categorical], current[numerical + categorical]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = (
            Report([DataDriftPreset(drift_share=drift_share)])
            .run(
                current_data=Dataset.from_pandas(current, data_definition=definition),
                reference_data=Dataset.from_pandas(reference, data_definition=definition),
            )
            .dict()
        )
    columns = {}
    for metric in report["metrics"][1:]:
        config = metric["config"]
        columns[config["column"]] = (config["method"], config["threshold"], metric["value"])
    return columns, report["metrics"][0]["value"]["share"]


def assert_same_as_evidently(reference, current, numerical, categorical, drift_share=0.5):
    ours = detect_drift(reference, current, numerical, categorical, drift_share=drift_share)
    theirs, share = evidently_verdicts(reference, current, numerical, categorical, drift_share)
    assert sorted(theirs) == sorted(column.column for column in ours.columns)
    for column in ours.columns:
        method, threshold, score = theirs[column.column]
        assert column.method_name == method, column.column
        assert column.threshold == threshold, column.column
        assert column.score == pytest.approx(score, rel=1e-9, abs=1e-12), column.column
        p_value = "p_value" in method
        assert column.drifted == ((score <= threshold if "K-S" in method else score < threshold) if p_value
                                  else score >= threshold), column.column  # fmt: skip
    assert ours.share == pytest.approx(share)
    assert ours.dataset_drift == (share >= drift_share)
    return ours


def synthetic(rows: int, seed: int, shift: float = 0.0, new_colour: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    colours = ["red", "green", "blue", "teal"] if new_colour else ["red", "green", "blue"]
    frame = pd.DataFrame(
        {
            "amount": rng.normal(shift, 1.0, rows),
            "level": rng.integers(0, 4 + (shift > 0), rows),  # <= 5 distinct values
            "count": rng.poisson(20 + 10 * shift, rows).astype("int64"),
            "flag": rng.integers(0, 2, rows),  # a 0/1 int, declared categorical
            "colour": rng.choice(colours, rows, p=None if not new_colour else [0.3, 0.3, 0.2, 0.2]),
            "side": rng.choice(
                ["left", "right"], rows, p=[0.5 + 0.3 * min(shift, 1), 0.5 - 0.3 * min(shift, 1)]
            ),
        }
    )
    frame.loc[::11, "amount"] = np.nan
    frame.loc[::13, "colour"] = None
    return frame


@pytest.mark.parametrize(
    ("reference_rows", "current_rows"),
    [(600, 500), (900, 20_000), (5_000, 3_000), (40_000, 10_000)],
    ids=["small-tests", "small-reference-large-current", "distances", "large"],
)
@pytest.mark.parametrize("shift", [0.0, 0.4], ids=["no-drift", "shift"])
def test_synthetic_verdicts_equal_evidently(reference_rows, current_rows, shift):
    result = assert_same_as_evidently(
        synthetic(reference_rows, 1), synthetic(current_rows, 2, shift), NUMERICAL, CATEGORICAL
    )
    if shift:
        assert result.dataset_drift
        assert "amount" in {column.column for column in result.drifted_columns}
    elif current_rows <= 2 * reference_rows:
        # A p-value test may flag one column by chance (5% each), never the dataset. (With a current window 20x
        # the reference, chi-square takes the reference's sampling noise for drift: Evidently does too.)
        assert not result.dataset_drift and len(result.drifted_columns) <= 1


def test_new_category_is_named_and_matches_evidently():
    result = assert_same_as_evidently(
        synthetic(5_000, 1), synthetic(5_000, 2, new_colour=True), NUMERICAL, CATEGORICAL
    )
    colour = next(column for column in result.columns if column.column == "colour")
    assert colour.new_categories == ("teal",)
    assert colour.drifted
    assert result.new_categories == {"colour": ["teal"]}
    assert "new categories ['teal']" in colour.describe()


def test_a_binary_int_declared_numerical_is_tested_as_numerical():
    reference, current = synthetic(600, 1), synthetic(500, 2)
    result = assert_same_as_evidently(reference, current, ["flag", "amount"], ["colour"])
    assert next(column for column in result.columns if column.column == "flag").column_type == "numerical"


def test_chunks_give_the_verdicts_of_one_frame():
    reference, current = synthetic(30_000, 1), synthetic(20_000, 2, 0.4)
    whole = detect_drift(reference, current, NUMERICAL, CATEGORICAL)
    chunked = detect_drift(
        (reference.iloc[start : start + 7_000] for start in range(0, len(reference), 7_000)),
        (current.iloc[start : start + 3_000] for start in range(0, len(current), 3_000)),
        NUMERICAL,
        CATEGORICAL,
    )
    for one, other in zip(whole.columns, chunked.columns, strict=True):
        assert (one.column, one.method, one.drifted) == (other.column, other.method, other.drifted)
        assert other.score == pytest.approx(one.score, rel=1e-9, abs=1e-12)
        assert not other.approximate


def test_quantized_windows_stay_within_the_reported_bound():
    rng = np.random.default_rng(5)
    reference = pd.DataFrame({"x": rng.lognormal(0, 1, 50_000), "c": "a"})
    current = pd.DataFrame({"x": rng.lognormal(0.05, 1, 50_000), "c": "a"})
    exact = detect_drift(reference, current, ["x"], ["c"]).columns[0]
    bounded = detect_drift(
        (reference.iloc[i : i + 5_000] for i in range(0, 50_000, 5_000)),
        (current.iloc[i : i + 5_000] for i in range(0, 50_000, 5_000)),
        ["x"],
        ["c"],
        max_distinct=2_000,
    ).columns[0]
    assert bounded.approximate and not exact.approximate
    assert 0 < bounded.score_error_bound < 0.01
    assert abs(bounded.score - exact.score) <= bounded.score_error_bound
    assert bounded.reference_rows == exact.reference_rows == 50_000


def test_the_prediction_is_reported_apart_from_the_share():
    reference, current = synthetic(5_000, 1), synthetic(5_000, 2, 0.4)
    result = detect_drift(reference, current, NUMERICAL, CATEGORICAL, prediction_column="amount")
    assert (
        result.prediction is not None and result.prediction.column == "amount" and result.prediction.drifted
    )
    assert "amount" not in [column.column for column in result.columns]
    payload = result.to_dict()
    assert payload["prediction"]["column"] == "amount"
    assert payload["number_of_columns"] == len(NUMERICAL) + len(CATEGORICAL) - 1


def test_per_column_threshold_replaces_the_default():
    reference, current = synthetic(5_000, 1), synthetic(5_000, 2, 0.4)
    default = detect_drift(reference, current, ["amount"], ["side"])
    lenient = detect_drift(reference, current, ["amount"], ["side"], thresholds={"amount": 10.0})
    assert default.columns[0].drifted and not lenient.columns[0].drifted
    assert lenient.columns[0].threshold == 10.0


# --------------------------------------------------------------------------------------------- bad input


def test_columns_missing_from_a_window_are_named():
    reference, current = synthetic(2_000, 1), synthetic(2_000, 2).drop(columns=["colour"])
    with pytest.raises(DriftInputError, match=r"current window lacks column\(s\) \['colour'\]"):
        detect_drift(reference, current, NUMERICAL, CATEGORICAL)


def test_an_all_null_column_is_not_called_stable():
    reference, current = synthetic(2_000, 1), synthetic(2_000, 2)
    current["amount"] = np.nan
    with pytest.raises(
        DriftInputError, match=r"column 'amount' has no non-null values in the current window"
    ):
        detect_drift(reference, current, NUMERICAL, CATEGORICAL)


def test_an_empty_window_is_refused():
    reference = synthetic(2_000, 1)
    with pytest.raises(DriftInputError, match="current window is empty"):
        detect_drift(reference, reference.iloc[:0], NUMERICAL, CATEGORICAL)


def test_text_in_a_numerical_column_is_named():
    reference, current = synthetic(2_000, 1), synthetic(2_000, 2)
    current["count"] = current["count"].astype(str)
    with pytest.raises(
        DriftInputError, match=r"column 'count' is declared numerical but holds object values"
    ):
        detect_drift(reference, current, NUMERICAL, CATEGORICAL)


def test_categories_of_different_types_are_named():
    reference, current = synthetic(2_000, 1), synthetic(2_000, 2)
    current["flag"] = current["flag"].map({0: "no", 1: "yes"})
    with pytest.raises(DriftInputError, match=r"column 'flag' holds number values .* but text values"):
        detect_drift(reference, current, NUMERICAL, CATEGORICAL)


def test_declarations_are_checked():
    frame = synthetic(100, 1)
    with pytest.raises(DriftInputError, match=r"declared both numerical and categorical"):
        detect_drift(frame, frame, ["flag"], ["flag"])
    with pytest.raises(DriftInputError, match="no columns to check"):
        detect_drift(frame, frame, [], [])
    with pytest.raises(DriftInputError, match=r"undeclared column\(s\) \['nope'\]"):
        detect_drift(frame, frame, ["amount"], [], thresholds={"nope": 0.2})
    with pytest.raises(DriftInputError, match="drift_share"):
        detect_drift(frame, frame, ["amount"], [], drift_share=0)


def test_an_identifier_is_not_a_category():
    frame = pd.DataFrame({"id": [f"row-{i}" for i in range(drift.MAX_CATEGORIES + 1)]})
    with pytest.raises(DriftInputError, match="identifier, not a category"):
        detect_drift(frame, frame, [], ["id"])


def test_results_are_json_safe():
    import json

    reference, current = synthetic(600, 1), synthetic(500, 2, 5.0)
    payload = detect_drift(reference, current, NUMERICAL, CATEGORICAL).to_dict()
    json.dumps(payload, allow_nan=False)
    assert payload["summary"].startswith("DRIFT")


def test_arrow_batches_count_like_dataframes():
    import pyarrow as pa

    reference, current = synthetic(5_000, 1), synthetic(4_000, 2, 0.4)
    from_pandas = detect_drift(reference, current, NUMERICAL, CATEGORICAL)
    from_arrow = detect_drift(
        pa.Table.from_pandas(reference).to_batches(max_chunksize=1_500),
        pa.Table.from_pandas(current).to_batches(max_chunksize=1_500),
        NUMERICAL,
        CATEGORICAL,
    )
    for ours, theirs in zip(from_arrow.columns, from_pandas.columns, strict=True):
        assert (ours.column, ours.method, ours.drifted, ours.new_categories, ours.current_rows) == (
            theirs.column, theirs.method, theirs.drifted, theirs.new_categories, theirs.current_rows
        )  # fmt: skip
        assert ours.score == pytest.approx(theirs.score, rel=1e-12)
    text = pa.Table.from_pandas(current.assign(count=current["count"].astype(str)))
    with pytest.raises(
        DriftInputError, match=r"column 'count' is declared numerical but holds string values"
    ):
        detect_drift(reference, text.to_batches(), NUMERICAL, CATEGORICAL)
