"""Data validation core: real Great Expectations on the synthetic shop visits and their suite
(tests/unit/synthetic.py).

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
from tests.unit import synthetic

PROJECT_ROOT = Path(__file__).resolve().parents[3]
KEY = list(synthetic.KEY)


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> dict:
    """The visits' suite as ``load_suite`` reads it from its file."""
    path = tmp_path_factory.mktemp("suite") / "visits_raw.json"
    path.write_text(json.dumps(synthetic.suite()))
    return load_suite(path)


@pytest.fixture(scope="module")
def all_visits() -> pd.DataFrame:
    """5,000 synthetic raw visits (January 2024, one every 5 minutes), visit_time a UTC timestamp as landed."""
    return synthetic.visits(5000, seed=11)


@pytest.fixture
def visits(all_visits: pd.DataFrame) -> pd.DataFrame:
    """3,000 visits spread over the range, index from 0."""
    return all_visits.iloc[:: len(all_visits) // 3000][:3000].reset_index(drop=True)


def _failed(report: ValidationReport, expectation: str, column: str | None) -> ExpectationOutcome:
    matches = [o for o in report.failures if o.expectation == expectation and o.column == column]
    assert matches, f"no failed {expectation} on {column}: {report.summary()}"
    return matches[0]


def test_missing_column_is_named(visits, suite):
    report = validate_frame(visits.drop(columns=["width", "colour"]), suite, file="jan.parquet")

    assert not report.success
    assert _failed(report, "expect_column_to_exist", "width").observed["missing"] is True
    _failed(report, "expect_column_to_exist", "colour")
    # Reported once per column, not once per expectation that mentions it (colour: dtype, not null, regex).
    assert [o.column for o in report.failures].count("colour") == 1
    assert "jan.parquet" in report.summary()
    assert "colour: column is missing" in report.summary()


@pytest.mark.parametrize(
    ("column", "convert", "actual"),
    [
        ("day", lambda s: s.astype("float64"), "float64"),
        ("day", lambda s: s.astype(str), "object"),
        ("visit_time", lambda s: s.dt.strftime("%Y-%m-%dT%H:%M:%SZ"), "object"),
    ],
)
def test_wrong_dtype_names_column_expected_and_actual(visits, suite, column, convert, actual):
    frame = visits.assign(**{column: convert(visits[column])})

    report = validate_frame(frame, suite, file="jan.parquet")

    outcome = _failed(report, "expect_column_values_to_be_of_type", column)
    assert outcome.observed == actual
    line = outcome.describe()
    assert column in line and actual in line
    assert ("int64" if column == "day" else "datetime64[ns, UTC]") in line


def test_type_expectation_in_the_suite_list(visits):
    suite = {
        "name": "typed",
        "expectations": [
            {"type": "expect_column_values_to_be_of_type", "kwargs": {"column": "day", "type_": "int32"}}
        ],
    }

    report = validate_frame(visits, suite, file="jan.parquet")

    outcome = _failed(report, "expect_column_values_to_be_of_type", "day")
    assert "expected dtype int32, actual dtype int64" in outcome.describe()


def test_zero_rows_fails(visits, suite):
    report = validate_frame(visits.iloc[:0], suite, file="empty.parquet")

    assert not report.success
    outcome = _failed(report, "expect_table_row_count_to_be_between", None)
    assert outcome.observed == 0
    assert "empty.parquet" in report.summary() and "0 rows" in report.summary()


def test_zero_rows_fail_even_without_a_row_count_expectation(visits):
    suite = {
        "name": "no_count",
        "expectations": [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "day"}}],
    }

    report = validate_frame(visits.iloc[:0], suite, file="empty.parquet")

    assert not report.success
    assert report.failures[0].kwargs == {"min_value": 1}


def test_nulls_in_not_null_column_are_listed_with_rows(visits, suite):
    frame = visits.copy()
    frame.loc[[5, 7, 11], "store"] = None

    report = validate_frame(frame, suite, file="jan.parquet")

    outcome = _failed(report, "expect_column_values_to_not_be_null", "store")
    assert outcome.observed["unexpected_count"] == 3
    assert [e["row"] for e in outcome.unexpected_examples] == [5, 7, 11]
    assert "store" in report.summary() and "row 5" in report.summary()


def test_unknown_store_is_an_example(visits, suite):
    frame = visits.copy()
    frame.loc[42, "store"] = "XXX"

    report = validate_frame(frame, suite, file="jan.parquet")

    outcome = _failed(report, "expect_column_values_to_be_in_set", "store")
    assert outcome.unexpected_examples == [{"row": 42, "value": "XXX"}]
    assert "row 42: 'XXX'" in report.summary()
    assert failure_message([report]).startswith("jan.parquet: suite 'visits_raw' failed")


