"""The bad-input matrix, scoring side: broken input and broken champions through the ``batch_score`` DAG.

A world of its own (``champion_world``): January landed, trained by ``retrain``, promoted by ``promote``.
February 12 is the interval scored; its flights are landed here, a slice per case, so no two files share a
flight unless a case says so. Five ``batch_score`` runs (``dag.test``):

1. a good slice and one file per broken case: ``validate_input`` fails and reports every file for exactly its
   own problem (one run for all: it checks each file, and the files together for a flight landed twice);
   files that cannot be placed in time (unreadable, no or a naive time column) reach it too, since
   ``plan_interval`` lists them instead of stopping at the first;
2. a champion whose MLflow signature wants columns the features do not have: ``score`` fails naming them and
   the version;
3. a champion whose artifact was modified after training: ``score`` fails on its sha256;
4. rows the champion can score although they are unusual: labels not arrived yet, categories never seen in
   training (scored, counted and reported), rows of the next day in the interval's file (not scored);
5. the same interval with more unseen categories than the limit: ``publish`` refuses it; the partition of
   run 4 stays as it was.

For each rejection: the task that should fail failed, what runs after it did not, the message names the
problem, and nothing is written downstream (no partition, no predictions asset event from the run, no
``publish`` result but a refusal). The count of cases is printed (``-s``) and asserted.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.bad_inputs import setting, with_nulls
from tests.e2e.dag_runs import champion_world, run_dag, task_states
from tests.trust_support import record_alias, sign_version

pytestmark = pytest.mark.e2e

MODEL = "flight_delay"
KEYS = ["year", "month", "day", "carrier", "flight", "origin"]
INTERVAL = {"interval_start": "2013-02-12", "interval_end": "2013-02-13"}
PARTITION_KEY = "20130212T0000Z_20130213T0000Z"
SLICE = 40  # rows per case file
REPEATED = "expect_compound_columns_to_be_unique_across_files"


#: case -> (how its slice of February 12 is broken: a function, raw bytes, or None for a truncated file; the
#: one failure validate_input must report for it: (expectation, column)).
REJECTED_BY_VALIDATE: dict[str, tuple[Callable | bytes | None, tuple[str, str | None]]] = {
    "schema: a column dropped": (lambda f: f.drop(columns=["dest"]), ("expect_column_to_exist", "dest")),
    "schema: the time column renamed": (
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
    "nulls in a key column": (with_nulls("origin"), ("expect_column_values_to_not_be_null", "origin")),
    "timestamps missing": (with_nulls("time_hour"), ("expect_column_values_to_not_be_null", "time_hour")),
    "zero rows": (lambda f: f.head(0), ("expect_table_row_count_to_be_between", None)),
    "empty file (0 bytes)": (b"", ("file_is_readable_parquet", None)),
    "corrupt file (truncated Parquet)": (None, ("file_is_readable_parquet", None)),
    "duplicated keys in a file": (
        lambda f: f.iloc[list(range(len(f))) + [0, 1, 2]].reset_index(drop=True),
        ("expect_compound_columns_to_be_unique", "year,month,day,carrier,flight,origin,sched_dep_time"),
    ),
    "timestamps without a time zone": (
        lambda f: f.assign(time_hour=f["time_hour"].dt.tz_localize(None)),
        ("expect_column_values_to_be_of_type", "time_hour"),
    ),
    "timestamps in the wrong time zone": (
        lambda f: f.assign(time_hour=f["time_hour"].dt.tz_convert("America/New_York")),
        ("expect_column_values_to_be_of_type", "time_hour"),
    ),
    "scheduled time out of range (2500)": (
        setting("sched_dep_time", 2500),
        ("expect_column_values_to_be_between", "sched_dep_time"),
    ),
    "unseen origin (BOS: a model of New York departures)": (
        setting("origin", "BOS"),
        ("expect_column_values_to_be_in_set", "origin"),
    ),
    "malformed category (carrier 'ua')": (
        setting("carrier", "ua"),
        ("expect_column_values_to_match_regex", "carrier"),
    ),
}
#: Not a file of its own: the good file's first rows landed again beside it (a re-delivery).
LANDED_TWICE = "flights landed twice (in two files)"


def _slug(case: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in case.lower()).strip("-")


def _day(day: int):
    """The flights whose ``time_hour`` falls on 2013-02-``day`` in UTC (the interval's day), in time order."""
    import pandas as pd

    from include.flights import data

    flights = data.flights(2)
    start = pd.Timestamp(f"2013-02-{day:02d}", tz="UTC")
    inside = flights[(flights["time_hour"] >= start) & (flights["time_hour"] < start + pd.Timedelta(days=1))]
    return inside.sort_values("time_hour", kind="stable").reset_index(drop=True)


def _write(path: Path, frame) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    return path


@pytest.fixture(scope="module")
def world(airflow_db, tmp_path_factory):
    """January trained and promoted; February 12's first 200 flights landed as the good file."""
    home = tmp_path_factory.mktemp("bad_input_scoring")
    with champion_world(home, reason="bad-input matrix, scoring", train_through_month=1) as world:
        february_12 = _day(12)
        flights = home / "data" / "flights"
        good = _write(flights / "month=2013-02" / "part-0.parquet", february_12.head(200))
        yield {**world, "flights": flights, "good": good, "february_12": february_12, "cases": [], "runs": []}


def _partition(world) -> Path:
    return world["predictions"] / f"model={MODEL}" / f"interval={PARTITION_KEY}" / "predictions.parquet"


def _published_files(world) -> list[Path]:
    """Prediction files a reader of the output root sees (``_staging`` and dot files are not data)."""
    root = world["predictions"]
    if not root.exists():
        return []
    return [
        path
        for path in root.rglob("*.parquet")
        if not any(part.startswith(("_", ".")) for part in path.relative_to(root).parts)
    ]


def _asset_events(run) -> list[dict]:
    """The predictions asset events that ``run`` emitted."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        asset = session.query(AssetModel).filter_by(name=f"predictions.{MODEL}").one_or_none()
        if asset is None:
            return []
        events = session.query(AssetEvent).filter_by(asset_id=asset.id, source_run_id=run.run_id)
        return [dict(event.extra) for event in events]


def _score(world, capfd) -> tuple:
    """One batch_score run of February 12; its task states and everything it printed (the task logs)."""
    capfd.readouterr()
    run = run_dag("batch_score", run_conf=INTERVAL)
    output = capfd.readouterr()
    world["runs"].append(run.run_id)
    return run, task_states(run), output.out + output.err


def _assert_nothing_downstream(world, run, before: list[Path]) -> None:
    from mlops_dev.demo import task_result

    assert _published_files(world) == before
    assert _asset_events(run) == []
    published = task_result(run, "publish")
    assert published is None or published["status"] == "rejected", published


def test_validate_input_rejects_every_broken_file_naming_its_problem(world, capfd):
    from mlops_dev.demo import task_result

    day = world["february_12"]
    files = {}
    for position, (case, (breaking, _)) in enumerate(REJECTED_BY_VALIDATE.items()):
        rows = day.iloc[200 + position * SLICE : 200 + (position + 1) * SLICE].reset_index(drop=True)
        path = world["flights"] / f"case={_slug(case)}" / "part-0.parquet"
        if isinstance(breaking, bytes):
            path.parent.mkdir(parents=True)
            path.write_bytes(breaking)
        elif breaking is None:
            _write(path, rows)
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        else:
            _write(path, breaking(rows))
        files[case] = path
    # Sorted after part-0, so the re-delivery is the file blamed for the repeated flights.
    files[LANDED_TWICE] = _write(world["good"].with_name("part-1.parquet"), day.head(20))
    expected = {case: {failure} for case, (_, failure) in REJECTED_BY_VALIDATE.items()}
    expected[LANDED_TWICE] = {(REPEATED, ",".join(KEYS))}
    assert len(day) >= 200 + len(REJECTED_BY_VALIDATE) * SLICE  # disjoint slices of the day

    try:
        run, states, log = _score(world, capfd)
    finally:
        for path in files.values():
            path.unlink()
            if path.parent.name.startswith("case="):
                path.parent.rmdir()

    assert str(run.state) == "failed", states
    assert states["plan_interval[-1]"] == "success" and states["validate_input[-1]"] == "failed", states
    downstream = {
        state
        for task, state in states.items()
        if task.split("[")[0] not in ("plan_interval", "validate_input")
    }
    assert downstream <= {"upstream_failed", "None"}, states
    planned = task_result(run, "plan_interval")["files"]
    assert set(planned) == {str(world["good"])} | {str(path) for path in files.values()}

    summary = task_result(run, "validate_input")
    by_file: dict[str, set] = {}
    for failure in summary["failed"]:
        by_file.setdefault(failure["file"], set()).add((failure["expectation"], failure["column"]))
    rejected = {case for case, path in files.items() if by_file.get(str(path)) == expected[case]}
    assert sorted(set(files) - rejected) == [], {case: by_file.get(str(files[case])) for case in files}
    assert str(world["good"]) not in by_file  # the good file is not blamed
    # The task's error names each file and its problem.
    for case, path in files.items():
        assert str(path) in log, case
    assert "expect_column_to_exist on time_hour: column is missing" in log
    assert (
        "expected dtype datetime64[ns, UTC] | datetime64[us, UTC] | datetime64[ms, UTC], actual dtype datetime64[ns]"
        in log
    )
    assert f"part-1.parquet: 20 key(s) ({', '.join(KEYS)}) already in {world['good']}" in log
    _assert_nothing_downstream(world, run, before=[])
    world["cases"] += [(case, "validate_input") for case in rejected]


def _log_model(features, *, name: str):
    """Log a small scikit-learn pipeline trained on random ``features`` with its signature; return its URI."""
    import mlflow
    import numpy as np
    import pandas as pd
    import skops.io
    from mlflow.models import infer_signature
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    random = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            column: random.choice(["AA", "B6", "UA"], 60) if column == "carrier" else random.random(60)
            for column in features
        }
    )
    model = Pipeline(
        [
            (
                "preprocessing",
                ColumnTransformer([("categorical", OrdinalEncoder(), ["carrier"])], remainder="passthrough"),
            ),
            ("model", HistGradientBoostingClassifier(max_iter=5)),
        ]
    ).fit(frame, random.integers(0, 2, 60))
    mlflow.set_experiment(MODEL)
    with mlflow.start_run(run_name=name):
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(frame, model.predict_proba(frame)[:, 1]),
            skops_trusted_types=skops.io.get_untrusted_types(data=skops.io.dumps(model)),
            pip_requirements=["scikit-learn"],
        )
    return info.model_uri


def _make_champion(version: str) -> str:
    """Move ``champion`` to ``version`` through the registry, as a hand-made promotion would."""
    from mlops_ops.hooks.mlflow import MlflowHook

    MlflowHook().client.set_registered_model_alias(MODEL, "champion", version)
    record_alias(MODEL, "champion", version)
    return version


@pytest.fixture
def champion_replaced(world):
    """Whatever a test makes champion, the promoted version is champion again afterwards."""
    from mlops_ops.hooks.mlflow import MlflowHook

    yield
    MlflowHook().client.set_registered_model_alias(MODEL, "champion", world["champion"])
    record_alias(MODEL, "champion", world["champion"])


def test_a_champion_whose_signature_does_not_match_is_refused_before_scoring(world, capfd, champion_replaced):
    import tempfile

    import mlflow

    from mlops_ops.core import lineage, storage

    # Another feature set: the schedule features it shares, and two columns this project never prepares.
    uri = _log_model(["carrier", "dep_hour", "distance", "wind_dir", "humidity"], name="other feature set")
    with tempfile.TemporaryDirectory() as folder:
        digest = storage.directory_sha256(mlflow.artifacts.download_artifacts(uri, dst_path=folder))
    # Its sha256 recorded as training records it: integrity holds, only the signature is wrong.
    registered = mlflow.register_model(uri, MODEL, tags={lineage.ARTIFACT_SHA256: digest})
    from mlops_ops.hooks.mlflow import MlflowHook

    sign_version(MlflowHook().client, MODEL, str(registered.version))  # signed: only the inputs are wrong
    version = _make_champion(str(registered.version))

    run, states, log = _score(world, capfd)
    assert str(run.state) == "failed", states
    assert "failed" in {states["score[0]"], states["score[1]"]} and states["publish[-1]"] == "upstream_failed"
    assert f"{MODEL} v{version} on interval [2013-02-12T00:00:00+00:00" in log
    assert "the rows lack column(s) ['wind_dir', 'humidity'] that the model's signature requires" in log
    _assert_nothing_downstream(world, run, before=[])
    world["cases"].append(("champion's signature does not match", "score"))


def test_a_champion_modified_after_training_is_refused(world, capfd, champion_replaced, tmp_path):
    import mlflow

    from mlops_ops.core import lineage
    from mlops_ops.hooks.mlflow import MlflowHook

    client = MlflowHook().client
    promoted = client.get_model_version(MODEL, world["champion"])
    copy = Path(
        mlflow.artifacts.download_artifacts(f"models:/{MODEL}/{promoted.version}", dst_path=str(tmp_path))
    )
    model_file = next(p for p in copy.iterdir() if p.name.startswith("model.") and p.suffix != ".json")
    model_file.write_bytes(model_file.read_bytes() + b"\0")
    tampered = client.create_model_version(
        MODEL, source=copy.as_uri(), run_id=promoted.run_id, tags=promoted.tags
    )
    # Signed over the promoted artifact's digest: an artifact rewritten in the store after it was signed.
    sign_version(client, MODEL, str(tampered.version), digest=promoted.tags[lineage.ARTIFACT_SHA256])
    version = _make_champion(str(tampered.version))

    run, states, log = _score(world, capfd)
    assert str(run.state) == "failed", states
    assert states["pin_champion[-1]"] == "success"
    assert {states["score[0]"], states["score[1]"]} == {"failed"} and states[
        "publish[-1]"
    ] == "upstream_failed"
    assert f"{MODEL} version {version}: the artifact at {copy.as_uri()} has sha256" in log
    assert "was recorded when it was trained; it was modified or corrupted and will not be loaded" in log
    _assert_nothing_downstream(world, run, before=[])
    world["cases"].append(("champion's artifact modified (sha256 mismatch)", "score"))


def test_unusual_but_scorable_rows_are_scored_and_unseen_categories_reported(world, capfd):
    import pandas as pd

    from mlops_dev.demo import task_result

    day = world["february_12"]
    folder = world["flights"] / "month=2013-02"
    unlabelled = day.iloc[800:840].reset_index(drop=True)
    for column in ("dep_time", "dep_delay", "arr_time", "arr_delay", "air_time"):
        unlabelled[column] = float("nan")
    unseen = day.iloc[840:880].reset_index(drop=True)
    unseen.loc[:2, "dest"] = "XXX"  # a destination never flown to in January
    unseen.loc[3:4, "carrier"] = "ZZ"  # a carrier never seen in January
    next_day = _day(13).head(20)
    straddling = pd.concat([day.iloc[880:900], next_day], ignore_index=True)
    world["accepted"] = [
        _write(folder / "part-2.parquet", unlabelled),
        _write(folder / "part-3.parquet", unseen),
        _write(folder / "part-4.parquet", straddling),
    ]

    run, states, log = _score(world, capfd)
    assert str(run.state) == "success", states
    published = task_result(run, "publish")
    assert published["status"] == "published" and published["rows"] == 200 + 40 + 40 + 20
    assert published["unseen_categories"] == {
        "rows": 5,
        "columns": {"carrier": {"ZZ": 2}, "dest": {"XXX": 3}},
        "share": round(5 / 300, 6),
    }
    assert "5 of 300 rows (1.67%) hold categories flight_delay v" in log and "dest 'XXX' (3)" in log
    scored = pd.read_parquet(_partition(world))
    assert len(scored) == 300 and not scored.duplicated(KEYS).any()
    assert set(scored["model_version"]) == {int(world["champion"])}
    keys = scored.set_index(KEYS).index
    assert keys.isin(unlabelled.set_index(KEYS).index).sum() == 40  # scored without their labels
    assert keys.isin(unseen.set_index(KEYS).index).sum() == 40  # scored, and counted
    assert not keys.isin(next_day.set_index(KEYS).index).any()  # the next day's rows are not this interval's
    assert _asset_events(run) == [
        {
            "model_name": MODEL,
            "model_version": world["champion"],
            "interval": published["interval"],
            "rows": 300,
            "uri": str(_partition(world)),
            "task": "binary",
            "classes": None,
        }
    ]
    world["cases"] += [
        ("labels not arrived yet", "accepted"),
        ("unseen destination and carrier, under the limit", "accepted"),
        ("rows outside the interval in its file", "accepted"),
    ]


def test_too_many_unseen_categories_are_refused_at_publish_and_the_partition_kept(world, capfd):
    from mlops_dev.demo import task_result

    assert _partition(world).exists(), "needs the previous test's partition"
    before = _partition(world).read_bytes()
    day = world["february_12"]
    new_route = day.iloc[600:640].reset_index(drop=True).assign(dest="YYY")
    path = _write(world["flights"] / "month=2013-02" / "part-5.parquet", new_route)
    try:
        run, states, log = _score(world, capfd)
    finally:
        path.unlink()
    assert str(run.state) == "failed", states
    assert {states["score[0]"], states["score[1]"]} == {"success"} and states["publish[-1]"] == "failed", (
        states
    )
    assert "45 of 340 rows (13.2%) of interval [2013-02-12T00:00:00+00:00, 2013-02-13T00:00:00+00:00)" in log
    assert (
        "above the limit of 5.0%: carrier 'ZZ' (2); dest 'YYY' (40), 'XXX' (3); nothing is published" in log
    )
    refused = task_result(run, "publish")
    assert refused["status"] == "rejected" and refused["unseen_categories"]["rows"] == 45
    assert _partition(world).read_bytes() == before  # the previous run's partition, as it was
    _assert_nothing_downstream(world, run, before=[_partition(world)])
    world["cases"].append(("unseen categories above the limit", "publish"))


def test_the_matrix_tried_every_case(world):
    cases = dict(world["cases"])
    rejected = {case: task for case, task in cases.items() if task != "accepted"}
    print(
        f"\nbad-input matrix, scoring: {len(cases)} cases tried in {len(world['runs'])} batch_score runs: "
        f"{len(rejected)} rejected by the right task naming the problem "
        f"({', '.join(f'{task} {list(rejected.values()).count(task)}' for task in dict.fromkeys(rejected.values()))}), "
        f"{len(cases) - len(rejected)} scored as designed"
    )
    assert len(rejected) == len(REJECTED_BY_VALIDATE) + 1 + 3 and len(cases) == len(rejected) + 3
