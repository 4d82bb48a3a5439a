"""DataValidationOperator on the synthetic visits of tests/unit/synthetic.py, written as Parquet month files under
tmp_path, against their suite."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowFailException

from mlops_ops.core.optional import MissingExtraError
from mlops_ops.operators.validation import (
    OUTSIDE_LANDING_ROOT,
    REPEATED_ACROSS_FILES,
    UNREADABLE,
    DataValidationFailed,
    DataValidationOperator,
    parse_data_version,
)
from tests.unit import synthetic

PROJECT_ROOT = Path(__file__).resolve().parents[3]
#: The suite file, relative to the project folder of the ``project`` fixture.
SUITE = "include/visits_raw.json"


class FakeTI:
    """Records xcom_push calls, like RuntimeTaskInstance.xcom_push."""

    def __init__(self) -> None:
        self.pushed: dict[str, object] = {}

    def xcom_push(self, key: str, value: object) -> None:
        json.dumps(value, allow_nan=False)  # what a real XCom backend would need
        self.pushed[key] = value


@pytest.fixture(scope="module")
def months() -> dict[int, pd.DataFrame]:
    """2,000 synthetic visits from the start of each of January and October 2024 (one every 5 minutes)."""
    return {m: synthetic.visits(2000, seed=20 + m, start=f"2024-{m:02d}-01") for m in (1, 10)}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A project folder holding the visits' suite at ``SUITE``."""
    folder = tmp_path_factory.mktemp("project")
    synthetic.config_files(folder / "include")
    return folder


@pytest.fixture
def suite(project) -> str:
    return str(project / SUITE)


def _land(root: Path, month: int, frame: pd.DataFrame) -> str:
    path = root / "visits" / f"month=2024-{month:02d}" / "part-0.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return str(path)


def pq_write(table, path: Path) -> None:
    import pyarrow.parquet as pq

    pq.write_table(table, path)


def _version(files: list[str]) -> dict:
    return {
        "fingerprint": "sha256:abc",
        "source": "local",
        "kind": "parquet",
        "files": files,
        "size_bytes": 1,
    }


def _operator(data_version, suite, **kwargs) -> DataValidationOperator:
    return DataValidationOperator(task_id="validate", data_version=data_version, suite=suite, **kwargs)


def test_passing_files_return_a_json_safe_summary(tmp_path, months, suite):
    files = [_land(tmp_path, m, frame) for m, frame in months.items()]
    ti = FakeTI()

    summary = _operator(_version(files), suite).execute(context={"ti": ti})

    assert summary == {
        "suite": "visits_raw",
        "data_version": "sha256:abc",
        "success": True,
        "files": 2,
        "rows": 4000,
        "failed": [],
    }
    json.dumps(summary, allow_nan=False)
    assert ti.pushed == {}  # on success Airflow pushes the return value itself


def test_failure_pushes_summary_then_raises_naming_file_and_expectation(tmp_path, months, suite):
    good = _land(tmp_path, 1, months[1])
    bad_frame = months[10].copy()
    bad_frame.loc[7, "store"] = "XXX"
    bad = _land(tmp_path, 10, bad_frame)
    ti = FakeTI()

    with pytest.raises(DataValidationFailed) as info:
        _operator(_version([good, bad]), suite).execute(context={"ti": ti})

    assert isinstance(info.value, AirflowFailException)
    message = str(info.value)
    assert bad in message and good not in message
    assert "expect_column_values_to_be_in_set on store" in message
    assert "row 7: 'XXX'" in message
    pushed = ti.pushed["return_value"]
    assert pushed == info.value.summary
    assert pushed["success"] is False and pushed["rows"] == 4000
    assert pushed["failed"] == [
        {
            "file": bad,
            "expectation": "expect_column_values_to_be_in_set",
            "column": "store",
            "observed": pushed["failed"][0]["observed"],
            "examples": [{"row": 7, "value": "XXX"}],
        }
    ]
    assert pushed["failed"][0]["observed"]["unexpected_count"] == 1


def test_wrong_dtype_and_missing_column_in_message(tmp_path, months, suite):
    frame = months[1].drop(columns=["colour"]).assign(day=months[1]["day"].astype("float64"))
    path = _land(tmp_path, 1, frame)

    with pytest.raises(DataValidationFailed) as info:
        _operator(_version([path]), suite).execute(context={"ti": FakeTI()})

    message = str(info.value)
    assert "expect_column_to_exist on colour: column is missing" in message
    assert "on day: expected dtype int64, actual dtype float64" in message


@pytest.mark.parametrize("render", [json.dumps, str], ids=["json", "python-repr"])
def test_data_version_as_rendered_string(tmp_path, months, render, suite):
    path = _land(tmp_path, 1, months[1])

    summary = _operator(render(_version([path])), suite).execute(context={"ti": FakeTI()})

    assert summary["success"] and summary["files"] == 1


