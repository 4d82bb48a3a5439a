"""The lifecycle on the production topology, started natively (``tests/stack/native.py``): Airflow with the
CeleryExecutor on PostgreSQL + Redis, a ``default`` and a ``gpu`` Celery worker, MLflow's server on
PostgreSQL with artifacts on S3 (moto's server), behind MLflow's basic-auth app. DAGs are triggered over the
REST API and run by the real scheduler, as in production; nothing is mocked.

The lifecycle is a list of steps run in order (:data:`LIFECYCLE`); each DAG of the reference project is one
step function. To cover another DAG (``batch_score``, then ``monitor``), write its step below ``_promote``
and append it to :data:`LIFECYCLE`.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field
from datetime import date, datetime

import pytest

from tests.airflow_rest import RETRAIN_TASKS, RUN_SECONDS, Airflow
from tests.stack.native import NativeStack, missing_services

# The module fixture starts the stack and runs the whole lifecycle through the scheduler (ingest, retrain, promote,
# score, monitor, features, stream, compaction): 14-15 minutes on an idle 2-core machine, and pytest-timeout counts
# it against the first test. The suite's 900 s default left it 5% of room; a loaded machine went past it.
pytestmark = [pytest.mark.integration, pytest.mark.stack, pytest.mark.timeout(1800)]

MODEL = "flight_delay"
PROMOTE_TASKS = ("request", "ask_or_promote", "approve", "promote", "record_decision")


@pytest.fixture(scope="module")
def stack(tmp_path_factory, request):
    missing = missing_services()
    if missing:
        reason = (
            f"the production stack needs {', '.join(missing)} (start them, see docs/deployment/production.md, "
            "'The same topology without Docker')"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; .ci/run starts them in CI")
        pytest.skip(reason)
    native = NativeStack(tmp_path_factory.mktemp("stack"))
    failed_before = request.session.testsfailed
    try:
        client = native.start()
    except Exception:
        _report(request, native)
        raise
    try:
        yield native, client
    finally:
        if request.session.testsfailed > failed_before:
            _report(request, native)
        native.stop()


def _report(request, native: NativeStack) -> None:
    # Straight to the terminal: a module fixture's teardown output is not shown with the failed test.
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"\nLogs of the native stack ({native.logs}):\n{native.log_tails()}")


@dataclass
class Lifecycle:
    """What the steps found, for the steps after them and for the assertions."""

    runs: dict[str, str] = field(default_factory=dict)  # dag_id -> the run the lifecycle followed
    versions: dict[str, str] = field(default_factory=dict)  # alias -> version
    task_instances: dict[str, list[dict]] = field(default_factory=dict)  # dag_id -> its run's instances
    published: dict = field(default_factory=dict)  # batch_score's published partition
    drift: dict = field(default_factory=dict)  # monitor's drift check
    performance: dict = field(default_factory=dict)  # monitor's performance check
    streamed: dict = field(default_factory=dict)  # the day sent to the stream scorers, and its compaction


def _ingest(native: NativeStack, client: Airflow, lifecycle: Lifecycle) -> None:
    # Two months, as the standalone e2e test lands (with one month, evaluate_gate failed once here).
    run_id = client.trigger("ingest_flights", {"through_month": 2})
    assert client.wait_run("ingest_flights", run_id) == "success"
    lifecycle.runs["ingest_flights"] = run_id
    # Unpaused only now, so that the sensor's first poke finds the data: unpaused earlier, its weekly run
    # would poke an empty landing zone and defer for a whole poke interval (60 s).
    client.unpause("retrain")
    keys = [item["Key"] for item in native.s3_client().list_objects_v2(Bucket="mlops")["Contents"]]
    assert sorted(key for key in keys if key.startswith("data/flights/")) == [
        "data/flights/month=2013-01/part-0.parquet",
        "data/flights/month=2013-02/part-0.parquet",
    ]


def _retrain(native: NativeStack, client: Airflow, lifecycle: Lifecycle) -> None:
    # The asset event of ingest starts a retrain (unpausing may start the weekly one too: whichever gets
    # there first trains, the other waits, deferred, for newer data).
    def succeeded():
        runs = client.runs("retrain")
        failed = [run["dag_run_id"] for run in runs if run["state"] == "failed"]
        assert not failed, f"retrain runs failed: {failed}"
        return [run["dag_run_id"] for run in runs if run["state"] == "success"]

    run_id = client.wait_for(succeeded, RUN_SECONDS, "a retrain run to succeed")[0]
    lifecycle.runs["retrain"] = run_id
    lifecycle.task_instances["retrain"] = client.task_instances("retrain", run_id)
    lifecycle.versions["challenger"] = str(client.xcom("retrain", run_id, "register")["version"])


def _promote(native: NativeStack, client: Airflow, lifecycle: Lifecycle) -> None:
    run_id = client.wait_for(
        lambda: [run["dag_run_id"] for run in client.runs("promote")],
        RUN_SECONDS,
        "the challenger's asset event to start a promote run",
    )[0]
    client.answer("promote", run_id, "approve", "Approve", "approved over REST on the production stack")
    assert client.wait_run("promote", run_id) == "success"
    lifecycle.runs["promote"] = run_id
    lifecycle.task_instances["promote"] = client.task_instances("promote", run_id)
    lifecycle.versions["champion"] = str(client.xcom("promote", run_id, "request")["version"])


def _batch_score(native: NativeStack, client: Airflow, lifecycle: Lifecycle) -> None:
    # Unpaused only once a champion exists: its first (scheduled) run pins the champion.
    client.unpause("batch_score")
    run_id = client.trigger("batch_score", {"interval_start": "2013-02-01", "interval_end": "2013-02-02"})
    assert client.wait_run("batch_score", run_id) == "success", client.task_states("batch_score", run_id)
    lifecycle.runs["batch_score"] = run_id
    lifecycle.task_instances["batch_score"] = client.task_instances("batch_score", run_id)
    lifecycle.published = client.xcom("batch_score", run_id, "publish")


def _monitor(native: NativeStack, client: Airflow, lifecycle: Lifecycle) -> None:
    # February 1 (scored above), the week up to it against the champion's own training months: no drift.
    client.unpause("monitor")
    run_id = client.trigger("monitor", {"interval_start": "2013-02-01", "interval_end": "2013-02-02"})
    assert client.wait_run("monitor", run_id) == "success", client.task_states("monitor", run_id)
    lifecycle.runs["monitor"] = run_id
    lifecycle.task_instances["monitor"] = client.task_instances("monitor", run_id)
    lifecycle.drift = client.xcom("monitor", run_id, "check_drift")
    lifecycle.performance = client.xcom("monitor", run_id, "check_performance")


def _features(native: NativeStack, client: Airflow, lifecycle: Lifecycle) -> None:
    # Materialize the landed months into the Feast online store on Redis, then online = offline on a sample.
    client.unpause("features")
    run_id = client.trigger("features", {"end": "2013-02-28T00:00:00Z"})
    assert client.wait_run("features", run_id) == "success", client.task_states("features", run_id)
    lifecycle.runs["features"] = run_id
    lifecycle.task_instances["features"] = client.task_instances("features", run_id)


def _stream(native: NativeStack, client: Airflow, lifecycle: Lifecycle) -> None:
    # February 2 (its online features materialized above) as events to the two stream scorers, then compacted.
    import redis

    from include.flights.data import flights
    from mlops_dev.stream_replay import flight_events, flights_of_day
    from tests.stack.native import REDIS

    events = list(flight_events(flights_of_day(flights(2), date(2013, 2, 2))))
    server = redis.Redis(host=REDIS[0], port=REDIS[1])
    pipe = server.pipeline(transaction=False)
    for fields in events:
        pipe.xadd(native.streams["events"], fields)
    pipe.execute()
    written = lambda: server.xlen(native.streams["predictions"]) + server.xlen(native.streams["dead-letters"])  # noqa: E731
    client.wait_for(
        lambda: written() >= len(events), RUN_SECONDS, f"the stream scorers to score {len(events)} events"
    )
    client.unpause("stream_compaction")
    run_id = client.trigger(
        "stream_compaction", {"interval_start": "2013-02-02", "interval_end": "2013-02-03"}
    )
    assert client.wait_run("stream_compaction", run_id) == "success", client.task_states(
        "stream_compaction", run_id
    )
    lifecycle.runs["stream_compaction"] = run_id
    lifecycle.streamed = {
        "events": len(events),
        "dead_letters": server.xlen(native.streams["dead-letters"]),
        "compacted": client.xcom("stream_compaction", run_id, "compact"),
    }


LIFECYCLE = (_ingest, _retrain, _promote, _batch_score, _monitor, _features, _stream)
#: DAGs unpaused before the first step (retrain: see _ingest); a new step's DAG goes here too.
DAGS = ("ingest_flights", "promote", "gpu_pool_probe")


@pytest.fixture(scope="module")
def lifecycle(stack, request) -> Lifecycle:
    native, client = stack
    for dag_id in DAGS:
        client.unpause(dag_id)
    result = Lifecycle()
    # Three tasks that want the gpu pool, triggered beside the lifecycle so they compete with `train`.
    result.runs["gpu_pool_probe"] = client.trigger("gpu_pool_probe", {})
    try:
        for step in LIFECYCLE:
            step(native, client, result)
    except Exception:
        _report(request, native)
        raise
    return result


def test_every_lifecycle_task_succeeds_through_the_scheduler(lifecycle):
    assert {ti["task_id"]: ti["state"] for ti in lifecycle.task_instances["retrain"]} == dict.fromkeys(
        RETRAIN_TASKS, "success"
    )
    assert {ti["task_id"]: ti["state"] for ti in lifecycle.task_instances["promote"]} == dict.fromkeys(
        PROMOTE_TASKS, "success"
    )
    assert lifecycle.versions["champion"] == lifecycle.versions["challenger"]


def test_training_runs_on_the_gpu_queue_worker_and_the_rest_on_the_default_worker(stack, lifecycle):
    native, _ = stack
    host = socket.gethostname()
    instances = {ti["task_id"]: ti for ti in lifecycle.task_instances["retrain"]}
    train = instances.pop("train")
    assert (train["queue"], train["pool"], train["hostname"]) == ("gpu", "gpu", f"gpu@{host}")
    for task_id, ti in instances.items():
        assert (ti["queue"], ti["hostname"]) == ("default", f"default@{host}"), task_id

    # The Celery workers' own logs: the gpu worker received the train workload, the default one did not.
    run_id = lifecycle.runs["retrain"]
    gpu_log = native.processes["worker-gpu"].log.read_text(errors="replace")
    default_log = native.processes["worker-default"].log.read_text(errors="replace")
    received = [line for line in gpu_log.splitlines() if "Executing workload" in line and run_id in line]
    assert any("task_id='train'" in line for line in received), gpu_log[-3000:]
    assert not any("task_id='train'" in line and run_id in line for line in default_log.splitlines()), (
        "the default worker ran train"
    )
    assert any("task_id='validate'" in line and run_id in line for line in default_log.splitlines())


def test_the_champion_is_registered_on_the_mlflow_server_with_its_artifacts_on_s3(
    stack, lifecycle, monkeypatch
):
    import mlflow

    native, _ = stack
    # Read as a person would: the read-only account of MLflow's basic-auth app.
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", native.mlflow_auth.viewer.username)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", native.mlflow_auth.viewer.password)
    registry = mlflow.MlflowClient(tracking_uri=native.mlflow_url, registry_uri=native.mlflow_url)
    aliases = {alias: str(v) for alias, v in registry.get_registered_model(MODEL).aliases.items()}
    assert aliases == {
        "champion": lifecycle.versions["champion"],
        "challenger": lifecycle.versions["champion"],
    }

    # Artifacts go through the server's proxy (mlflow-artifacts:/) to its --artifacts-destination on S3.
    location = registry.get_model_version_download_uri(MODEL, aliases["champion"])
    assert location.startswith("mlflow-artifacts:/"), location
    prefix = "artifacts/" + location.removeprefix("mlflow-artifacts:").lstrip("/")
    listing = native.s3_client().list_objects_v2(Bucket="mlflow", Prefix=prefix)
    files = {item["Key"].removeprefix(prefix).lstrip("/") for item in listing.get("Contents", [])}
    assert "MLmodel" in files, f"no model under s3://mlflow/{prefix}: {sorted(files)}"
    # The held-out rows the gate scored are on S3 too, beside the landed data.
    evaluation = native.s3_client().list_objects_v2(Bucket="mlops", Prefix=f"data/evaluation/{MODEL}/")
    assert evaluation.get("KeyCount", 0) >= 1


def test_the_signed_alias_log_is_a_table_of_the_metadata_database_signed_with_the_stacks_key(
    stack, lifecycle
):
    """The workers sign and record through mlops_trust_default (the production profile), never an embedded key."""
    from mlops_ops.core import alias_log
    from mlops_ops.core.signing import VerificationKeys

    native, _ = stack
    store = alias_log.open_store(native._database_url(native.databases["airflow"]))
    keys = VerificationKeys.from_texts([native.signing_key.public_text])
    champion = alias_log.history(store, keys, MODEL, "champion")
    challenger = alias_log.history(store, keys, MODEL, "challenger")
    assert champion[-1].to_version == lifecycle.versions["champion"] and champion[-1].move == "promotion"
    assert {record.key_id for record in champion + challenger} == {native.signing_key.key_id}
    assert challenger[-1].move == "registration" and challenger[-1].airflow_run.startswith("retrain/")
    # No worker fell back to an embedded key of its own.
    assert not list((native.work_dir / "mlops").rglob("signing-key.pem"))


def test_mlflow_refuses_anonymous_callers_and_people_cannot_move_the_champion(stack, lifecycle):
    """The lifecycle above wrote the registry as the service account of mlflow_default; nobody else can."""
    import base64
    import urllib.error
    import urllib.request

    native, _ = stack

    def call(path: str, account=None, payload: dict | None = None) -> int:
        headers = {"Content-Type": "application/json"}
        if account is not None:
            token = base64.b64encode(f"{account.username}:{account.password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(f"{native.mlflow_url}{path}", data=data, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status
        except urllib.error.HTTPError as err:
            return err.code

    viewer = native.mlflow_auth.viewer
    assert call("/api/2.0/mlflow/registered-models/search") == 401
    assert call("/api/2.0/mlflow/registered-models/search", viewer) == 200
    # What the MLflow UI's "Promote model" / alias editor sends, as the person's read-only account.
    move = {"name": MODEL, "alias": "champion", "version": "1"}
    assert call("/ajax-api/2.0/mlflow/registered-models/alias", viewer, move) == 403
    assert call("/api/2.0/mlflow/registered-models/alias", viewer, {**move, "alias": "rogue"}) == 403
    assert call("/api/2.0/mlflow/registered-models/alias", None, move) == 401


def test_batch_scoring_publishes_the_interval_on_s3_with_the_champion(stack, lifecycle):
    from include.flights.data import flights

    native, _ = stack
    times = flights()["time_hour"]
    expected = int(((times >= "2013-02-01") & (times < "2013-02-02")).sum())
    key = f"data/predictions/model={MODEL}/interval=20130201T0000Z_20130202T0000Z/predictions.parquet"
    published = lifecycle.published
    assert published["uri"] == f"s3://mlops/{key}"
    assert (published["rows"], published["model_version"]) == (expected, lifecycle.versions["champion"])
    # One object for the interval: the mapped shards' staging is gone, nothing half-written beside it (the
    # stream step's day is the other partition).
    listing = native.s3_client().list_objects_v2(Bucket="mlops", Prefix="data/predictions/")
    keys = [item["Key"] for item in listing["Contents"]]
    assert [name for name in keys if "interval=20130201T0000Z_20130202T0000Z" in name] == [key]
    assert [name for name in keys if "_staging" in name or name.endswith(".tmp")] == []
    shards = [ti for ti in lifecycle.task_instances["batch_score"] if ti["task_id"] == "score"]
    assert len(shards) == 2 and {ti["queue"] for ti in shards} == {"default"}


def test_monitoring_checks_drift_against_the_champions_training_data_and_reports_on_s3(stack, lifecycle):
    native, _ = stack
    states = {ti["task_id"]: ti["state"] for ti in lifecycle.task_instances["monitor"]}
    # One day's ~900 flights: the decay rule may fire on a day the model was trained on (1-2 a month); only
    # then is a retrain requested.
    decayed = lifecycle.performance["decay"]["retrain_requested"]
    assert states == {
        "plan_interval": "success",
        "check_drift": "success",
        "check_performance": "success",
        "request_retrain": "success" if decayed else "skipped",
        "alert": "success",
    }
    drift = lifecycle.drift
    assert drift["model_version"] == lifecycle.versions["champion"] and drift["drift_detected"] is False
    assert lifecycle.performance["model_version"] == drift["model_version"]
    assert lifecycle.performance["labelled_rows"] > 500
    key = f"data/monitoring/model={MODEL}/interval=20130126T0000Z_20130202T0000Z/"
    assert drift["report_uri"] == f"s3://mlops/{key}drift_report_v{drift['model_version']}.html"
    listing = native.s3_client().list_objects_v2(Bucket="mlops", Prefix=key)
    assert sorted(item["Key"].rsplit("/", 1)[1] for item in listing["Contents"]) == [
        f"drift_report_v{drift['model_version']}.html",
        f"drift_v{drift['model_version']}.json",
    ]


def test_features_are_materialized_to_the_online_store_on_redis(stack, lifecycle):
    import redis

    from tests.stack.native import REDIS

    native, _ = stack
    states = {ti["task_id"]: ti["state"] for ti in lifecycle.task_instances["features"]}
    assert states == dict.fromkeys(("build_sources", "materialize", "check_skew"), "success")
    # Feast suffixes every online row's key with the project: the stack's own, on the machine's Redis.
    keys = redis.Redis(host=REDIS[0], port=REDIS[1]).scan_iter(match=f"*{native.name}", count=1000)
    assert sum(1 for _ in keys) > 100


def test_the_stream_scorers_score_a_day_and_compaction_publishes_it_on_s3(stack, lifecycle):
    """Two `mlops-ops stream` consumers of one group, on MLflow's read-only account and the trust rules' public
    key, score February 2 with the champion and the online features on Redis; stream_compaction writes the day
    beside batch scoring's on S3."""
    import io

    import pyarrow.parquet as pq

    native, _ = stack
    streamed = lifecycle.streamed
    compacted = streamed["compacted"]
    key = f"data/predictions/model={MODEL}/interval=20130202T0000Z_20130203T0000Z/predictions.parquet"
    assert compacted["uri"] == f"s3://mlops/{key}"
    # Nearly every flight is scored (the spec's bounds may refuse a few); none is scored twice.
    assert compacted["rows"] + streamed["dead_letters"] == streamed["events"]
    assert compacted["rows"] >= 0.95 * streamed["events"] and compacted["duplicates"] == 0
    assert compacted["versions"] == {lifecycle.versions["champion"]: compacted["rows"]}
    body = native.s3_client().get_object(Bucket="mlops", Key=key)["Body"].read()
    table = pq.read_table(io.BytesIO(body))
    assert (
        table.num_rows == compacted["rows"]
        and len(set(table.column("event_id").to_pylist())) == table.num_rows
    )
    # What the scorers' metrics endpoints count is what was written.
    scored = 0.0
    for text in native.scorer_metrics():
        for line in text.splitlines():
            if line.startswith("mlops_stream_events_total{") and 'outcome="scored"' in line:
                scored += float(line.rsplit(" ", 1)[1])
    assert scored == compacted["rows"]


