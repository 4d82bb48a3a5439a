"""Monitor flight_delay daily: drift of the scored flights against the champion's training data; request a retrain."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, task

from mlops_ops.assets import predictions_asset, retrain_request_asset
from mlops_ops.core import settings, storage
from mlops_ops.notifiers.webhook import WebhookNotifier
from mlops_ops.operators.drift import DriftCheckOperator
from mlops_ops.operators.monitoring import RequestRetrainOperator
from mlops_ops.operators.performance import PerformanceMonitorOperator
from mlops_ops.retry_policy import retry_default_args

MODEL_NAME = "flight_delay"
PREDICTIONS = predictions_asset(MODEL_NAME)
RETRAIN_REQUEST = retrain_request_asset(MODEL_NAME)
SOURCE = storage.join(settings.data_root(), "flights")
PREDICTIONS_ROOT = storage.join(settings.data_root(), "predictions")
REPORT_ROOT = storage.join(settings.data_root(), "monitoring")
COOLDOWN = timedelta(days=3)
DRIFT_SHARE = 0.5
DRIFT_WINDOW_DAYS = 7
KEY_COLUMNS = ["year", "month", "day", "carrier", "flight", "origin"]
#: A prometheus_pushgateway connection id (the production profile's "pushgateway"), read at parse time.
PUSHGATEWAY = os.environ.get("MLOPS_PUSHGATEWAY_CONN_ID") or None
PLAN = "ti.xcom_pull(task_ids='plan_interval')"

DOC = f"""
### Monitor `{MODEL_NAME}`

`plan_interval` -> `check_drift` + `check_performance` -> `request_retrain` -> `alert`

Runs daily (06:00 UTC, on the previous day) and whenever `{PREDICTIONS.name}` is updated (on the interval just
scored); a manual run takes `interval_start`/`interval_end` (a scored interval).

1. **plan_interval**: the scored interval (the params, else the interval of the predictions that triggered the
   run, else the run's data interval) and the drift window: the `drift_window_days` days up to its end (a
   single day's flights always differ from the training data in their day of week).
2. **check_drift** (`DriftCheckOperator`): the window's flights, and the probabilities of the version that
   scored the interval, against that version's training data (its `mlops.data_files` / `mlops.feature_set`
   lineage), column by column with Evidently's default tests (Wasserstein / Jensen-Shannon above 1,000 rows,
   K-S / chi-square / Z below), new categories named. Evidently's HTML report (on a sample of each window) and
   the JSON result go to `{REPORT_ROOT}/model={MODEL_NAME}/interval=.../`; the report is also logged to the
   version's monitoring run in MLflow (experiment `{MODEL_NAME}-monitoring`), the scores as metrics, one point
   per window; the version's `mlops.drift.*` tags hold the latest verdict.
3. **check_performance** (`PerformanceMonitorOperator`): the interval's predictions joined with the arrival
   delays landed since: accuracy, precision, recall, F1, ROC-AUC, log loss and the business cost
   (`include/flights/business_costs.yaml`) on the same timeline; the decay rule (`include/flights/decay.yaml`)
   asks for a retrain when a metric falls below its floor or too far below the version's held-out figure.
4. **request_retrain** (`RequestRetrainOperator`): when the data drifted (a `drift_share` of the features) or
   the model decayed, updates `{RETRAIN_REQUEST.name}` with the reasons and the evidence;
   `retrain` is scheduled on that asset and records the reasons on the model it trains. At most one request per
   {COOLDOWN.days} days: a drift episode does not retrain daily. Skipped when nothing asks, or within the
   cool-down (its XCom says until when).
5. **alert**: a webhook message (connection `mlops_webhook_default`; logged only without one) on drift, decay or
   a check that could not run; the run then fails if a check failed.

