"""The bad-input matrix: broken landed files, each rejected by the ``retrain`` DAG's ``validate`` task.

One ``retrain`` run (``dag.test``) over a landing zone holding a good January and one file per broken case:
``validate`` fails the run and names, for each broken file, the column (or the unreadable file) and the
expectation it broke; the good file is not blamed; nothing downstream runs (``train``, ``evaluate_gate`` and
``register`` are ``upstream_failed``), no MLflow run, model version or evaluation file is written. One run for
all cases keeps the suite at one DAG run: ``validate`` checks every file and reports each, so a case cannot hide
behind another. The count of cases is printed (``-s``) and asserted.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.bad_inputs import setting, with_nulls

pytestmark = pytest.mark.e2e
MODEL = "flight_delay"


def _head():
    from include.flights import data

    return data.flights(2).head(300).reset_index(drop=True)


#: case -> (how February's first 300 rows are broken: a function, raw bytes, or None for a truncated file;
#: the one failure ``validate`` must report for it: (expectation, column)).
CASES: dict[str, tuple[Callable | bytes, tuple[str, str | None]]] = {
    "schema: a column dropped": (lambda f: f.drop(columns=["dest"]), ("expect_column_to_exist", "dest")),
    "schema: a column renamed": (
        lambda f: f.rename(columns={"time_hour": "timestamp"}),
        ("expect_column_to_exist", "time_hour"),
    ),
    "dtype: numbers as text": (
        lambda f: f.assign(flight=f["flight"].astype(str)),
        ("expect_column_values_to_be_of_type", "flight"),
    ),
    "dtype: float for an integer": (
        lambda f: f.assign(distance=f["distance"] * 1.0),
        ("expect_column_values_to_be_of_type", "distance"),
    ),
    "nulls in a key column": (
        with_nulls("origin"),
        ("expect_column_values_to_not_be_null", "origin"),
    ),
    "labels missing": (
        lambda f: f.assign(arr_delay=float("nan")),
        ("expect_column_values_to_not_be_null", "arr_delay"),
    ),
    "zero rows": (lambda f: f.head(0), ("expect_table_row_count_to_be_between", None)),
    "empty file (0 bytes)": (b"", ("file_is_readable_parquet", None)),
    "corrupt file (truncated Parquet)": (None, ("file_is_readable_parquet", None)),
    "duplicated keys": (
        lambda f: f.iloc[list(range(len(f))) + [0, 1, 2]].reset_index(drop=True),
        ("expect_compound_columns_to_be_unique", "year,month,day,carrier,flight,origin,sched_dep_time"),
    ),
    "timestamp out of range (sched_dep_time 2500)": (
        setting("sched_dep_time", 2500),
        ("expect_column_values_to_be_between", "sched_dep_time"),
    ),
    "month out of range (13)": (setting("month", 13), ("expect_column_values_to_be_between", "month")),
    "timestamps without a time zone": (
        lambda f: f.assign(time_hour=f["time_hour"].dt.tz_localize(None)),
        ("expect_column_values_to_be_of_type", "time_hour"),
    ),
    "timestamps in the wrong time zone": (
        lambda f: f.assign(time_hour=f["time_hour"].dt.tz_convert("America/New_York")),
        ("expect_column_values_to_be_of_type", "time_hour"),
    ),
    "unseen category (origin BOS)": (
        setting("origin", "BOS"),
        ("expect_column_values_to_be_in_set", "origin"),
    ),
    "malformed category (carrier 'ua')": (
        setting("carrier", "ua"),
        ("expect_column_values_to_match_regex", "carrier"),
    ),
}


def _slug(case: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in case.lower()).strip("-")


def land_cases(root: Path) -> dict[str, Path]:
    """Land a good January and one file per case under ``root/flights``; return case -> file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from include.flights import data

    data.land_month(str(root), 1)
    good = _head()
    files = {}
    for case, (breaking, _) in CASES.items():
        path = root / "flights" / f"case={_slug(case)}" / "part-0.parquet"
        path.parent.mkdir(parents=True)
        if isinstance(breaking, bytes):
            path.write_bytes(breaking)
        elif breaking is None:
            pq.write_table(pa.Table.from_pandas(good, preserve_index=False), path)
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        else:
            pq.write_table(pa.Table.from_pandas(breaking(good), preserve_index=False), path)
        files[case] = path
    return files


def test_every_broken_file_is_rejected_by_validate_naming_its_problem(airflow_db, tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    from mlops_dev.demo import task_result
    from mlops_ops.hooks.mlflow import MlflowHook

    monkeypatch.setenv("MLOPS_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setenv("MLOPS_ARTIFACT_ROOT", (tmp_path / "artifacts").as_uri())
    files = land_cases(tmp_path / "data")

    bag = DagBag(dag_folder=str(Path(__file__).resolve().parents[2] / "dags"))
    assert bag.import_errors == {}
    run = bag.dags["retrain"].test(run_conf={"reason": "bad-input matrix", "force": True})
    with create_session() as session:
        rows = session.query(TaskInstance).filter_by(dag_id="retrain", run_id=run.run_id).all()
        states = {ti.task_id: str(ti.state) for ti in rows}
    assert str(run.state) == "failed", states
    assert states["wait_for_data"] == "success" and states["validate"] == "failed"
    assert {states[task] for task in ("train", "evaluate_gate", "register")} == {"upstream_failed"}

    summary = task_result(run, "validate")
    by_file: dict[str, set] = {}
    for failure in summary["failed"]:
        by_file.setdefault(failure["file"], set()).add((failure["expectation"], failure["column"]))
    # Rejected for exactly its own problem: the one expectation the case breaks, and nothing else.
    rejected = {case for case, path in files.items() if by_file.get(str(path)) == {CASES[case][1]}}
    print(
        f"\nbad-input matrix: {len(CASES)} cases tried, {len(rejected)} rejected by validate naming the problem"
    )
    assert sorted(set(CASES) - rejected) == [], {str(files[c]): by_file.get(str(files[c])) for c in CASES}
    assert set(by_file) == {str(path) for path in files.values()}  # the good January is not blamed
    assert len(CASES) >= 15

    # Nothing downstream: no run in MLflow, no version, no evaluation rows written.
    hook = MlflowHook()
    experiment = hook.client.get_experiment_by_name(MODEL)
    assert experiment is None or hook.client.search_runs([experiment.experiment_id]) == []
    assert hook.client.search_registered_models() == []
    assert not (tmp_path / "data" / "evaluation").exists()