def test_corrupt_file_is_a_validation_failure_and_the_rest_is_still_checked(tmp_path, months, suite):
    good = _land(tmp_path, 1, months[1])
    corrupt = tmp_path / "visits" / "month=2024-02" / "part-0.parquet"
    corrupt.parent.mkdir(parents=True)
    corrupt.write_bytes(b"PAR1 definitely not parquet")
    ti = FakeTI()

    with pytest.raises(DataValidationFailed, match="not a readable Parquet file") as info:
        _operator(_version([str(corrupt), good]), suite).execute(context={"ti": ti})

    assert str(corrupt) in str(info.value)
    pushed = ti.pushed["return_value"]
    assert pushed["rows"] == 2000
    assert [(f["file"], f["expectation"]) for f in pushed["failed"]] == [(str(corrupt), UNREADABLE)]


def test_a_row_landed_twice_across_files_fails_the_later_file_with_unique_key(tmp_path, months, suite):
    key = list(synthetic.KEY)
    first = _land(tmp_path, 1, months[1])
    again = tmp_path / "visits" / "month=2024-01" / "part-1.parquet"
    months[1].iloc[10:13].to_parquet(again, index=False)
    files = [first, str(again)]
    # Without a key, each file passes its suite on its own.
    assert _operator(_version(files), suite).execute(context={"ti": FakeTI()})["success"]

    ti = FakeTI()
    with pytest.raises(DataValidationFailed, match=r"part-1.parquet: 3 key\(s\) \(day, store, .*already in"):
        _operator(_version(files), suite, unique_key=key).execute(context={"ti": ti})
    (failure,) = ti.pushed["return_value"]["failed"]
    assert failure["file"] == str(again) and failure["expectation"] == REPEATED_ACROSS_FILES
    assert failure["column"] == ",".join(key)
    assert failure["observed"] == {"repeated_keys": 3, "first_seen_in": [first]}
    assert len(failure["examples"]) == 3


def test_excluded_columns_are_not_judged(tmp_path, months, suite):
    unlabelled = months[1].assign(bought=float("nan"), width=float("nan"))
    files = [_land(tmp_path, 1, unlabelled)]
    with pytest.raises(DataValidationFailed, match="bought"):
        _operator(_version(files), suite).execute(context={"ti": FakeTI()})
    summary = _operator(_version(files), suite, exclude_columns=["bought", "width"]).execute(
        context={"ti": FakeTI()}
    )
    assert summary["success"] and summary["rows"] == 2000


def test_fail_on_error_false_returns_the_failed_summary(tmp_path, months, suite):
    frame = months[1].copy()
    frame.loc[0, "store"] = None
    path = _land(tmp_path, 1, frame)

    summary = _operator(_version([path]), suite, fail_on_error=False).execute(context={"ti": FakeTI()})

    assert summary["success"] is False
    assert summary["failed"][0]["column"] == "store"


def test_relative_suite_resolves_against_dag_folder_parent(tmp_path, months):
    project = tmp_path / "project"
    suite_path = project / "include" / "suite.json"
    suite_path.parent.mkdir(parents=True)
    suite_path.write_text('{"name": "tiny", "columns": {"day": "int64"}}')
    dag = SimpleNamespace(fileloc=str(project / "dags" / "flights.py"))
    path = _land(tmp_path, 1, months[1])

    summary = _operator(_version([path]), suite="include/suite.json").execute(
        context={"ti": FakeTI(), "dag": dag}
    )

    assert summary["suite"] == "tiny"


def test_relative_suite_falls_back_to_cwd(tmp_path, months, monkeypatch, project):
    monkeypatch.chdir(project)
    path = _land(tmp_path, 1, months[1])

    summary = _operator(_version([path]), suite=SUITE).execute(context={"ti": FakeTI()})

    assert summary["suite"] == "visits_raw"


def test_missing_or_invalid_suite_fails_without_retry(tmp_path, months, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _land(tmp_path, 1, months[1])

    with pytest.raises(AirflowFailException, match="not found") as info:
        _operator(_version([path]), suite="include/nope.json").execute(context={"ti": FakeTI()})
    assert not isinstance(info.value, DataValidationFailed)

    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(AirflowFailException, match="bad.json: expectation suite is not valid JSON"):
        _operator(_version([path]), suite="bad.json").execute(context={"ti": FakeTI()})


def test_inline_suite_dict(tmp_path, months):
    path = _land(tmp_path, 1, months[1])
    suite = {
        "name": "inline",
        "expectations": [
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": "day", "min_value": 2, "max_value": 31},
            }
        ],
    }

    with pytest.raises(DataValidationFailed, match="expect_column_values_to_be_between on day"):
        _operator(_version([path]), suite=suite).execute(context={"ti": FakeTI()})


@pytest.mark.parametrize(
    "value", [None, "None", "", "not a dict", {"fingerprint": "x", "files": []}, "[1, 2]"]
)
def test_unusable_data_version_fails(value):
    with pytest.raises(AirflowFailException):
        parse_data_version(value)