Live metrics and drift scores go to the Prometheus pushgateway of connection `$MLOPS_PUSHGATEWAY_CONN_ID` when
that variable names one (the production profile's `pushgateway`); Grafana: `include/grafana/`.
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
    default_args=retry_default_args(timedelta(minutes=1)),
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
        window_days = int(params.get("drift_window_days") or DRIFT_WINDOW_DAYS)
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
        drift_window = scoring.Interval(interval.end - timedelta(days=window_days), interval.end)
        print(f"Monitoring {interval.describe()}; drift over {drift_window.describe()}")
        return {**interval.to_dict(), "drift_start": drift_window.start.isoformat()}

    plan = plan_interval()
    drift = DriftCheckOperator(
        task_id="check_drift",
        model_name=MODEL_NAME,
        source=SOURCE,
        interval_start="{{ " + PLAN + "['drift_start'] }}",
        interval_end="{{ " + PLAN + "['end'] }}",
        model_spec="include/flights/model_spec.yaml",
        time_column="time_hour",
        predictions_root=PREDICTIONS_ROOT,
        scored_interval="{{ " + PLAN + " }}",
        report_root=REPORT_ROOT,
        report_sample_rows=10_000,
        drift_share="{{ params.get('drift_share') or DRIFT_SHARE }}",
        on_drift="request_retrain",
        pushgateway_conn_id=PUSHGATEWAY,
        # With the exception: e.g. the champion refused by the trust rules (alias moved outside the project).
        on_failure_callback=WebhookNotifier(f"{MODEL_NAME}: the drift check failed"),
    )
    performance = PerformanceMonitorOperator(
        task_id="check_performance",
        model_name=MODEL_NAME,
        labels_source=SOURCE,
        key_columns=KEY_COLUMNS,
        time_column="time_hour",
        model_spec="include/flights/model_spec.yaml",
        decay_rule="include/flights/decay.yaml",
        business_costs="include/flights/business_costs.yaml",
        interval_start="{{ " + PLAN + "['start'] }}",
        interval_end="{{ " + PLAN + "['end'] }}",
        predictions_root=PREDICTIONS_ROOT,
        pushgateway_conn_id=PUSHGATEWAY,
        on_failure_callback=WebhookNotifier(f"{MODEL_NAME}: the performance check failed"),
    )
    request = RequestRetrainOperator(
        task_id="request_retrain",
        model_name=MODEL_NAME,
        request=RETRAIN_REQUEST,
        evidence=[
            "{{ ti.xcom_pull(task_ids='check_drift') }}",
            "{{ ti.xcom_pull(task_ids='check_performance') }}",
        ],
        cooldown=COOLDOWN,
        # A request goes out on the evidence there is, even when one check could not run.
        trigger_rule="all_done",
        on_success_callback=WebhookNotifier(
            f"{MODEL_NAME}: retrain requested: {{{{ ti.xcom_pull(task_ids='request_retrain')['reason'] }}}}"
        ),
    )

    @task(task_id="alert", trigger_rule="all_done")
    def alert(drift_result=None, performance_result=None):
        """A webhook message on drift, decay or a failed check; fails the run when a check failed."""
        from airflow.sdk import get_current_context
        from airflow.sdk.exceptions import AirflowFailException

        lines = []
        if drift_result and drift_result.get("drift_detected"):
            lines.append(drift_result["reason"])
        decay = (performance_result or {}).get("decay") or {}
        if decay.get("retrain_requested"):
            lines.append(f"performance decayed: {decay.get('summary')}")
        failed = [
            name
            for name, result in (("check_drift", drift_result), ("check_performance", performance_result))
            if not result
        ]
        if failed:
            lines.append(f"monitoring incomplete: {', '.join(failed)} failed (see their logs)")
        if not lines:
            print("No drift, no decay: nothing to alert")
            return None
        WebhookNotifier(f"{MODEL_NAME}: " + "; ".join(lines))(get_current_context())
        if failed:
            raise AirflowFailException(f"{', '.join(failed)} failed")
        return lines

    plan >> [drift, performance] >> request >> alert(drift.output, performance.output)


monitor()