def test_the_gpu_pool_never_runs_more_tasks_than_its_slots(stack, lifecycle):
    _, client = stack
    probe = lifecycle.runs["gpu_pool_probe"]
    assert client.wait_run("gpu_pool_probe", probe) == "success"
    slots = client.request("GET", "/api/v2/pools/gpu")["slots"]
    in_pool = [ti for ti in client.task_instances("gpu_pool_probe", probe)] + [
        ti for ti in lifecycle.task_instances["retrain"] if ti["task_id"] == "train"
    ]
    assert len(in_pool) == 4
    assert all((ti["pool"], ti["queue"], ti["state"]) == ("gpu", "gpu", "success") for ti in in_pool)

    # The most instances running at one instant, from their start and end times.
    events = sorted(
        (datetime.fromisoformat(ti[moment]), +1 if moment == "start_date" else -1)
        for ti in in_pool
        for moment in ("start_date", "end_date")
    )
    running = most = 0
    for _, change in events:  # at equal times, an end (-1) sorts before a start (+1)
        running += change
        most = max(most, running)
    print(
        "gpu pool:",
        [(ti["task_id"], ti["map_index"], ti["start_date"], ti["end_date"]) for ti in in_pool],
        f"at most {most} running at once",
    )
    assert slots == 1
    assert most <= slots, [
        (ti["task_id"], ti["map_index"], ti["start_date"], ti["end_date"]) for ti in in_pool
    ]


def test_the_stack_runs_on_the_production_profile(stack):
    native, client = stack
    mlflow = client.request("GET", "/api/v2/connections/mlflow_default")
    assert (mlflow["conn_type"], mlflow["host"]) == ("mlflow", native.mlflow_url)
    assert mlflow["login"] == native.mlflow_auth.service.username  # the one writer of the registry
    assert json.loads(mlflow["extra"]) == {"artifact_root": "mlflow-artifacts:/experiments"}
    aws = client.request("GET", "/api/v2/connections/aws_default")
    assert json.loads(aws["extra"]) == {"region_name": "us-east-1", "endpoint_url": native.s3_endpoint}
    assert client.request("GET", "/api/v2/connections/redis_default")["host"] == "127.0.0.1"
    postgres = client.request("GET", "/api/v2/connections/mlops_postgres")
    assert (postgres["host"], postgres["schema"]) == ("127.0.0.1", native.databases["airflow"])
    assert client.request("GET", "/api/v2/pools/gpu")["slots"] == 1
    assert client.request("GET", "/api/v2/variables/mlops_promotion_policy")["value"] == "manual"
