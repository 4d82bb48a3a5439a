"""A second team's model with mlops-ops: the wine cultivar classifier (multiclass), from landing to monitoring.

Five DAGs, each a few operators of the provider, on the landed rows alone (no feature store, no prepare
function): the spec, gate policy, decay rule and cost table are the YAML files under ``config/``.

- ``wine_land``: lands the samples measured through a given day as one Parquet file per day (the team's own
  ingestion; here scikit-learn's wine data, spread over days, so that nothing is downloaded).
- ``wine_retrain``: on a new data version, train, gate against the champion, register a ``challenger``.
- ``wine_promote``: when a challenger is registered, promote it to ``champion`` if its gate passed.
- ``wine_batch_score``: daily, score the day's samples with the pinned champion and publish the partition.
- ``wine_monitor``: when predictions are published, check drift and, on the labelled samples, performance;
  request a retrain on drift or decay.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, task

from mlops_ops.assets import dataset_asset, model_alias_asset, predictions_asset, retrain_request_asset
from mlops_ops.core import settings, storage
from mlops_ops.operators.drift import DriftCheckOperator
from mlops_ops.operators.gate import EvaluateGateOperator
from mlops_ops.operators.monitoring import RequestRetrainOperator
from mlops_ops.operators.performance import PerformanceMonitorOperator
from mlops_ops.operators.promotion import PromoteOperator, PromotionRequestOperator
from mlops_ops.operators.registry import RegisterOperator
from mlops_ops.operators.scoring import (
    BatchScoreOperator,
    PinModelVersionOperator,
    PublishPredictionsOperator,
)
from mlops_ops.operators.training import TrainOperator
from mlops_ops.sensors.data_version import DataVersionSensor

MODEL_NAME = "wine_cultivar"
SPEC = "config/model_spec.yaml"
#: The landed samples: <data root>/wine/day=YYYY-MM-DD/part-0.parquet.
LANDING = storage.join(settings.data_root(), "wine")
PREDICTIONS_ROOT = storage.join(settings.data_root(), "predictions")
KEY_COLUMNS = ["sample_id"]
TIME_COLUMN = "measured_at"
FIRST_DAY = datetime(2024, 5, 1)
DAYS = 8

WINE = dataset_asset("wine")
CHALLENGER = model_alias_asset(MODEL_NAME, "challenger")
PREDICTIONS = predictions_asset(MODEL_NAME)
RETRAIN_REQUEST = retrain_request_asset(MODEL_NAME)
#: The day a run scores or monitors: the ``day`` param, else the run's logical date.
DAY = "{{ params.day or ds }}"
NEXT_DAY = "{{ macros.ds_add(params.day or ds, 1) }}"
DAY_PARAM = Param(
    None, type=["null", "string"], format="date", title="Day", description="Empty: the run's date"
)


@dag(
    schedule=None,
    start_date=FIRST_DAY,
    catchup=False,
    tags=["example", MODEL_NAME],
    params={"through_day": Param(DAYS, type="integer", minimum=1, maximum=DAYS, title="Land through day")},
)
def wine_land():
    @task(outlets=[WINE])
    def land(params=None) -> list[str]:
        """Write each day's samples through ``through_day`` (1-8) once; a day already landed is left alone."""
        from sklearn.datasets import load_wine

        wine = load_wine(as_frame=True)
        frame = wine.frame.rename(columns={"od280/od315_of_diluted_wines": "od280_od315"})
        frame["cultivar"] = frame.pop("target").map(dict(enumerate(["barolo", "grignolino", "barbera"])))
        frame = frame.sample(frac=1.0, random_state=7).reset_index(drop=True)
        frame.insert(0, "sample_id", range(len(frame)))
        spacing = timedelta(days=DAYS) / len(frame)
        frame.insert(1, TIME_COLUMN, [FIRST_DAY + index * spacing for index in range(len(frame))])
        frame[TIME_COLUMN] = frame[TIME_COLUMN].dt.tz_localize("UTC")
        written = []
        for offset in range(int(params["through_day"])):
            day = (FIRST_DAY + timedelta(days=offset)).date()
            uri = storage.join(LANDING, f"day={day}", "part-0.parquet")
            if not storage.exists(uri):
                rows = frame[frame[TIME_COLUMN].dt.date == day]
                storage.write_parquet_atomic(rows.reset_index(drop=True), uri)
                written.append(uri)
        return written

    land()


