"""Hourly: rebuild the flights feature sources from landed data, materialize them online, check online = offline."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, task

from mlops_ops.assets import dataset_asset
from mlops_ops.operators.features import FeastMaterializeOperator, FeatureSkewCheckOperator
from mlops_ops.retry_policy import retry_default_args

FEATURE_SERVICE = "flight_delay_features"
FLIGHTS = dataset_asset("flights")

DOC = f"""
### Features: flights feature store, hourly

`build_sources` -> `materialize` -> `check_skew`

1. **build_sources**: writes the offline sources of `include/flights/feature_repo` under
   `<feature root>/features/flights/` (the data root when local, else `$MLOPS_FEATURE_ROOT` or
   `$MLOPS_HOME/features`), atomically, only files whose content changed: hourly origin weather, the
   aircraft registry, and daily 7-day carrier/route arrival-delay snapshots computed from the *landed*
   flights only (a snapshot counts a flight only once it has landed: no look-ahead).
2. **materialize** (`FeastMaterializeOperator`): registers the definitions, then materializes every view to the
   online store (connection `feast_default`: SQLite under the data root by default, Redis in production) from
   the last materialized end minus a 6-hour overlap (late rows) up to the run's `data_interval_end`, or the
   `end` param. Idempotent; an old interval never rolls the online store back.
3. **check_skew** (`FeatureSkewCheckOperator`): for 50 sampled entities per view of `{FEATURE_SERVICE}`, the
   online values must equal the offline point-in-time values; any difference fails the run, listing them.

The online prediction API (`mlops-ops serve`) reads the same feature service from the same online store.
"""


@dag(
    dag_id="features",
    schedule="@hourly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["mlops", "features", "flights"],
    doc_md=DOC,
    default_args=retry_default_args(timedelta(minutes=1)),
    params={
        "end": Param(
            "",
            type="string",
            title="Materialize up to",
            description="ISO timestamp (e.g. 2013-06-30T23:00:00Z to replay 2013); empty = the run's interval end",
        ),
    },
)
def features():
    @task
    def build_sources() -> dict:
        from include.flights.feature_sources import build_deployment_sources

        return build_deployment_sources()

    materialize = FeastMaterializeOperator(
        task_id="materialize",
        end="{{ params.end or data_interval_end }}",
        overlap=timedelta(hours=6),
    )
    check_skew = FeatureSkewCheckOperator(
        task_id="check_skew", feature_service=FEATURE_SERVICE, sample_size=50, max_mismatch_rate=0.0
    )
    build_sources() >> materialize >> check_skew


features()
