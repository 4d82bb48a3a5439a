"""The lifecycle under the real Airflow: ``airflow standalone`` (scheduler, dag-processor, triggerer, API
server), DAGs unpaused and triggered over the REST API with ``logical_date`` null, as a person or a CI system
would, not through ``dag.test()``.
"""

from __future__ import annotations

import json
import time
import urllib.error
from pathlib import Path

import pytest

from tests.airflow_rest import RETRAIN_TASKS, RUN_SECONDS, Airflow
from tests.e2e.standalone import airflow_standalone

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def airflow(tmp_path_factory):
    # The embedded deployment `make up` runs, in a home of its own and on a free port.
    with airflow_standalone(tmp_path_factory.mktemp("standalone"), {"ingest_flights", "retrain"}) as running:
        yield running


def test_rest_triggered_ingest_feeds_a_retrain_that_registers_through_the_scheduler(airflow):
    client, environment = airflow
    client.request("PATCH", "/api/v2/dags/ingest_flights", {"is_paused": False})
    ingest = client.request(
        "POST", "/api/v2/dags/ingest_flights/dagRuns", {"logical_date": None, "conf": {"through_month": 2}}
    )
    client.wait_for(
        lambda: (
            {r["dag_run_id"]: r["state"] for r in client.runs("ingest_flights")}.get(ingest["dag_run_id"])
            == "success"
        ),
        RUN_SECONDS,
        "ingest_flights to succeed",
    )

    # Unpausing starts the latest weekly run, and the asset event from ingest queues another: the first to
    # get through trains on the landed months; the other waits, deferred, for newer data.
    client.request("PATCH", "/api/v2/dags/promote", {"is_paused": False})
    client.request("PATCH", "/api/v2/dags/retrain", {"is_paused": False})
    succeeded = client.wait_for(
        lambda: (
            [r for r in client.runs("retrain") if r["state"] == "success"]
            or (_fail_on_failed_runs(client) and None)
        ),
        RUN_SECONDS,
        "a retrain run to succeed",
    )[0]
    tasks = {
        t["task_id"]: t
        for t in client.request(
            "GET", f"/api/v2/dags/retrain/dagRuns/{succeeded['dag_run_id']}/taskInstances"
        )["task_instances"]
    }
    assert {task: t["state"] for task, t in tasks.items()} == dict.fromkeys(RETRAIN_TASKS, "success")
    assert tasks["train"]["pool"] == "gpu"
    registered = client.request(
        "GET",
        f"/api/v2/dags/retrain/dagRuns/{succeeded['dag_run_id']}/taskInstances/register/xcomEntries/return_value",
    )["value"]
    registered = json.loads(registered) if isinstance(registered, str) else registered

    registry = _registry(environment)
    assert registry.get_registered_model("flight_delay").aliases == {"challenger": int(registered["version"])}
    tags = registry.get_model_version("flight_delay", registered["version"]).tags
    assert tags["mlops.airflow.run_id"] == succeeded["dag_run_id"]
    expected_reason = "new data version" if succeeded["run_type"] == "asset_triggered" else "scheduled run"
    assert tags["mlops.trigger_reason"] == expected_reason


def _fail_on_failed_runs(client: Airflow) -> bool:
    failed = [r["dag_run_id"] for r in client.runs("retrain") if r["state"] == "failed"]
    assert not failed, f"retrain runs failed: {failed}"
    return False


def _registry(environment):
    import mlflow

    uri = f"sqlite:///{environment['MLOPS_HOME']}/mlflow.db"
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def _aliases(registry) -> dict[str, str]:
    return {
        alias: str(version)
        for alias, version in registry.get_registered_model("flight_delay").aliases.items()
    }


def _history(registry) -> list:
    from mlops_ops.core.promotion import history

    return history(dict(registry.get_registered_model("flight_delay").tags), "champion")


def _promote_runs(client: Airflow) -> list[str]:
    return [run["dag_run_id"] for run in sorted(client.runs("promote"), key=lambda run: run["run_after"])]


