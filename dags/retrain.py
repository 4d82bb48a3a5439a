"""Retrain flight_delay when a new data version lands (or weekly): validate, train, gate, register challenger."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, task

from mlops_ops.assets import dataset_asset, model_alias_asset, retrain_request_asset
from mlops_ops.core import settings, storage
from mlops_ops.core.retrain_requests import reason_from_events
from mlops_ops.notifiers.webhook import WebhookNotifier
from mlops_ops.operators.features import FeatureSetOperator
from mlops_ops.operators.gate import EvaluateGateOperator
from mlops_ops.operators.registry import RegisterOperator
from mlops_ops.operators.training import TrainOperator
from mlops_ops.operators.validation import DataValidationOperator
from mlops_ops.retry_policy import retry_default_args
from mlops_ops.sensors.data_version import DataVersionSensor

MODEL_NAME = "flight_delay"
MODEL_SPEC = "include/flights/model_spec.yaml"
#: The model spec's feature service (its `feature_store` section); TrainOperator refuses a set of another one.
FEATURE_SERVICE = "flight_delay_features"
FLIGHTS = dataset_asset("flights")
CHALLENGER = model_alias_asset(MODEL_NAME, "challenger")
RETRAIN_REQUEST = retrain_request_asset(MODEL_NAME)
#: Where ingest_flights lands the months: $MLOPS_DATA_ROOT/flights (a folder or an s3:// prefix).
LANDING = storage.join(settings.data_root(), "flights")
# The run type is read from the run id ("scheduled__...", "asset_triggered__..."): dag_run.run_type renders
# as "DagRunType.SCHEDULED" under the real scheduler.
# A run triggered by monitoring's retrain request records the request's reason (drift, decay).
TRIGGER_REASON = (
    "{{ params.reason or retrain_request_reason(triggering_asset_events)"
    " or ('new data version' if dag_run.run_id.startswith('asset_triggered')"
    " else dag_run.run_id.split('__')[0] ~ ' run') }}"
)

DOC = f"""
### Retrain `{MODEL_NAME}`

`wait_for_data` -> `validate` -> `build_feature_sources` -> `feature_set` -> `train` -> `evaluate_gate` ->
`register`

1. **wait_for_data** (`DataVersionSensor`): the content fingerprint of the landed flights under `{LANDING}`;
   waits (deferred) for a version that the current `champion` and `challenger` were not trained on, and skips
   the run after 6 hours without one. `force` accepts the current version; a pinned `data_version` is used as
   is, or fails the run at once when the landed files no longer hold it.
2. **validate** (`DataValidationOperator`): every month file against `include/flights/expectations/flights_raw.json`;
   fails without retry, listing each failed expectation with its file, column and examples.
3. **build_feature_sources**: the offline sources of the feature repository (weather, aircraft, rolling
   carrier/route delays) from the landed flights, under the Feast connection's feature root (unchanged
   files are left alone).
4. **feature_set** (`FeatureSetOperator`): the landed flights joined point-in-time with the feature service
   `{FEATURE_SERVICE}`, every row kept (missing features null and counted); written under the data root.
5. **train** (`TrainOperator`, pool `gpu`): `{MODEL_SPEC}` on that training set, logged to MLflow with
   lineage: `mlops.data_version` is the landed data's fingerprint, `mlops.feature_set` the set it read.
6. **evaluate_gate** (`EvaluateGateOperator`): challenger vs `champion` on the same held-out rows against
   `include/flights/gate.yaml`; a failing gate stops here, listing each failing check.
7. **register** (`RegisterOperator`): a version of `{MODEL_NAME}` with alias `challenger` (no second version for
   a retry or an identical training), updating the `{CHALLENGER.name}` asset.

Scheduled weekly (Monday 03:00 UTC), whenever `{FLIGHTS.name}` is updated, and whenever monitoring requests a
retrain (`{RETRAIN_REQUEST.name}`, sent by the `monitor` DAG on drift): the request's reason becomes the trigger
reason recorded on the run and the registered version (`mlops.trigger_reason`). A request still needs data the
champion was not trained on: `wait_for_data` waits for it (or `force`).

