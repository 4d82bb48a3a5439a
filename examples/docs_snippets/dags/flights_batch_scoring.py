"""Batch scoring in shards on S3, as the batch scoring page shows it (the flights ``batch_score`` DAG in ``dags/``
is the complete version). Parsed by the tests, not run."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import dag

from mlops_ops.retry_policy import retry_default_args


@dag(
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["docs", "flight_delay"],
    default_args=retry_default_args(timedelta(seconds=30)),
)
def score_flights_daily():
    """Score each day's flights with the champion pinned once per run, in two shards, published atomically."""
    # --8<-- [start:score]
    from mlops_ops.assets import predictions_asset
    from mlops_ops.operators.scoring import (
        BatchScoreOperator,
        PinModelVersionOperator,
        PublishPredictionsOperator,
    )

    pin = PinModelVersionOperator(task_id="pin_champion", model_name="flight_delay", alias="champion")
    interval = {"interval_start": "{{ data_interval_start }}", "interval_end": "{{ data_interval_end }}"}
    score = BatchScoreOperator.partial(
        task_id="score",
        model_name="flight_delay",
        model="{{ ti.xcom_pull(task_ids='pin_champion') }}",
        source="s3://lake/flights",  # a Parquet file or folder/prefix, local or s3://
        output_root="s3://lake/predictions",
        model_spec="include/flights/model_spec.yaml",  # its `prepare` turns raw rows into features
        key_columns=["year", "month", "day", "carrier", "flight", "origin"],
        time_column="time_hour",  # UTC timestamps; rows in [start, end) are scored
        shard_count=2,
        **interval,
    ).expand(shard_index=[0, 1])
    publish = PublishPredictionsOperator(
        task_id="publish",
        model_name="flight_delay",
        model="{{ ti.xcom_pull(task_ids='pin_champion') }}",
        output_root="s3://lake/predictions",
        shard_count=2,
        outlets=[predictions_asset("flight_delay")],
        **interval,
    )
    pin >> score >> publish
    # --8<-- [end:score]


score_flights_daily()
