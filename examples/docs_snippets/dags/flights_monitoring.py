"""Drift, performance on late labels and the retrain request with a cool-down, as the drift and performance
pages show them (the flights ``monitor`` DAG in ``dags/`` is the complete version). Parsed by the tests, not
run."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import dag

from mlops_ops.retry_policy import retry_default_args


@dag(
    schedule="0 6 * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["docs", "flight_delay"],
    default_args=retry_default_args(timedelta(seconds=30)),
)
def monitor_flights():
    """Check the last week's drift and the day's performance; ask for a retrain when either says so."""
    # --8<-- [start:drift]
    from mlops_ops.operators.drift import DriftCheckOperator

    drift = DriftCheckOperator(
        task_id="check_drift",
        model_name="flight_delay",
        source="s3://lake/flights",  # the landed data; the interval's rows are the current window
        interval_start="{{ data_interval_end - macros.timedelta(days=7) }}",
        interval_end="{{ data_interval_end }}",
        model_spec="include/flights/model_spec.yaml",  # prepare() makes the features; declared column types
        time_column="time_hour",
        predictions_root="s3://lake/predictions",  # the version that scored the interval is the one checked
        drift_share=0.5,  # dataset drift: at least half of the features drift
        on_drift="request_retrain",  # or "warn", or "fail" (after saving the evidence)
    )
    # --8<-- [end:drift]

    # --8<-- [start:performance]
    from mlops_ops.operators.performance import PerformanceMonitorOperator

    performance = PerformanceMonitorOperator(
        task_id="check_performance",
        model_name="flight_delay",
        labels_source="s3://lake/flights",  # the landed rows; the label is the spec's `target`
        key_columns=["year", "month", "day", "carrier", "flight", "origin"],
        time_column="time_hour",
        model_spec="include/flights/model_spec.yaml",  # `target` + `prepare` (delayed = arrival delay >= 15 min)
        decay_rule="include/flights/decay.yaml",
        business_costs="include/flights/business_costs.yaml",  # missed_positive: 50, false_alarm: 10
        predictions_root="s3://lake/predictions",  # what BatchScoreOperator published
        interval_start="{{ data_interval_start }}",
        interval_end="{{ data_interval_end }}",
        pushgateway_conn_id="pushgateway",  # optional
    )
    # --8<-- [end:performance]

    # --8<-- [start:request]
    from mlops_ops.assets import retrain_request_asset
    from mlops_ops.operators.monitoring import RequestRetrainOperator

    request = RequestRetrainOperator(
        task_id="request_retrain",
        model_name="flight_delay",
        request=retrain_request_asset("flight_delay"),  # inlet and outlet of the task
        evidence=[
            "{{ ti.xcom_pull(task_ids='check_drift') }}",
            "{{ ti.xcom_pull(task_ids='check_performance') }}",
        ],
        cooldown=timedelta(days=3),
        trigger_rule="all_done",
    )
    # --8<-- [end:request]
    [drift, performance] >> request


monitor_flights()
