"""Monitor flight_delay daily: drift of the scored flights against the champion's training data; request a retrain."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, task

from mlops_ops.assets import predictions_asset, retrain_request_asset
from mlops_ops.core import settings, storage
from mlops_ops.notifiers.webhook import WebhookNotifier
from mlops_ops.operators.drift import DriftCheckOperator
from mlops_ops.operators.monitoring import RequestRetrainOperator

MODEL_NAME = "flight_delay"
PREDICTIONS = predictions_asset(MODEL_NAME)
RETRAIN_REQUEST = retrain_request_asset(MODEL_NAME)
SOURCE = storage.join(settings.data_root(), "flights")
PREDICTIONS_ROOT = storage.join(settings.data_root(), "predictions")
REPORT_ROOT = storage.join(settings.data_root(), "monitoring")
COOLDOWN = timedelta(days=3)
DRIFT_SHARE = 0.5
PLAN = "ti.xcom_pull(task_ids='plan_interval')"

DOC = f"""
### Monitor `{MODEL_NAME}`

`plan_interval` -> `check_drift` -> `request_retrain` -> `alert`

Runs daily (06:00 UTC, on the previous day) and whenever `{PREDICTIONS.name}` is updated (on the interval just
scored); a manual run takes `interval_start`/`interval_end`.

1. **plan_interval**: the interval: the params, else the interval of the predictions that triggered the run,
   else the run's data interval.
2. **check_drift** (`DriftCheckOperator`): the interval's flights, and the probabilities of the version that
   scored them, against that version's training data (its `mlops.data_files` lineage), column by column with
   Evidently's default tests (Wasserstein / Jensen-Shannon above 1,000 rows, K-S / chi-square / Z below), new
   categories named. Evidently's HTML report (on a sample of each window) and the JSON result go to
   `{REPORT_ROOT}/model={MODEL_NAME}/interval=.../`; the report is also logged to the version's monitoring run
   in MLflow (experiment `{MODEL_NAME}-monitoring`), with the scores as metrics, one point per interval; the
   version's `mlops.drift.*` tags hold the latest verdict.
3. **request_retrain** (`RequestRetrainOperator`): when the dataset (a `drift_share` of the features) or the
   prediction drifts, updates `{RETRAIN_REQUEST.name}`
   with the reason and the evidence; `retrain` is scheduled on that asset and records the reason on the model
   it trains. At most one request per {COOLDOWN.days} days: a drift episode does not retrain daily. Skipped
   when nothing asks, or within the cool-down (its XCom says until when).
4. **alert**: a webhook message (connection `mlops_webhook`; logged only without one) when the data drifted.
"""


@dag(
    dag_id="monitor",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 6 * * *", timezone="UTC", interval=timedelta(days=1)),
        assets=PREDICTIONS,
    ),
    start_date=datetime(2013, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["mlops", "monitoring", MODEL_NAME],
    doc_md=DOC,
    render_template_as_native_obj=True,
    user_defined_macros={"DRIFT_SHARE": DRIFT_SHARE},
    default_args={"owner": "mlops", "retries": 2, "retry_delay": timedelta(minutes=1)},
    params={
        "interval_start": Param(
            "",
            type="string",
            title="Interval start",
            description="ISO-8601, e.g. 2013-07-01 (no zone = UTC); empty: the scored or scheduled interval",
        ),
        "interval_end": Param(
            "", type="string", title="Interval end", description="Exclusive; with the start"
        ),
    },
)
def monitor():
    @task(task_id="plan_interval")
    def plan_interval(
        params=None,
        dag_run=None,
        data_interval_start=None,
        data_interval_end=None,
        triggering_asset_events=None,
    ):
        """The interval to monitor."""
        from airflow.sdk.exceptions import AirflowFailException

        from mlops_ops.core import scoring
        from mlops_ops.core.errors import DataError

        requested = (params.get("interval_start"), params.get("interval_end"))
        scored = [
            event.extra["interval"]
            for events in (triggering_asset_events or {}).values()
            for event in events
            if isinstance((event.extra or {}).get("interval"), dict)
        ]
        if not any(requested) and scored:
            requested = (scored[-1]["start"], scored[-1]["end"])
        try:
            interval = scoring.resolve_interval(
                requested_start=requested[0],
                requested_end=requested[1],
                data_interval_start=data_interval_start,
                data_interval_end=data_interval_end,
                run_after=dag_run.run_after,
                period=timedelta(days=1),
            )
        except DataError as err:
            raise AirflowFailException(str(err)) from err
        print(f"Monitoring {interval.describe()}")
        return interval.to_dict()

    plan = plan_interval()
    drift = DriftCheckOperator(
        task_id="check_drift",
        model_name=MODEL_NAME,
        source=SOURCE,
        interval_start="{{ " + PLAN + "['start'] }}",
        interval_end="{{ " + PLAN + "['end'] }}",
        model_spec="include/flights/model_spec.yaml",
        time_column="time_hour",
        predictions_root=PREDICTIONS_ROOT,
        report_root=REPORT_ROOT,
        report_sample_rows=10_000,
        drift_share="{{ params.get('drift_share') or DRIFT_SHARE }}",
        on_drift="request_retrain",
    )
    request = RequestRetrainOperator(
        task_id="request_retrain",
        model_name=MODEL_NAME,
        request=RETRAIN_REQUEST,
        evidence=["{{ ti.xcom_pull(task_ids='check_drift') }}"],
        cooldown=COOLDOWN,
        on_success_callback=WebhookNotifier(
            f"{MODEL_NAME}: retrain requested: {{{{ ti.xcom_pull(task_ids='request_retrain')['reason'] }}}}"
        ),
    )

    @task(task_id="alert", trigger_rule="none_failed")
    def alert(drift_result=None):
        """A webhook message when the data drifted (logged only without a webhook connection)."""
        from airflow.sdk import get_current_context

        if not drift_result or not drift_result.get("drift_detected"):
            print("No drift: nothing to alert")
            return None
        notifier = WebhookNotifier(
            f"{MODEL_NAME}: {drift_result['reason']}",
            fields={"report": str(drift_result.get("report_uri")), "interval": str(drift_result["interval"])},
        )
        notifier(get_current_context())
        return drift_result["summary"]

    plan >> drift >> request >> alert(drift.output)


monitor()
