"""kill -9 inside train, register, promote, score, publish and materialize under the real scheduler, then let
Airflow retry: no duplicate model version, no duplicate or partial prediction file, ``champion`` only on a
gate-passed version with a consistent history.

``airflow standalone`` runs with ``tests/faults`` first on its ``PYTHONPATH``: its ``sitecustomize`` wraps the
planned functions and SIGKILLs the task process at each planned point once (see that module), and its
``airflow_local_settings`` task policy makes retries come after 1 s instead of the DAGs' 30-60 s. Several
faults share a DAG run (different tasks, and two points in one task: a task has three tries), and the batch
scoring runs go concurrently. The counts are written to ``fault_report.json`` in the test's folder and printed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.airflow_rest import Airflow
from tests.e2e.standalone import PROJECT_ROOT, airflow_standalone

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(2400)]

MODEL = "flight_delay"
FAULTS_FOLDER = PROJECT_ROOT / "tests" / "faults"
KEYS = ["year", "month", "day", "carrier", "flight", "origin"]
# One day each, scored concurrently by batch_score runs whose ids the test chooses (faults are per run).
SCORED_DAYS = {"faults_day_1": "2013-01-10", "faults_day_2": "2013-02-07"}
WAIT_SECONDS = 900  # a run whose tasks are killed up to four times each, on a shared 2-core machine


def _fault(fault_id: str, target: str, when: str, dag_id: str, task_id: str, **match) -> dict:
    return {"id": fault_id, "target": target, "when": when, "dag_id": dag_id, "task_id": task_id, **match}


def fault_plan() -> list[dict]:
    """Where each task process is killed: at most four points per task instance (the policy gives it five
    tries), and the most where a retry is cheap (not training)."""
    hook = "mlops_ops.hooks.mlflow:MlflowHook"
    writer = "mlops_ops.core.scoring.batch:_StagedWriter.write"
    online_write = "feast.infra.online_stores.sqlite:SqliteOnlineStore.online_write_batch"
    plan = [
        # Training: the model is logged, the MLflow run holds no result yet (it stays RUNNING).
        _fault("train-after-log-model", "mlflow.sklearn:log_model", "after", "retrain", "train"),
        # Registration: before the version exists; the version exists, no alias; the alias set, no XCom.
        _fault("register-before-create", f"{hook}.register_model", "before", "retrain", "register"),
        _fault("register-after-create", f"{hook}.register_model", "after", "retrain", "register"),
        _fault("register-after-alias", f"{hook}.set_alias", "after", "retrain", "register"),
        # Promotion: scanned, not moved; champion moved but no history; history written, version tags not.
        _fault("promote-before-alias-move", f"{hook}.set_alias", "before", "promote", "promote"),
        _fault("promote-after-alias-move", f"{hook}.set_alias", "after", "promote", "promote"),
        _fault(
            "promote-after-history",
            "mlflow.tracking.client:MlflowClient.set_registered_model_tag",
            "after",
            "promote",
            "promote",
        ),
        # Materialization (beside retrain, off its critical path): after Feast wrote a first batch online
        # (a partial write), twice, then after every view was materialized.
        _fault("materialize-mid-online-write-a", online_write, "after", "features", "materialize"),
        _fault("materialize-mid-online-write-b", online_write, "after", "features", "materialize"),
        _fault(
            "materialize-after-feast",
            "mlops_ops.hooks.feast:FeastHook.materialize",
            "after",
            "features",
            "materialize",
        ),
    ]
    for run_id in SCORED_DAYS:
        plan += [
            # A shard killed after its first chunk (a partial staging file), twice, then before its staged
            # file is moved into place.
            _fault(f"{run_id}-score-mid-shard-a", writer, "after", "batch_score", "score", run_id=run_id),
            _fault(f"{run_id}-score-mid-shard-b", writer, "after", "batch_score", "score", run_id=run_id),
            _fault(
                f"{run_id}-score-before-staged-move",
                "mlops_ops.core.scoring.batch:move",
                "before",
                "batch_score",
                "score",
                run_id=run_id,
            ),
            # Publish killed while merging the shards, just before the partition is moved into place, and
            # just after (published, staging not cleared, no XCom).
            _fault(f"{run_id}-publish-mid-merge", writer, "after", "batch_score", "publish", run_id=run_id),
            *(
                _fault(
                    f"{run_id}-publish-{when}-move",
                    "mlops_ops.core.scoring.batch:move",
                    when,
                    "batch_score",
                    "publish",
                    run_id=run_id,
                    arg_endswith="predictions.parquet",
                )
                for when in ("before", "after")
            ),
        ]
    return plan


@pytest.fixture(scope="module")
def faulty_airflow(tmp_path_factory):
    from include.flights import data

    home = tmp_path_factory.mktemp("faults")
    for month in (1, 2):  # landed before start: the retrain run started by unpausing trains on them
        data.land_month(str(home / "mlops" / "data"), month)
    plan = home / "fault_plan.json"
    plan.write_text(json.dumps(fault_plan()))
    extra = {
        "PYTHONPATH": str(FAULTS_FOLDER),
        "MLOPS_FAULT_PLAN": str(plan),
        "AIRFLOW_VAR_MLOPS_PROMOTION_POLICY": "auto",  # a gate-passed challenger is promoted unasked
        "MLOPS_FEAST_REPO": str(PROJECT_ROOT / "include" / "flights" / "feature_repo"),
    }
    with airflow_standalone(home, {"retrain", "promote", "batch_score", "features"}, extra) as (client, env):
        yield client, env, home, plan


def _succeeded(client: Airflow, dag_id: str, run_ids: list[str] | None = None) -> list[dict]:
    """The runs of ``dag_id`` (or of ``run_ids``) once they all finished; fails at the first failed one."""
    runs = [r for r in client.runs(dag_id) if run_ids is None or r["dag_run_id"] in run_ids]
    failed = [r["dag_run_id"] for r in runs if r["state"] == "failed"]
    assert not failed, f"{dag_id} runs failed: {[(r, client.task_states(dag_id, r)) for r in failed]}"
    done = [r for r in runs if r["state"] == "success"]
    if run_ids is not None:
        return done if len(done) == len(run_ids) else []
    return done


def _registry(environment):
    import mlflow

    uri = f"sqlite:///{environment['MLOPS_HOME']}/mlflow.db"
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return not Path(f"/proc/{pid}").exists()


def test_killed_tasks_are_retried_by_airflow_and_nothing_is_lost_or_doubled(faulty_airflow):
    import pyarrow.parquet as pq

    from include.flights.data import flights
    from mlops_ops.core import lineage, promotion
    from mlops_ops.operators.training import RESULT_TAG

    client, environment, home, plan_file = faulty_airflow
    plan = json.loads(plan_file.read_text())
    for dag_id in ("retrain", "promote", "features"):
        client.unpause(dag_id)

    # retrain (its latest weekly run) -> challenger -> promote (auto) -> champion.
    (retrain,) = client.wait_for(lambda: _succeeded(client, "retrain"), WAIT_SECONDS, "retrain")
    (promote,) = client.wait_for(lambda: _succeeded(client, "promote"), WAIT_SECONDS, "promote")
    registry = _registry(environment)
    champion = registry.get_registered_model(MODEL).aliases["champion"]

    client.unpause("batch_score")
    for run_id, day in SCORED_DAYS.items():
        start = f"{day}T00:00:00+00:00"
        end = f"{day[:-2]}{int(day[-2:]) + 1:02d}T00:00:00+00:00"
        client.request(
            "POST",
            "/api/v2/dags/batch_score/dagRuns",
            {
                "dag_run_id": run_id,
                "logical_date": None,
                "conf": {"interval_start": start, "interval_end": end},
            },
        )
    client.wait_for(lambda: _succeeded(client, "batch_score", list(SCORED_DAYS)), WAIT_SECONDS, "scoring")
    client.wait_for(lambda: _succeeded(client, "features"), WAIT_SECONDS, "features")

    # Every planned fault fired once, killing a task process that is gone, and Airflow retried that task.
    claims = {path.name: json.loads(path.read_text()) for path in Path(f"{plan_file}.claims").iterdir()}
    assert sorted(claims) == sorted(fault["id"] for fault in plan), "faults that never fired"
    retried = 0
    for fault_id, claim in claims.items():
        assert _process_gone(claim["pid"]), f"{fault_id}: the killed task process {claim['pid']} still runs"
        instances = [
            ti
            for ti in client.task_instances(claim["dag_id"], claim["run_id"])
            if ti["task_id"] == claim["task_id"]
        ]
        later = [ti for ti in instances if ti["try_number"] > int(claim["try_number"])]
        assert later and all(ti["state"] == "success" for ti in instances), (fault_id, instances)
        retried += 1

    # Registry: one retrain run, one version; its training runs: one finished, none left RUNNING.
    versions = registry.search_model_versions(f"name = '{MODEL}'")
    training_runs = [v.tags.get(lineage.TRAINING_RUN) for v in versions]
    duplicate_versions = len(training_runs) - len(set(training_runs))
    trains = registry.search_runs(
        [e.experiment_id for e in registry.search_experiments()],
        filter_string=f"tags.`{lineage.RUN_ID}` = '{retrain['dag_run_id']}' and tags.`{lineage.TASK_ID}` = 'train'",
    )
    finished = [r for r in trains if r.info.status == "FINISHED" and RESULT_TAG in r.data.tags]
    left_running = [r.info.run_id for r in trains if r.info.status == "RUNNING"]

    # Champion on a gate-passed version; the history has one move per promotion, in sequence, ending there.
    model_tags = dict(registry.get_registered_model(MODEL).tags)
    moves = promotion.history(model_tags, "champion")
    gated = {str(v.version): v.tags.get(lineage.GATE_PASSED) == "true" for v in versions}
    champion_tags = registry.get_model_version(MODEL, champion).tags
    history_errors = [
        problem
        for problem, bad in (
            ("moves out of sequence", [m.sequence for m in moves] != list(range(1, len(moves) + 1))),
            ("last move is not the champion", not moves or moves[-1].to_version != str(champion)),
            ("a move to an ungated version", not all(gated.get(m.to_version) for m in moves)),
            ("champion lacks its promoted tag", promotion.PROMOTED not in champion_tags),
            ("more moves than promote runs", len(moves) != 1),
        )
        if bad
    ]

    # Predictions: each day once, complete, no duplicate key, nothing partial or staged left visible.
    times = flights()["time_hour"]
    root = Path(environment["MLOPS_HOME"]) / "data" / "predictions" / f"model={MODEL}"
    duplicate_rows = wrong_counts = 0
    for run_id in SCORED_DAYS:
        published = client.xcom("batch_score", run_id, "publish")
        table = pq.read_table(published["uri"]).to_pandas()
        start, end = published["interval"]["start"], published["interval"]["end"]
        wrong_counts += len(table) != int(((times >= start) & (times < end)).sum())
        duplicate_rows += int(table.duplicated(KEYS).sum())
        assert published["model_version"] == str(champion)
    partitions = sorted(root.glob("interval=*/predictions.parquet"))
    leftovers = [
        p
        for p in root.parent.rglob("*")
        if p.is_file() and (p.name.endswith(".tmp") or "_staging" in p.parts)
    ]
    skew = [client.xcom("features", r["dag_run_id"], "check_skew") for r in _succeeded(client, "features")]

    report = {
        "faults_planned": len(plan),
        "faults_injected": len(claims),
        "retries_observed": retried,
        "by_task": {
            task: sum(1 for c in claims.values() if f"{c['dag_id']}.{c['task_id']}" == task)
            for task in sorted({f"{c['dag_id']}.{c['task_id']}" for c in claims.values()})
        },
        "lost": {
            "duplicate_model_versions": duplicate_versions,
            "extra_finished_training_runs": len(finished) - 1,
            "training_runs_left_running": len(left_running),
            "history_errors": len(history_errors),
            "duplicate_prediction_rows": duplicate_rows,
            "wrong_partition_row_counts": wrong_counts,
            "extra_or_missing_partitions": abs(len(partitions) - len(SCORED_DAYS)),
            "partial_or_staged_files": len(leftovers),
            "online_offline_mismatches": sum(s["mismatched"] for s in skew),
        },
        "detail": {"history_errors": history_errors, "leftovers": [str(p) for p in leftovers]},
    }
    (home / "fault_report.json").write_text(json.dumps(report, indent=2))
    print("fault injection report:", json.dumps(report, indent=2))
    assert report["faults_injected"] == report["retries_observed"] == len(plan) >= 20
    assert report["lost"] == dict.fromkeys(report["lost"], 0), report
    assert promote["dag_run_id"] and len(versions) == 1