def test_the_challenger_asset_starts_a_promotion_that_a_human_approves_over_rest(airflow):
    client, environment = airflow
    registry = _registry(environment)
    run_id = client.wait_for(
        lambda: _promote_runs(client), 60, "the challenger asset event to start a promote run"
    )[0]

    answer = client.answer("promote", run_id, "approve", "Approve", "first champion, gate passed")
    assert answer["chosen_options"] == ["Approve"]
    assert client.wait_run("promote", run_id) == "success"

    request = client.xcom("promote", run_id, "request")
    assert request["approval_needed"] is True and "| roc_auc |" in request["body"]
    assert _aliases(registry)["champion"] == request["version"]
    (move,) = _history(registry)
    assert (move.from_version, move.to_version, move.kind) == (None, request["version"], "promotion")
    assert move.actor == "admin" and move.reason == "first champion, gate passed"
    assert move.airflow_run == f"promote/{run_id}"
    tags = registry.get_model_version("flight_delay", request["version"]).tags
    import mlflow

    card = mlflow.artifacts.load_text(tags["mlops.model_card.markdown_uri"])
    assert f"# Model card: flight_delay v{request['version']}" in card and "admin" in card
    assert json.loads(tags["mlops.promotion.decision"])["outcome"] == "promoted"


def test_a_rejected_challenger_leaves_the_registry_unchanged(airflow):
    client, environment = airflow
    registry = _registry(environment)
    before_runs = set(_promote_runs(client))
    champion = _aliases(registry)["champion"]

    # New data: the retrain waiting for it registers a new challenger, whose asset event starts a promotion.
    assert (
        client.wait_run("ingest_flights", client.trigger("ingest_flights", {"through_month": 3})) == "success"
    )
    run_id = client.wait_for(
        lambda: [run for run in _promote_runs(client) if run not in before_runs],
        RUN_SECONDS,
        "a promote run for the new challenger",
    )[0]
    client.answer("promote", run_id, "approve", "Reject", "not convinced by March")
    assert client.wait_run("promote", run_id) == "success"

    states = client.task_states("promote", run_id)
    assert states["promote"] == "skipped" and states["record_decision"] == "success"
    request = client.xcom("promote", run_id, "request")
    assert request["version"] != champion
    assert _aliases(registry) == {"champion": champion, "challenger": request["version"]}
    assert len(_history(registry)) == 1
    decision = json.loads(
        registry.get_model_version("flight_delay", request["version"]).tags["mlops.promotion.decision"]
    )
    assert decision["outcome"] == "rejected" and decision["by"] == "admin"


def test_promote_by_hand_then_roll_back_with_one_trigger(airflow):
    client, environment = airflow
    registry = _registry(environment)
    first, challenger = _aliases(registry)["champion"], _aliases(registry)["challenger"]

    run_id = client.trigger("promote", {"version": challenger})
    client.answer("promote", run_id, "approve", "Approve", "March looks fine after all")
    assert client.wait_run("promote", run_id) == "success"
    assert _aliases(registry)["champion"] == challenger

    client.request("PATCH", "/api/v2/dags/rollback", {"is_paused": False})
    rollback = client.trigger("rollback", {"reason": "complaints from the ops desk"})
    assert client.wait_run("rollback", rollback) == "success"
    assert _aliases(registry)["champion"] == first
    last = _history(registry)[-1]
    assert (last.kind, last.from_version, last.to_version) == ("rollback", challenger, first)
    assert last.actor == "admin" and last.reason == "complaints from the ops desk"


def test_two_promotions_at_once_have_exactly_one_winner(airflow):
    client, environment = airflow
    registry = _registry(environment)
    champion, challenger = _aliases(registry)["champion"], _aliases(registry)["challenger"]
    moves_before = len(_history(registry))

    runs = [client.trigger("promote", {"version": challenger}) for _ in range(2)]
    for run_id in runs:
        client.answer("promote", run_id, "approve", "Approve", "both approvers agree")
    states = sorted(client.wait_run("promote", run_id) for run_id in runs)

    assert states == ["failed", "success"]
    assert _aliases(registry)["champion"] == challenger
    moves = _history(registry)
    assert len(moves) == moves_before + 1
    assert (moves[-1].from_version, moves[-1].to_version) == (champion, challenger)


