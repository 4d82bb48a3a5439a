"""A service dies in the middle of a task under the real scheduler: the MLflow tracking server during
``retrain.register``, the S3 endpoint during ``batch_score.publish``, Redis during ``features.materialize``.
Airflow retries each task with exponential backoff, each try fails in seconds with one line naming the
service, its endpoint and what the task was doing, the run fails, and nothing is half-done. Then the service
comes back, the failed task is cleared (the runbook's procedure), and the run completes exactly once.

``airflow standalone`` runs with ``tests/faults`` first on its ``PYTHONPATH``. Each case is a ``pause`` fault
of its ``sitecustomize``: the task stops at its planned point, the test kills the service (``kill -9`` of the
MLflow server and of a throwaway ``redis-server``; moto's S3 server closed), and the task goes on into the
outage. The task policy of its ``airflow_local_settings`` keeps the DAGs' retries (2) and backoff (x2) and
only shortens the base delay to 3-4 s, so the waits grow 3-4 s -> 6-11 s instead of 1-2 min -> 2-4 min.

The services are the test's own, on free ports of 127.0.0.1: an MLflow server (SQLite, artifacts proxied), a
Redis with an append-only file (the Feast online store, as the production profile's ``feast_default``), and
moto's S3 as the data root (landing zone and predictions, as in production). The counts go to
``service_down_report.json`` in the test's folder, and are printed.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from unittest import mock

import pytest

from mlops_ops.core import storage
from mlops_ops.hooks.trust import TRUST_HOME_ENV
from tests.airflow_rest import Airflow
from tests.e2e.standalone import PROJECT_ROOT, airflow_standalone
from tests.e2e.throwaway_services import MlflowServer, RedisServer, RestartableS3, python_environment
from tests.trust_support import record_alias

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

MODEL = "flight_delay"
BUCKET = "mlops"
DATA_ROOT = f"s3://{BUCKET}/data"
FAULTS_FOLDER = PROJECT_ROOT / "tests" / "faults"
#: Base retry delays of the test deployment (seconds; the DAGs say 30-60 s). Airflow waits a try-dependent
#: share of [d, 2d) with d = base * 2^(try - 1); these bases make each case's two waits clearly grow.
RETRY_DELAYS = {"*": 3, "features.materialize": 4}
BACKOFF = 2.0  # the DAGs' retry_exponential_backoff
TRIES = 3  # the DAGs' retries (2) + 1
SCORED = ("2013-01-10T00:00:00+00:00", "2013-01-11T00:00:00+00:00")
RUNS = {
    "retrain": "service_down_retrain",
    "features": "service_down_features",
    "batch_score": "service_down_score",
}
WAIT_SECONDS = 600
#: A try against a dead service must fail, client retries included, well before MLflow's default client
#: retries alone would (about 4 min): the tries measured 2-55 s, mostly the task process starting, on the
#: shared 2-core machine at load average 5-17.
TRY_SECONDS = 120

CASES = {
    "mlflow": {
        "dag_id": "retrain",
        "task_id": "register",
        # After the task looked its training run up in MLflow, before it registers the version.
        "target": "mlops_ops.hooks.mlflow:MlflowHook.register_model",
        "when": "before",
        "message": "MLflow tracking server {endpoint} unreachable while registering flight_delay: ",
    },
    "redis": {
        "dag_id": "features",
        "task_id": "materialize",
        # After the first feature view was written to Redis, before the next one is.
        "target": "feast.infra.online_stores.redis:RedisOnlineStore.online_write_batch",
        "when": "after",
        "message": "Redis online store redis://{endpoint} unreachable while materializing every feature view",
    },
    "s3": {
        "dag_id": "batch_score",
        "task_id": "publish",
        # The shard is staged on S3; the partition is about to be moved into place.
        "target": "mlops_ops.core.scoring.batch:move",
        "when": "before",
        "arg_endswith": "predictions.parquet",
        "message": "S3 endpoint {endpoint} unreachable while publishing the predictions of [2013-01-10",
    },
}


def outage_plan() -> list[dict]:
    plan = []
    for service, case in CASES.items():
        fault = {
            key: case[key] for key in ("dag_id", "task_id", "target", "when", "arg_endswith") if key in case
        }
        plan.append({"id": f"{service}-down", "service": service, "action": "pause", **fault})
    return plan


class Outages:
    """Kills the service a paused task's fault names, then lets the task go on (``<id>.done``)."""

    def __init__(self, plan: Path, services: dict) -> None:
        self.claims = Path(f"{plan}.claims")
        self.faults = {fault["id"]: fault for fault in json.loads(plan.read_text())}
        self.services = services
        self.claimed: dict[str, dict] = {}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="outages", daemon=True)

    def __enter__(self) -> Outages:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _watch(self) -> None:
        while not self._stop.wait(0.2):
            for fault_id, fault in self.faults.items():
                claim = self.claims / fault_id
                if fault_id in self.claimed or not claim.exists():
                    continue
                try:
                    record = json.loads(claim.read_text())
                except ValueError:
                    continue  # being written
                try:
                    self.services[fault["service"]].kill()
                except Exception as err:  # reported by the test, which would otherwise wait in vain
                    self.errors.append(f"{fault_id}: {type(err).__name__}: {err}")
                self.claimed[fault_id] = record
                (self.claims / f"{fault_id}.done").touch()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    from include.flights import data

    started = time.monotonic()
    home = tmp_path_factory.mktemp("service_down")
    python = python_environment(home)
    redis = RedisServer(home / "redis", python)  # skips (fails in CI) without redis-server
    mlflow = MlflowServer(home / "mlflow", python)
    s3 = RestartableS3()
    try:
        mlflow.start(wait=False)  # ~20 s: starts while Airflow's database is migrated
        redis.start()
        s3.start()
        s3.reset()
        s3.client().create_bucket(Bucket=BUCKET)
        object_store = storage.ObjectStore(
            "s3",
            {
                "access_key": "test",
                "secret_key": "test",  # pragma: allowlist secret
                "region": "us-east-1",
                "endpoint_override": f"127.0.0.1:{s3.port}",
                "scheme": "http",
            },
        )
        for month in (1, 2):
            data.land_month(DATA_ROOT, month, object_store)
        plan = home / "outage_plan.json"
        plan.write_text(json.dumps(outage_plan()))
        extra = {
            "PYTHONPATH": str(FAULTS_FOLDER),
            "MLOPS_FAULT_PLAN": str(plan),
            "MLOPS_TEST_RETRY_DELAYS": json.dumps(RETRY_DELAYS),
            "MLOPS_TEST_MIN_RETRIES": "0",
            "MLOPS_TEST_KEEP_BACKOFF": "1",
            "MLOPS_TEST_UNSCHEDULED_DAGS": "retrain,features,batch_score",
            "MLOPS_DATA_ROOT": DATA_ROOT,
            # The deployment's signing key and alias log (the test records the champion it sets there).
            TRUST_HOME_ENV: str(home / "trust"),
            "AWS_ENDPOINT_URL": s3.endpoint,
            "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(
                {
                    "conn_type": "aws",
                    "login": "test",
                    "password": "test",
                    "extra": {"region_name": "us-east-1"},
                }
            ),
            "AIRFLOW_CONN_MLFLOW_DEFAULT": json.dumps(
                {
                    "conn_type": "mlflow",
                    "host": mlflow.url,
                    "extra": {"artifact_root": "mlflow-artifacts:/experiments"},
                }
            ),
            "AIRFLOW_CONN_FEAST_DEFAULT": json.dumps(
                {
                    "conn_type": "feast",
                    "host": str(PROJECT_ROOT / "include" / "flights" / "feature_repo"),
                    "extra": {
                        "project": f"service_down_{redis.port}",
                        # As the production profile writes it. (A bare "host:port" would be masked in every
                        # log line: Airflow hides the values of extras named connection_string.)
                        "online_store": {
                            "type": "redis",
                            "connection_string": f"127.0.0.1:{redis.port},db=0",
                        },
                    },
                }
            ),
            **{
                key: python[key]
                for key in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
                if key in python
            },
        }
        services = {"mlflow": mlflow, "redis": redis, "s3": s3}
        with airflow_standalone(home, set(RUNS), extra) as (client, environment):
            mlflow.wait_ready()
            with Outages(plan, services) as outages:
                yield {
                    "client": client,
                    "environment": environment,
                    "home": home,
                    "services": services,
                    "outages": outages,
                    "started": started,
                }
    finally:
        for service in (mlflow, redis, s3):
            service.stop()