def test_examples_are_capped_at_five(visits, suite):
    frame = visits.copy()
    frame.loc[:20, "day"] = 40

    outcome = _failed(
        validate_frame(frame, suite, file="jan.parquet"), "expect_column_values_to_be_between", "day"
    )

    assert outcome.observed["unexpected_count"] == 21
    assert len(outcome.unexpected_examples) == 5


def test_duplicate_visit_breaks_compound_uniqueness(visits, suite):
    frame = pd.concat([visits, visits.iloc[[3]]], ignore_index=True)

    report = validate_frame(frame, suite, file="jan.parquet")

    outcome = _failed(report, "expect_compound_columns_to_be_unique", "day,store,visitor,minute_of_day")
    assert outcome.observed["unexpected_count"] == 2


def test_report_is_json_safe_even_with_nan_examples(visits):
    frame = visits.copy()
    frame.loc[:50, "width"] = np.nan
    suite = {
        "name": "strict",
        "expectations": [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "width"}}],
    }

    report = validate_frame(frame, suite, file="jan.parquet")

    data = report.to_dict()
    json.dumps(data, allow_nan=False)
    assert data["outcomes"][0]["unexpected_examples"][0] == {"row": 0, "value": None}


def test_index_is_ignored_for_row_numbers(all_visits, suite):
    later = all_visits.iloc[4000:4500].copy()  # index starts far from 0
    later.loc[later.index[2], "store"] = "ZZZ"

    outcome = _failed(
        validate_frame(later, suite, file="later.parquet"), "expect_column_values_to_be_in_set", "store"
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


def test_without_columns_drops_what_the_suite_says_about_them_alone(visits, suite):
    lenient = without_columns(suite, ["bought", "width", "day"])
    assert "bought" not in lenient["columns"] and "width" not in lenient["columns"]
    kept = [(item["type"], item["kwargs"].get("column")) for item in lenient["expectations"]]
    assert ("expect_column_values_to_not_be_null", "bought") not in kept
    assert ("expect_column_values_to_not_be_null", "day") not in kept
    assert ("expect_column_values_to_be_between", "day") not in kept
    assert ("expect_table_row_count_to_be_between", None) in kept  # table-level: kept
    # The key names day among other columns: not about day alone, kept.
    assert "expect_compound_columns_to_be_unique" in {item["type"] for item in lenient["expectations"]}
    unlabelled = visits.assign(bought=np.nan, width=None)
    assert not validate_frame(unlabelled, suite, file="x").success
    assert validate_frame(unlabelled, lenient, file="x").success
    assert suite["columns"]["bought"] == ["float64"]  # the suite itself is untouched


def test_keys_repeated_across_files_are_blamed_on_the_later_file(visits, tmp_path):
    key = KEY
    paths = {}
    for name, frame in (
        ("a", visits.iloc[:100]),
        # Re-delivered: 3 of a's rows again (with the visitor's number stored as text), and 2 new ones.
        (
            "b",
            pd.concat([visits.iloc[[5, 6, 7]], visits.iloc[200:202]]).assign(
                visitor=lambda f: f["visitor"].astype(str)
            ),
        ),
        ("c", visits.iloc[300:400]),
        ("d", visits.iloc[[6, 300]].assign(store=[None, visits.loc[300, "store"]])),
    ):
        path = tmp_path / f"{name}.parquet"
        frame.to_parquet(path, index=False)
        paths[name] = str(path)
    (tmp_path / "e.parquet").write_bytes(b"")  # unreadable: left to the per-file checks
    visits.iloc[:5].drop(columns=["store"]).to_parquet(tmp_path / "f.parquet", index=False)
    files = [*paths.values(), str(tmp_path / "e.parquet"), str(tmp_path / "f.parquet")]

    found = keys_repeated_across_files(files, key)
    by_file = {Path(r.file).stem: r for r in found}
    assert sorted(by_file) == ["b", "d"]
    assert by_file["b"].keys == 3 and by_file["b"].first_seen_in == (paths["a"],)
    example = by_file["b"].examples[0]["value"]
    assert set(example) == set(key) and example["visitor"] == str(visits.loc[5, "visitor"])
    # d's row 6 has a null store (no key); its row 300 repeats c's.
    assert by_file["d"].keys == 1 and by_file["d"].first_seen_in == (paths["c"],)
    assert "already in" in by_file["b"].describe() and paths["b"] in by_file["b"].describe()
    assert json.loads(json.dumps(by_file["b"].examples)) == by_file["b"].examples
    assert keys_repeated_across_files([paths["a"], paths["a"] + ".nothing"], key) == []
    # A key repeated inside one file is the suite's business, not this check's.
    visits.iloc[[0, 0, 1]].to_parquet(tmp_path / "twice.parquet", index=False)
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
        ("map", "map<string, string ('colour')>"),  # how pyarrow names a map read back from Parquet
        ("decimal", "decimal128(12, 2)"),
        ("date", "date32[day]"),
    ],
)
def test_a_text_column_stored_as_another_arrow_type_is_refused(tmp_path, visits, suite, kind, arrow_type):
    table = _with_column(visits, "colour", _arrow_values(kind, len(visits)))
    path = _land(tmp_path / "landing" / f"{kind}.parquet", table)

    [report] = validate_files([path], suite)

    outcome = _failed(report, "expect_column_values_to_be_of_type", "colour")
    assert outcome.observed == {"dtype": "object", "arrow_type": arrow_type}
    line = outcome.describe()
    assert line == (
        f"expect_column_values_to_be_of_type on colour: expected dtype object (Arrow string), "
        f"actual Arrow type {arrow_type}"
    )
    # Reported once: the expectations on colour's values (not null, regex) are not sent to GX.
    assert [o.expectation for o in report.failures] == ["expect_column_values_to_be_of_type"]
    assert f"actual Arrow type {arrow_type}" in report.summary()


