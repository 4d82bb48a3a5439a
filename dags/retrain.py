"""Retrain flight_delay when a new data version lands (or weekly): validate, train, gate, register challenger."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, dag

from mlops_ops.assets import dataset_asset, model_alias_asset
from mlops_ops.core import settings, storage
from mlops_ops.notifiers.webhook import WebhookNotifier
from mlops_ops.operators.gate import EvaluateGateOperator
from mlops_ops.operators.registry import RegisterOperator
from mlops_ops.operators.training import TrainOperator
from mlops_ops.operators.validation import DataValidationOperator
from mlops_ops.sensors.data_version import DataVersionSensor

MODEL_NAME = "flight_delay"
FLIGHTS = dataset_asset("flights")
CHALLENGER = model_alias_asset(MODEL_NAME, "challenger")
#: Where ingest_flights lands the months: $MLOPS_DATA_ROOT/flights (a folder or an s3:// prefix).
LANDING = storage.join(settings.data_root(), "flights")
# The run type is read from the run id ("scheduled__...", "asset_triggered__..."): dag_run.run_type renders
# as "DagRunType.SCHEDULED" under the real scheduler.
TRIGGER_REASON = (
    "{{ params.reason or ('new data version' if dag_run.run_id.startswith('asset_triggered')"
    " else dag_run.run_id.split('__')[0] ~ ' run') }}"
)

DOC = f"""
### Retrain `{MODEL_NAME}`

`wait_for_data` -> `validate` -> `train` -> `evaluate_gate` -> `register`

1. **wait_for_data** (`DataVersionSensor`): the content fingerprint of the landed flights under `{LANDING}`;
   waits (deferred) for a version that the current `champion` and `challenger` were not trained on, and skips
   the run after 6 hours without one. `force` accepts the current version; a pinned `data_version` is used as
   is, or fails the run at once when the landed files no longer hold it.
2. **validate** (`DataValidationOperator`): every month file against `include/flights/expectations/flights_raw.json`;
   fails without retry, listing each failed expectation with its file, column and examples.
3. **train** (`TrainOperator`, pool `gpu`): `include/flights/model_spec.yaml`, logged to MLflow with lineage.
4. **evaluate_gate** (`EvaluateGateOperator`): challenger vs `champion` on the same held-out rows against
   `include/flights/gate.yaml`; a failing gate stops here, listing each failing check.
5. **register** (`RegisterOperator`): a version of `{MODEL_NAME}` with alias `challenger` (no second version for
   a retry or an identical training), updating the `{CHALLENGER.name}` asset.

Scheduled weekly (Monday 03:00 UTC) and whenever `{FLIGHTS.name}` is updated.

**Trigger by hand** (Trigger -> the form): `reason` (recorded on the model), `data_version` (pin a data
fingerprint, e.g. to reproduce a model), `force` (retrain on data already trained on). The `train` task links
to its MLflow run, `register` to the new model version.
"""


@dag(
    dag_id="retrain",
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 3 * * 1", timezone="UTC"), assets=FLIGHTS),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["mlops", "training", MODEL_NAME],
    doc_md=DOC,
    render_template_as_native_obj=True,
    default_args={"owner": "mlops", "retries": 2, "retry_delay": timedelta(minutes=1)},
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
    train = TrainOperator(
        task_id="train",
        model_spec="include/flights/model_spec.yaml",
        data_version=wait_for_data.output,
        trigger_reason=TRIGGER_REASON,
        gpu=True,
        gpu_queue=os.environ.get("MLOPS_GPU_QUEUE") or None,
        execution_timeout=timedelta(hours=2),
    )
    gate = EvaluateGateOperator(
        task_id="evaluate_gate",
        training=train.output,
        model_spec="include/flights/model_spec.yaml",
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
    wait_for_data >> validate >> train >> gate >> register


retrain()