def test_constructor_stores_only():
    op = _operator(
        "{{ ti.xcom_pull(task_ids='wait_for_data') }}", suite="does/not/exist.json", storage_conn_id=None
    )

    assert op.data_version == "{{ ti.xcom_pull(task_ids='wait_for_data') }}"
    assert op.suite == "does/not/exist.json"
    assert op.storage_conn_id is None and op.fail_on_error is True
    assert set(op.template_fields) == {"data_version", "suite"}
    assert all(hasattr(op, name) for name in op.template_fields)


def test_s3_without_amazon_provider_names_the_extra(monkeypatch, suite):
    monkeypatch.setitem(sys.modules, "airflow.providers.amazon.aws.hooks.s3", None)
    op = _operator(_version(["s3://bucket/key.parquet"]), suite)

    with pytest.raises(MissingExtraError, match=r"mlops-ops\[aws\]"):
        op.execute(context={"ti": FakeTI()})


def test_reads_s3_through_the_airflow_connection(tmp_path, months, monkeypatch, suite):
    """Moto S3 behind an ``aws`` connection with ``endpoint_url``: credentials and endpoint reach pyarrow."""
    pytest.importorskip("airflow.providers.amazon")
    boto3 = pytest.importorskip("boto3")
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        conn = {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        }
        monkeypatch.setenv("AIRFLOW_CONN_AWS_LANDING", json.dumps(conn))
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        client.create_bucket(Bucket="landing")
        local = _land(tmp_path, 1, months[1])
        client.upload_file(local, "landing", "visits/month=2024-01/part-0.parquet")
        uri = "s3://landing/visits/month=2024-01/part-0.parquet"

        summary = _operator(_version([uri]), suite, storage_conn_id="aws_landing").execute(
            context={"ti": FakeTI()}
        )

        assert summary["success"] and summary["rows"] == 2000
    finally:
        server.stop()


def test_hostile_landing_is_refused_naming_each_file_escaped(tmp_path, months, capfd, suite):
    """A link out of the landing root, bytes in a text column and an over-long value: each file is refused for
    its own problem, the link is not read, and no landed name reaches the log or the message unescaped."""
    import pyarrow as pa

    good = _land(tmp_path, 1, months[1])
    root = tmp_path / "visits"
    outside = tmp_path / "other-tenant.parquet"
    months[10].to_parquet(outside, index=False)
    link = root / "evil\n[INFO] all good\x1b[31m.parquet"
    link.symlink_to(outside)
    table = pa.Table.from_pandas(months[1], preserve_index=False)
    binary = root / "month=2024-02" / "part-0.parquet"
    binary.parent.mkdir()
    pq_write(
        table.set_column(table.schema.get_field_index("colour"), "colour", pa.array([b"red"] * 2000)), binary
    )
    long = _land(tmp_path, 3, months[1].assign(remarks=["ok"] * 1999 + ["x" * 5000]))
    version = {**_version([good, str(link), str(binary), long]), "details": {"root": str(root)}}
    ti = FakeTI()

    with pytest.raises(DataValidationFailed) as info:
        _operator(version, suite).execute(context={"ti": ti})

    failed = {(f["file"], f["expectation"], f["column"]) for f in ti.pushed["return_value"]["failed"]}
    assert failed == {
        (str(link), OUTSIDE_LANDING_ROOT, None),
        (str(binary), "expect_column_values_to_be_of_type", "colour"),
        (long, "expect_column_value_lengths_to_be_between", "remarks"),
    }
    assert ti.pushed["return_value"]["rows"] == 6000  # the link was not read
    escaped = "evil\\n[INFO] all good\\x1b[31m.parquet leads outside the landing root"
    message = str(info.value)
    assert escaped in message
    assert "actual Arrow type binary" in message and "x" * 20 not in message
    logged = "".join(capfd.readouterr())  # the task logger writes to the console here
    assert escaped in logged
    for text in (message, logged):
        assert "\x1b" not in text and "\n[INFO] all good" not in text


def test_max_string_length_argument(tmp_path, months, suite):
    path = _land(tmp_path, 1, months[1].assign(remarks=["ok"] * 1999 + ["x" * 2000]))

    with pytest.raises(DataValidationFailed, match="1 value\\(s\\) longer than 1024 characters"):
        _operator(_version([path]), suite).execute(context={"ti": FakeTI()})
    assert _operator(_version([path]), suite, max_string_length=4096).execute(context={"ti": FakeTI()})[
        "success"
    ]
    with pytest.raises(ValueError, match="max_string_length"):
        _operator(_version([path]), suite, max_string_length=0)


def test_operator_module_imports_nothing_heavy():
    code = (
        "import sys, mlops_ops.operators.validation; "
        "heavy = {'pandas', 'great_expectations', 'pyarrow', 'mlflow', 'boto3'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PROJECT_ROOT)