def test_a_dictionary_of_numbers_for_a_text_column_names_its_arrow_type(visits, suite):
    import pyarrow as pa

    # Parquet gives dictionaries back only for text, so the table is handed over as read from elsewhere.
    codes = pa.array(range(len(visits)), pa.int64()).dictionary_encode()
    table = _with_column(visits, "colour", codes)

    report = validate_frame(table.to_pandas(), suite, file="d.parquet", schema=table.schema)

    outcome = _failed(report, "expect_column_values_to_be_of_type", "colour")
    assert outcome.observed["dtype"] == "category"
    assert outcome.observed["arrow_type"].startswith("dictionary<values=int64")
    assert (
        "expected dtype object, actual dtype category (Arrow type dictionary<values=int64"
        in outcome.describe()
    )
    # A dictionary of text reads as a category too, which the suite's exact dtype still refuses.
    text = _with_column(visits, "colour", pa.array(visits["colour"]).dictionary_encode())
    again = _failed(
        validate_frame(text.to_pandas(), suite, file="d.parquet", schema=text.schema),
        "expect_column_values_to_be_of_type",
        "colour",
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
def test_a_frame_without_a_schema_has_its_text_columns_looked_into(visits, suite, values, arrow_type):
    frame = visits.head(2).assign(colour=pd.Series(values, dtype=object))

    outcome = _failed(validate_frame(frame, suite, file="f"), "expect_column_values_to_be_of_type", "colour")

    assert outcome.observed["dtype"] == "object"
    if arrow_type is None:
        assert outcome.observed["arrow_type"].startswith("values of several kinds")
    else:
        assert outcome.observed["arrow_type"] == arrow_type


def test_text_in_any_arrow_string_type_and_an_all_null_column_pass(tmp_path, visits, suite):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = _with_column(visits, "colour", pa.array(visits["colour"], pa.large_string()))
    path = _land(tmp_path / "ok.parquet", table)
    nulls = _land(tmp_path / "nulls.parquet", _with_column(visits, "colour", pa.nulls(len(visits))))
    assert pq.read_schema(path).field("colour").type == pa.large_string()
    assert pq.read_schema(nulls).field("colour").type == pa.null()

    [report] = validate_files([path], suite)
    # No colour at all breaks the suite's not-null expectation, not the type check (nor the regex: no values).
    [all_null] = validate_files([nulls], suite)

    assert report.success, report.summary()
    assert [(o.expectation, o.column) for o in all_null.failures] == [
        ("expect_column_values_to_not_be_null", "colour")
    ]


def test_numbers_are_judged_on_their_arrow_type(tmp_path, visits, suite):
    import pyarrow as pa

    # An integer column with nulls reads as float64: accepted where the suite expects float64.
    bought = pa.array(visits["bought"].astype("Int64"), pa.int64())
    assert bought.null_count > 0
    good = _land(tmp_path / "ints.parquet", _with_column(visits, "bought", bought))
    # A float column where the suite expects int64 is refused naming both types.
    bad = _land(tmp_path / "floats.parquet", _with_column(visits, "day", pa.array(visits["day"] * 1.0)))

    first, second = validate_files([good, bad], suite)

    assert first.success, first.summary()
    outcome = _failed(second, "expect_column_values_to_be_of_type", "day")
    assert "expected dtype int64, actual dtype float64 (Arrow type double)" in outcome.describe()


def test_arrow_entries_accept_exactly_that_arrow_type(tmp_path, visits):
    table = _with_column(visits, "colour", _arrow_values("decimal", len(visits)))
    path = _land(tmp_path / "decimal.parquet", table)
    exact = {"name": "money", "columns": {"colour": ["arrow:decimal128(12, 2)"], "visitor": "arrow:int64"}}
    other = {"name": "money", "columns": {"colour": ["object", "arrow:decimal128(10, 2)"]}}

    assert validate_files([path], exact)[0].success
    assert validate_frame(visits, {"name": "s", "columns": {"visitor": "arrow:int64"}}, file="f").success
    outcome = _failed(validate_files([path], other)[0], "expect_column_values_to_be_of_type", "colour")
    assert outcome.observed == {"dtype": "object", "arrow_type": "decimal128(12, 2)"}


# ------------------------------------------------------------------------------------------ text lengths


def test_an_over_long_text_value_is_refused_by_row_and_length_never_by_value(tmp_path, visits, suite):
    remarks = pd.Series(["fine"] * len(visits), dtype=object)
    secret = "\x1b[31m" + "S3CR3T" * 400  # 2,405 characters
    remarks[7] = secret
    remarks[9] = "x" * 1024  # exactly the bound: accepted
    path = _land(tmp_path / "long.parquet", _table(visits.assign(remarks=remarks)))

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


def test_length_bounds_come_from_the_column_the_argument_the_suite_then_the_default(visits):
    frame = visits.head(20).assign(remarks=["a" * 30] * 19 + ["b" * 2000], notes=["c" * 50] * 20)
    suite = {"name": "s", "max_string_length": 40, "max_string_length_per_column": {"remarks": 3000}}

    def too_long(report):
        return {o.column: o.kwargs["max_value"] for o in report.failures}

    assert too_long(validate_frame(frame, suite, file="f")) == {"notes": 40}
    assert too_long(validate_frame(frame, suite, file="f", max_string_length=100)) == {}
    assert too_long(validate_frame(frame, suite, file="f", max_string_length=10)) == {"notes": 10}
    assert too_long(validate_frame(frame, {"name": "s"}, file="f")) == {"remarks": 1024}
    lenient = without_columns(suite, ["notes"])
    assert lenient["max_string_length_per_column"] == {"remarks": 3000}


def test_a_category_column_is_measured_too(visits):
    frame = visits.head(10).assign(remarks=pd.Categorical(["ok"] * 9 + ["z" * 5000]))

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


def test_gx_examples_are_clipped(visits, suite):
    frame = visits.copy()
    frame.loc[3, "store"] = "Q" * 500

    outcome = _failed(validate_frame(frame, suite, file="f"), "expect_column_values_to_be_in_set", "store")

    assert outcome.unexpected_examples == [{"row": 3, "value": "Q" * 64 + "…"}]


# ------------------------------------------------------------------------------ hostile file names, links


HOSTILE = "evil\n[2026-01-01] INFO all good\x1b[31m\u202e.parquet"
ESCAPED = "evil\\n[2026-01-01] INFO all good\\x1b[31m\\u202e.parquet"


def test_a_hostile_file_name_is_escaped_in_the_summary_and_in_errors(tmp_path, visits, suite):
    frame = visits.copy()
    frame.loc[1, "store"] = "XXX"
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


def test_repeated_keys_name_hostile_files_escaped(tmp_path, visits):
    key = KEY
    first = _land(tmp_path / "a.parquet", _table(visits.head(5)))
    second = _land(tmp_path / HOSTILE, _table(visits.head(5)))

    [repeated] = keys_repeated_across_files([first, second], key)

    assert ESCAPED in repeated.describe() and "\x1b" not in repeated.describe()


@pytest.mark.parametrize("target", ["outside", "/etc/passwd"])
def test_a_landed_link_leading_out_of_the_root_is_refused_unread(
    tmp_path, visits, suite, monkeypatch, target
):
    import pyarrow.parquet as pq

    from mlops_ops.core.storage import OutsideRoot

    outside = _land(tmp_path / "other-tenant" / "secret.parquet", _table(visits))
    root = tmp_path / "landing"
    root.mkdir()
    link = root / "month=2024-01\x1b[2K.parquet"
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
    assert "month=2024-01\\x1b[2K.parquet leads outside the landing root" in str(raised.value)
    assert "\x1b" not in str(raised.value)
    # A link that stays inside is read, and without a root nothing is judged (the old behaviour).
    assert validate_files([str(root / "alias.parquet")], suite, root=str(root))[0].success
    assert len(read_table(str(inside))) == len(visits)