@dag(
    schedule=WINE | RETRAIN_REQUEST,
    start_date=FIRST_DAY,
    catchup=False,
    tags=["example", MODEL_NAME],
    # Params render as what they are (False, None), not as their text.
    render_template_as_native_obj=True,
    params={
        # A CI job's retrain (mlops-ops ci retrain): the data already trained on, the revision it tested.
        "force": Param(False, type="boolean", title="Retrain on data already trained on"),
        "code_revision": Param(None, type=["null", "string"], pattern="^[0-9A-Za-z._-]{0,64}$"),
    },
)
def wine_retrain():
    data = DataVersionSensor(
        task_id="wait_for_data",
        source=LANDING,
        registered_model_name=MODEL_NAME,
        accept_seen="{{ params.force }}",
        poke_interval=60,
        timeout=3600,
        soft_fail=True,
    )
    train = TrainOperator(
        task_id="train",
        model_spec=SPEC,
        data_version=data.output,
        expected_code_revision="{{ params.code_revision }}",
    )
    gate = EvaluateGateOperator(
        task_id="evaluate_gate", training=train.output, model_spec=SPEC, policy="config/gate.yaml"
    )
    register = RegisterOperator(
        task_id="register", training=train.output, decision=gate.output, outlets=[CHALLENGER]
    )
    data >> train >> gate >> register


@dag(schedule=[CHALLENGER], start_date=FIRST_DAY, catchup=False, tags=["example", MODEL_NAME])
def wine_promote():
    request = PromotionRequestOperator(task_id="request", model_name=MODEL_NAME, policy="auto")

    @task.short_circuit
    def approved(candidate: dict) -> bool:
        """Auto policy: the gate's pass is the approval. See the flights ``promote`` DAG for a human's vote."""
        return not candidate["approval_needed"]

    promote = PromoteOperator(
        task_id="promote",
        model_name=MODEL_NAME,
        version="{{ ti.xcom_pull(task_ids='request')['version'] }}",
        expected_version="{{ ti.xcom_pull(task_ids='request')['expected_version'] }}",
        actor="auto",
        reason="gate passed",
        known_limitations=["178 samples of three cultivars from one region of Italy."],
        pool="registry",
    )
    approved(request.output) >> promote


@dag(
    schedule="@daily",
    start_date=FIRST_DAY,
    catchup=False,
    tags=["example", MODEL_NAME],
    params={"day": DAY_PARAM},
)
def wine_batch_score():
    pin = PinModelVersionOperator(task_id="pin_champion", model_name=MODEL_NAME)
    interval = {"interval_start": DAY, "interval_end": NEXT_DAY}
    score = BatchScoreOperator(
        task_id="score",
        model_name=MODEL_NAME,
        model=pin.output,
        source=LANDING,
        output_root=PREDICTIONS_ROOT,
        model_spec=SPEC,
        key_columns=KEY_COLUMNS,
        time_column=TIME_COLUMN,
        **interval,
    )
    publish = PublishPredictionsOperator(
        task_id="publish",
        model_name=MODEL_NAME,
        model=pin.output,
        output_root=PREDICTIONS_ROOT,
        outlets=[PREDICTIONS],
        **interval,
    )
    pin >> score >> publish


@dag(
    schedule=[PREDICTIONS],
    start_date=FIRST_DAY,
    catchup=False,
    tags=["example", MODEL_NAME],
    params={"day": DAY_PARAM},
)
def wine_monitor():
    interval = {"interval_start": DAY, "interval_end": NEXT_DAY}
    drift = DriftCheckOperator(
        task_id="check_drift",
        model_name=MODEL_NAME,
        source=LANDING,
        model_spec=SPEC,
        time_column=TIME_COLUMN,
        predictions_root=PREDICTIONS_ROOT,
        scored_interval={"start": DAY, "end": NEXT_DAY},
        on_drift="warn",
        **interval,
    )
    performance = PerformanceMonitorOperator(
        task_id="check_performance",
        model_name=MODEL_NAME,
        labels_source=LANDING,
        key_columns=KEY_COLUMNS,
        time_column=TIME_COLUMN,
        model_spec=SPEC,
        decay_rule="config/decay.yaml",
        business_costs="config/business_costs.yaml",
        predictions_root=PREDICTIONS_ROOT,
        **interval,
    )
    request = RequestRetrainOperator(
        task_id="request_retrain",
        model_name=MODEL_NAME,
        request=RETRAIN_REQUEST,
        evidence=[
            "{{ ti.xcom_pull(task_ids='check_drift') }}",
            "{{ ti.xcom_pull(task_ids='check_performance') }}",
        ],
        cooldown=timedelta(days=1),
        trigger_rule="all_done",
    )
    [drift, performance] >> request


wine_land()
wine_retrain()
wine_promote()
wine_batch_score()
wine_monitor()