# --- reading the evidence -----------------------------------------------------------------------------------


def _parse(moment: str | None) -> float | None:
    return datetime.fromisoformat(moment.replace("Z", "+00:00")).timestamp() if moment else None


def tries_of(client: Airflow, dag_id: str, run_id: str, task_id: str) -> list[dict]:
    """Every try of the task, oldest first (Airflow's task instance history and the current try)."""
    found = client.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/tries")
    return sorted(found["task_instances"], key=lambda ti: ti["try_number"])


def waits(tries: list[dict]) -> list[float]:
    """Seconds from each failed try's end to the scheduler's scheduling the next try."""
    return [
        round(_parse(later["scheduled_when"]) - _parse(earlier["end_date"]), 1)
        for earlier, later in zip(tries, tries[1:], strict=False)
        if earlier["end_date"] and later["scheduled_when"]
    ]


def minimum_waits(dag_id: str, task_id: str) -> list[int]:
    """The least Airflow may wait after each failed try: base * backoff^(try - 1), rounded up
    (``TaskInstance.next_retry_datetime`` adds a per-try share of that again, up to twice it)."""
    base = RETRY_DELAYS.get(f"{dag_id}.{task_id}", RETRY_DELAYS["*"])
    return [math.ceil(base * BACKOFF ** (number - 1)) for number in range(1, TRIES)]