**Trigger by hand** (Trigger -> the form): `reason` (recorded on the model), `data_version` (pin a data
fingerprint, e.g. to reproduce a model), `force` (retrain on data already trained on), `code_revision` (what a CI
job sets through `mlops-ops ci retrain`: the run fails unless the workers run that revision). The `train` task links
to its MLflow run, `register` to the new model version.
"""


@dag(
    dag_id="retrain",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 3 * * 1", timezone="UTC"), assets=FLIGHTS | RETRAIN_REQUEST
    ),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["mlops", "training", MODEL_NAME],
    doc_md=DOC,
    render_template_as_native_obj=True,
    user_defined_macros={"retrain_request_reason": reason_from_events},
    default_args=retry_default_args(timedelta(minutes=1)),
    params={
        "reason": Param(
            None,
            # Nullable: the trigger form marks a plain "string" required and refuses it empty.
            type=["null", "string"],
            maxLength=500,
            title="Reason",
            description="Why retrain now; recorded on the model version as mlops.trigger_reason",
        ),
        "data_version": Param(
            None,
            type=["null", "string"],
            pattern="^((sha256|md5):[0-9a-f]{32,64})?$",
            title="Pinned data version",
            description="A data fingerprint (sha256:..., as in a model version's mlops.data_version tag) to "
            "train on exactly that version: the run fails if the landed flights no longer hold it. "
            "Empty: wait for a version not trained on yet",
        ),
        "force": Param(
            False,
            type="boolean",
            title="Force",
            description="Train even if the current data version was trained on before",
        ),
        "code_revision": Param(
            None,
            type=["null", "string"],
            pattern="^[0-9A-Za-z._-]{0,64}$",
            title="Code revision",
            description="The revision a CI job retrains for (mlops-ops ci retrain): the run fails unless the "
            "workers run it. Empty: whatever they run",
        ),
    },
)
def retrain():
    wait_for_data = DataVersionSensor(
        task_id="wait_for_data",
        source=LANDING,
        registered_model_name=MODEL_NAME,
        accept_seen="{{ params.force }}",
        pinned_fingerprint="{{ params.data_version }}",
        poke_interval=60,
        timeout=6 * 3600,
        soft_fail=True,
    )
    validate = DataValidationOperator(
        task_id="validate",
        data_version=wait_for_data.output,
        suite="include/flights/expectations/flights_raw.json",
    )

    @task(task_id="build_feature_sources")
    def build_feature_sources() -> dict:
        from include.flights.feature_sources import build_deployment_sources

        return build_deployment_sources()

    feature_set = FeatureSetOperator(
        task_id="feature_set",
        entities=wait_for_data.output,
        feature_service=FEATURE_SERVICE,
        timestamp_column="time_hour",
        prepare="include.flights.feature_sources:with_route",
        # wind_gust alone is missing in 71% of 2013's observations; a broken source leaves every row without.
        max_missing_rate=0.9,
    )
    train = TrainOperator(
        task_id="train",
        model_spec=MODEL_SPEC,
        data_version=wait_for_data.output,
        feature_set=feature_set.output,
        trigger_reason=TRIGGER_REASON,
        expected_code_revision="{{ params.code_revision }}",
        gpu=True,
        gpu_queue=os.environ.get("MLOPS_GPU_QUEUE") or None,
        execution_timeout=timedelta(hours=2),
    )
    gate = EvaluateGateOperator(
        task_id="evaluate_gate",
        training=train.output,
        model_spec=MODEL_SPEC,
        policy="include/flights/gate.yaml",
        on_failure_callback=WebhookNotifier(
            f"{MODEL_NAME}: the challenger of run {{{{ run_id }}}} failed its evaluation gate; nothing registered"
        ),
    )
    register = RegisterOperator(
        task_id="register",
        training=train.output,
        decision=gate.output,
        trigger_reason=TRIGGER_REASON,
        outlets=[CHALLENGER],
    )
    wait_for_data >> validate >> build_feature_sources() >> feature_set >> train >> gate >> register


retrain()