def test_a_backfill_scores_each_day_once_with_the_champion(airflow):
    """Airflow 3's backfill (POST /api/v2/backfills) creates one batch_score run per day (two days of March
    2013, landed earlier); the scheduler runs them, each publishing its day's partition with the champion's version."""
    import pyarrow.parquet as pq

    from include.flights.data import flights

    client, environment = airflow
    champion = _aliases(_registry(environment))["champion"]
    # Unpaused, the DAG also starts its latest daily run (yesterday: no 2026 flights, an empty result).
    client.request("PATCH", "/api/v2/dags/batch_score", {"is_paused": False})
    body = {
        "dag_id": "batch_score",
        "from_date": "2013-03-02T00:00:00Z",
        "to_date": "2013-03-03T00:00:00Z",
        "max_active_runs": 2,
    }
    backfill = None
    for _ in range(10):  # SQLite: a busy scheduler holds the lock, and the API answers 503, retry later
        try:
            backfill = client.request("POST", "/api/v2/backfills", body)
            break
        except urllib.error.HTTPError as err:
            if err.code != 503:
                raise
            time.sleep(3)
    assert backfill is not None, "the backfill was never accepted"
    runs = client.wait_for(
        lambda: (
            (found := [r for r in client.runs("batch_score") if r["run_type"] == "backfill"])
            and all(r["state"] in ("success", "failed") for r in found)
            and found
        ),
        2 * RUN_SECONDS,
        f"the runs of backfill {backfill['id']} to finish",
    )
    assert {r["state"] for r in runs} == {"success"}, [(r["dag_run_id"], r["state"]) for r in runs]
    assert len(runs) == 2

    times = flights()["time_hour"]
    root = Path(environment["MLOPS_HOME"]) / "data" / "predictions" / "model=flight_delay"
    for run in runs:
        published = client.xcom("batch_score", run["dag_run_id"], "publish")
        start, end = run["data_interval_start"], run["data_interval_end"]
        assert published["interval"] == {
            "start": start.replace("Z", "+00:00"),
            "end": end.replace("Z", "+00:00"),
        }
        expected = int(((times >= start) & (times < end)).sum())
        assert published["rows"] == expected > 500 and published["model_version"] == champion
        assert pq.read_metadata(published["uri"]).num_rows == expected
        assert Path(published["uri"]).parent.parent == root
    assert len(list(root.glob("interval=*/predictions.parquet"))) == 2


def test_a_drift_request_retrains_through_the_asset_and_the_lineage_says_why(airflow):
    """monitor (triggered over REST) finds drift and updates the retrain-request asset; the scheduler starts
    retrain on it; that run waits for data the models were not trained on, trains when April lands, and the
    registered version records the request's reason."""
    client, environment = airflow
    registry = _registry(environment)
    before = {run["dag_run_id"] for run in client.runs("retrain")}
    client.unpause("monitor")
    # March 2 (scored by the backfill) with a drift window of two days against January-February: two days
    # cannot hold the week's mix of days, so day_of_week drifts (1 of 8 columns): at drift_share 0.1, drift.
    conf = {
        "interval_start": "2013-03-02",
        "interval_end": "2013-03-03",
        "drift_share": 0.1,
        "drift_window_days": 2,
    }
    monitor = client.trigger("monitor", conf)
    assert client.wait_run("monitor", monitor) == "success", client.task_states("monitor", monitor)
    drift = client.xcom("monitor", monitor, "check_drift")
    assert drift["drift_detected"] is True and "day_of_week" in drift["drifted_columns"]
    request = client.xcom("monitor", monitor, "request_retrain")
    assert request["send"] is True and request["reasons"][0] == drift["reason"]

    requested = client.wait_for(
        lambda: [
            run
            for run in client.runs("retrain")
            if run["dag_run_id"] not in before and run["run_type"] == "asset_triggered"
        ],
        RUN_SECONDS,
        "the retrain request to start a retrain run",
    )[0]
    # The champion and the challenger were trained on the landed months: the run waits for new data.
    assert (
        client.wait_run("ingest_flights", client.trigger("ingest_flights", {"through_month": 4})) == "success"
    )
    # It trains on January-April; whether the gate lets the new model through is the data's business (a failed
    # gate registers nothing); either way the training run records why it was made.
    state = client.wait_run("retrain", requested["dag_run_id"])
    states = client.task_states("retrain", requested["dag_run_id"])
    assert states["train"] == "success", states
    training = client.xcom("retrain", requested["dag_run_id"], "train")
    assert registry.get_run(training["run_id"]).data.tags["mlops.trigger_reason"] == request["reason"]
    if state == "success":
        registered = client.xcom("retrain", requested["dag_run_id"], "register")
        tags = registry.get_model_version("flight_delay", registered["version"]).tags
        assert tags["mlops.trigger_reason"] == request["reason"]
        assert tags["mlops.airflow.run_id"] == requested["dag_run_id"]
    else:
        assert states["evaluate_gate"] == "failed" and states["register"] == "upstream_failed", states