def task_log(environment: dict, dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
    folder = Path(environment["AIRFLOW_HOME"]) / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
    return (folder / f"task_id={task_id}" / f"attempt={try_number}.log").read_text(errors="replace")


def finished(client: Airflow, dag_id: str, run_id: str) -> str | None:
    state = client.run_state(dag_id, run_id)
    return state if state in ("success", "failed") else None


def clear_failed(client: Airflow, dag_id: str, run_id: str, task_id: str) -> None:
    """What the runbook says once the service is back: clear the failed task and what it held up."""
    client.request(
        "POST",
        f"/api/v2/dags/{dag_id}/clearTaskInstances",
        {
            "dry_run": False,
            "dag_run_id": run_id,
            "task_ids": [task_id],
            "only_failed": True,
            "include_downstream": True,
            "reset_dag_runs": True,
        },
    )


def mlflow_get(url: str, path: str, **query) -> dict | None:
    """A GET of MLflow's REST API; ``None`` for a resource that does not exist."""
    try:
        with urllib.request.urlopen(
            f"{url}/api/2.0/mlflow/{path}?{urllib.parse.urlencode(query)}", timeout=30
        ) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as err:
        if err.code == 404:
            return None
        raise


def registry_state(url: str) -> dict:
    """``{"versions": {version: tags}, "aliases": {alias: version}}`` of the model on the MLflow server."""
    model = mlflow_get(url, "registered-models/get", name=MODEL)
    found = mlflow_get(url, "model-versions/search", filter=f"name='{MODEL}'") or {}
    versions = {
        v["version"]: {tag["key"]: tag["value"] for tag in v.get("tags", [])}
        for v in found.get("model_versions", [])
    }
    aliases = {a["alias"]: a["version"] for a in (model or {}).get("registered_model", {}).get("aliases", [])}
    return {"versions": versions, "aliases": aliases}


def materialized_views(environment: dict) -> dict[str, str | None]:
    """Each feature view of the Feast registry and the end of its last materialization claimed done."""
    from feast.protos.feast.core.Registry_pb2 import Registry

    proto = Registry()
    proto.ParseFromString(
        (Path(environment["MLOPS_HOME"]) / "features" / "feast" / "registry.db").read_bytes()
    )
    return {
        view.spec.name: (
            max(i.end_time.ToDatetime().isoformat() for i in view.meta.materialization_intervals)
            if view.meta.materialization_intervals
            else None
        )
        for view in proto.feature_views
    }


def s3_keys(s3: RestartableS3, prefix: str) -> list[str]:
    listing = s3.client().list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def case_record(deployment: dict, service: str, endpoint: str) -> dict:
    """The tries of the case's task and what its failed tries logged; asserts the retry behaviour."""
    case = CASES[service]
    dag_id, task_id, run_id = case["dag_id"], case["task_id"], RUNS[case["dag_id"]]
    client, environment = deployment["client"], deployment["environment"]
    tries = tries_of(client, dag_id, run_id, task_id)
    failed = [ti for ti in tries if ti["state"] == "failed"]
    message = case["message"].format(endpoint=endpoint)
    logged = [message in task_log(environment, dag_id, run_id, task_id, ti["try_number"]) for ti in failed]
    record = {
        "task": f"{dag_id}.{task_id}",
        "service": service,
        "endpoint": endpoint,
        "tries": [ti["try_number"] for ti in tries],
        "states": [ti["state"] for ti in tries],
        "waits_s": waits(failed),
        "minimum_waits_s": minimum_waits(dag_id, task_id),
        "try_seconds": [ti["duration"] and round(ti["duration"], 1) for ti in failed],
        "failed_tries_with_the_message": sum(logged),
        "message": message,
    }
    assert [ti["try_number"] for ti in failed] == list(range(1, TRIES + 1)), record
    assert all(logged), record
    assert len(record["waits_s"]) == TRIES - 1, record
    assert all(w >= least for w, least in zip(record["waits_s"], record["minimum_waits_s"], strict=True)), (
        record
    )
    assert record["waits_s"] == sorted(record["waits_s"]) and record["waits_s"][0] < record["waits_s"][-1], (
        record
    )
    assert all(seconds is not None and seconds < TRY_SECONDS for seconds in record["try_seconds"]), record
    return record


# --- the test -----------------------------------------------------------------------------------------------


def test_services_down_mid_task_are_retried_with_backoff_fail_clearly_and_leave_nothing_half_done(deployment):
    from include.flights.data import flights
    from mlops_ops.core import lineage

    client: Airflow = deployment["client"]
    environment, home = deployment["environment"], deployment["home"]
    mlflow, redis, s3 = (deployment["services"][name] for name in ("mlflow", "redis", "s3"))
    outages: Outages = deployment["outages"]
    lost: dict[str, int] = {}
    cases: dict[str, dict] = {}
    for dag_id in RUNS:
        client.unpause(dag_id)

    # Redis (the Feast online store) and MLflow (registration) go down in runs that go on side by side.
    now = datetime.now(UTC).isoformat()
    for dag_id, conf in (("features", {"end": now}), ("retrain", {"reason": "service-down test"})):
        client.request(
            "POST",
            f"/api/v2/dags/{dag_id}/dagRuns",
            {"dag_run_id": RUNS[dag_id], "logical_date": None, "conf": conf},
        )

    # --- Redis down during materialize ------------------------------------------------------------------
    assert (
        client.wait_for(lambda: finished(client, "features", RUNS["features"]), WAIT_SECONDS, "features")
        == "failed"
    )
    assert not outages.errors, outages.errors
    cases["redis"] = case_record(deployment, "redis", f"127.0.0.1:{redis.port}")
    claimed = materialized_views(environment)
    written_before = set(outages.claimed["redis-down"]["names"]) & set(claimed)
    # Only a view wholly written before Redis died may be claimed as materialized; none after it.
    cases["redis"]["views_written_before_the_outage"] = sorted(written_before)
    cases["redis"]["views_claimed_after_the_failure"] = sorted(view for view, end in claimed.items() if end)
    cases["redis"]["views_unclaimed_after_the_failure"] = sorted(
        view for view, end in claimed.items() if not end
    )
    lost["views_claimed_not_written"] = sum(
        1 for view, end in claimed.items() if end and view not in written_before
    )
    lost["failed_materialize_claimed_every_view"] = int(all(end is not None for end in claimed.values()))
    redis.start()
    clear_failed(client, "features", RUNS["features"], "materialize")

    # --- MLflow down during register -------------------------------------------------------------------
    assert (
        client.wait_for(lambda: finished(client, "retrain", RUNS["retrain"]), WAIT_SECONDS, "retrain")
        == "failed"
    )
    states = client.task_states("retrain", RUNS["retrain"])
    assert {task: state for task, state in states.items() if state != "success"} == {"register": "failed"}, (
        states
    )
    cases["mlflow"] = case_record(deployment, "mlflow", mlflow.url)
    mlflow.start()
    after_failure = registry_state(mlflow.url)
    lost["versions_registered_by_the_failed_register"] = len(after_failure["versions"])
    lost["aliases_set_by_the_failed_register"] = len(after_failure["aliases"])
    clear_failed(client, "retrain", RUNS["retrain"], "register")
    assert (
        client.wait_for(lambda: finished(client, "retrain", RUNS["retrain"]), WAIT_SECONDS, "retrain")
        == "success"
    )
    registered = registry_state(mlflow.url)
    (version,) = registered["versions"]
    lost["extra_versions_after_recovery"] = len(registered["versions"]) - 1
    tags = registered["versions"][version]
    lineage_tags = {lineage.TRAINING_RUN, lineage.DATA_VERSION, lineage.ARTIFACT_SHA256, lineage.GATE_PASSED}
    lost["versions_without_their_lineage"] = int(
        not lineage_tags <= set(tags) or tags[lineage.GATE_PASSED] != "true"
    )
    cases["mlflow"]["registered_by_try"] = int(tags[lineage.TRY_NUMBER])
    lost["aliases_wrong_after_recovery"] = int(registered["aliases"] != {"challenger": version})
    cases["mlflow"]["recovered"] = True

    # --- S3 down during publish ------------------------------------------------------------------------
    # Made champion as PromoteOperator would: a signed alias-log record, then the registry's alias.
    with mock.patch.dict(os.environ, {TRUST_HOME_ENV: environment[TRUST_HOME_ENV]}):
        record_alias(MODEL, "champion", version)
    urllib.request.urlopen(
        urllib.request.Request(
            f"{mlflow.url}/api/2.0/mlflow/registered-models/alias",
            data=json.dumps({"name": MODEL, "alias": "champion", "version": version}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        ),
        timeout=30,
    )
    client.request(
        "POST",
        "/api/v2/dags/batch_score/dagRuns",
        {
            "dag_run_id": RUNS["batch_score"],
            "logical_date": None,
            "conf": {"interval_start": SCORED[0], "interval_end": SCORED[1]},
        },
    )
    assert (
        client.wait_for(lambda: finished(client, "features", RUNS["features"]), WAIT_SECONDS, "features")
        == "success"
    )
    skew = client.xcom("features", RUNS["features"], "check_skew")
    lost["online_offline_mismatches"] = skew["mismatched"]
    lost["views_unclaimed_after_recovery"] = sum(
        1 for end in materialized_views(environment).values() if end is None
    )
    cases["redis"]["recovered"] = True

    score_run = RUNS["batch_score"]
    assert (
        client.wait_for(lambda: finished(client, "batch_score", score_run), WAIT_SECONDS, "batch_score")
        == "failed"
    )
    states = client.task_states("batch_score", score_run)
    assert {task: state for task, state in states.items() if state != "success"} == {"publish": "failed"}, (
        states
    )
    cases["s3"] = case_record(deployment, "s3", s3.endpoint)
    s3.start()
    predictions = "data/predictions/"
    partition = (
        "data/predictions/model=flight_delay/interval=20130110T0000Z_20130111T0000Z/predictions.parquet"
    )
    keys = s3_keys(s3, predictions)
    lost["partitions_published_by_the_failed_publish"] = sum(
        1 for key in keys if key.endswith("/predictions.parquet")
    )
    cases["s3"]["objects_after_the_failure"] = keys
    # The DAG's two staged shards are kept for the next try to publish.
    lost["staged_shards_lost"] = 2 - sum(1 for key in keys if "_staging/" in key and "/shard-" in key)
    lost["champion_moved"] = int(registry_state(mlflow.url)["aliases"].get("champion") != version)
    clear_failed(client, "batch_score", score_run, "publish")
    assert (
        client.wait_for(lambda: finished(client, "batch_score", score_run), WAIT_SECONDS, "batch_score")
        == "success"
    )
    published = client.xcom("batch_score", score_run, "publish")
    keys = s3_keys(s3, predictions)
    lost["extra_or_missing_partitions"] = abs(
        sum(1 for key in keys if key.endswith("/predictions.parquet")) - 1
    )
    lost["staged_or_temporary_objects_left"] = sum(
        1 for key in keys if "_staging" in key or key.endswith(".tmp")
    )
    lost["wrong_partition"] = int(
        published["uri"] != f"s3://{BUCKET}/{partition}" or published["model_version"] != version
    )
    times = flights(1)["time_hour"]
    lost["wrong_partition_rows"] = abs(
        published["rows"] - int(((times >= SCORED[0]) & (times < SCORED[1])).sum())
    )
    cases["s3"]["recovered"] = True

    report = {
        "cases": len(cases),
        "retries_observed": sum(len(case["tries"]) - 1 for case in cases.values()),
        "failed_tries_with_the_message": sum(
            case["failed_tries_with_the_message"] for case in cases.values()
        ),
        "recovered_after_clear": sum(1 for case in cases.values() if case.get("recovered")),
        "by_case": cases,
        "lost": lost,
        "published_rows": published["rows"],
        "wall_seconds": round(time.monotonic() - deployment["started"]),
    }
    (home / "service_down_report.json").write_text(json.dumps(report, indent=2))
    print("service-down report:", json.dumps(report, indent=2))
    assert report["lost"] == dict.fromkeys(report["lost"], 0), report
    assert report["cases"] == report["recovered_after_clear"] == 3
    assert report["retries_observed"] == 3 * (TRIES - 1)
    assert report["failed_tries_with_the_message"] == 3 * TRIES
    assert cases["mlflow"]["registered_by_try"] > TRIES  # by the cleared try, not one that met the outage
