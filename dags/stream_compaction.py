"""Compact flight_delay's streamed predictions daily into the prediction partitions that monitoring reads."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import CronTriggerTimetable, Param, dag, task

from mlops_ops.assets import predictions_asset
from mlops_ops.core import settings, storage
from mlops_ops.operators.streaming import CompactStreamOperator
from mlops_ops.retry_policy import retry_default_args

MODEL_NAME = "flight_delay"
PREDICTIONS = predictions_asset(MODEL_NAME)
#: Where the partitions go: the monitor DAG reads <root>/model=flight_delay/interval=<start>_<end>/.
PREDICTIONS_ROOT = storage.join(settings.data_root(), "predictions")
#: The scorers' output stream (`mlops-ops stream --output`) and the Redis connection that holds it.
OUTPUT_STREAM = os.environ.get("MLOPS_STREAM_OUTPUT", "{flights}:predictions")
REDIS_CONN_ID = "mlops_streams"
#: What the scorers write in each record's keys (`--key-columns`): what the performance check joins labels on.
KEY_COLUMNS = ["year", "month", "day", "carrier", "flight", "origin"]
#: Events scored later than this after their day ended are left to a rerun of the day.
MAX_LATENESS = timedelta(hours=1)
PLAN = "ti.xcom_pull(task_ids='plan_interval')"

DOC = f"""
### Compact the streamed predictions of `{MODEL_NAME}`

`plan_interval` -> `compact`

The stream scorers (`mlops-ops stream`, the compose file's `stream-scorer`) write one record per event to
`{OUTPUT_STREAM}` (connection `{REDIS_CONN_ID}`). Daily at 01:15 UTC this DAG writes the previous day's records
as the day's partition under `{PREDICTIONS_ROOT}`, with batch scoring's columns and metadata, and updates
`{PREDICTIONS.name}`: the `monitor` DAG then checks drift and delayed-label performance on the streamed day
exactly as on a batch-scored one.

1. **plan_interval**: the `interval_start`/`interval_end` params of a manual run (a replay or a backfill: the
   stream is read to its end), else the last complete day that ended at least {MAX_LATENESS} before the run.
2. **compact** (`CompactStreamOperator`): the records of `{MODEL_NAME}` whose event time lies in the day, one
   per `event_id` (the first written), keyed by {", ".join(KEY_COLUMNS)}, into
   `model={MODEL_NAME}/interval=<start>_<end>/predictions.parquet` in one step. A rerun keeps every row and adds
   late events; a day without streamed events publishes nothing. A day that `batch_score` published is never
   replaced: score a day one way.
"""


@dag(
    dag_id="stream_compaction",
    schedule=CronTriggerTimetable("15 1 * * *", timezone="UTC"),
    start_date=datetime(2013, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["mlops", "streaming", MODEL_NAME],
    doc_md=DOC,
    render_template_as_native_obj=True,
    default_args=retry_default_args(timedelta(minutes=1)),
    params={
        "interval_start": Param(
            "",
            type="string",
            title="Interval start",
            description="ISO-8601, e.g. 2013-07-01 (no zone = UTC); empty: the last complete day",
        ),
        "interval_end": Param(
            "", type="string", title="Interval end", description="Exclusive; with the start"
        ),
    },
)
def stream_compaction():
    @task(task_id="plan_interval")
    def plan_interval(params=None, dag_run=None):
        """The day to compact, and how late its events may have been scored."""
        from airflow.sdk.exceptions import AirflowFailException

        from mlops_ops.core import scoring
        from mlops_ops.core.errors import DataError

        requested = (params.get("interval_start"), params.get("interval_end"))
        try:
            interval = scoring.resolve_interval(
                requested_start=requested[0],
                requested_end=requested[1],
                data_interval_start=None,
                data_interval_end=None,
                run_after=dag_run.run_after - MAX_LATENESS,
                period=timedelta(days=1),
            )
        except DataError as err:
            raise AirflowFailException(str(err)) from err
        replay = any(requested)
        print(f"Compacting {interval.describe()}" + (" (read to the stream's end)" if replay else ""))
        return {**interval.to_dict(), "max_lateness": None if replay else MAX_LATENESS.total_seconds()}

    plan = plan_interval()
    compact = CompactStreamOperator(
        task_id="compact",
        model_name=MODEL_NAME,
        interval_start="{{ " + PLAN + "['start'] }}",
        interval_end="{{ " + PLAN + "['end'] }}",
        max_lateness="{{ " + PLAN + "['max_lateness'] }}",
        key_columns=KEY_COLUMNS,
        output_stream=OUTPUT_STREAM,
        output_root=PREDICTIONS_ROOT,
        redis_conn_id=REDIS_CONN_ID,
        outlets=[PREDICTIONS],
    )
    plan >> compact


stream_compaction()
