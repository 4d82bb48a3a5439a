"""The feature store's operators, as the features page shows them (the flights ``features`` and ``retrain``
DAGs in ``dags/`` are the complete versions). Parsed by the tests, not run: they need the flights feature
repository and its offline sources."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import dag

from mlops_ops.operators.features import (
    FeastMaterializeOperator,
    FeatureSetOperator,
    FeatureSkewCheckOperator,
)
from mlops_ops.operators.training import TrainOperator
from mlops_ops.retry_policy import retry_default_args
from mlops_ops.sensors.data_version import DataVersionSensor

FEATURE_SERVICE = "flight_delay_features"
DEFAULTS = retry_default_args(timedelta(minutes=1))


@dag(
    schedule="@hourly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["docs", "features"],
    default_args=DEFAULTS,
)
def materialize_features():
    """Materialize the feature views into the online store, then check online = offline on a sample."""
    # --8<-- [start:materialize]
    materialize = FeastMaterializeOperator(
        task_id="materialize",
        end="{{ data_interval_end }}",  # default; a replay passes its own end
        overlap=timedelta(hours=6),  # re-read late rows
    )
    check_skew = FeatureSkewCheckOperator(
        task_id="check_skew", feature_service=FEATURE_SERVICE, sample_size=50, max_mismatch_rate=0.0
    )
    materialize >> check_skew
    # --8<-- [end:materialize]


@dag(
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["docs", "features"],
    default_args=DEFAULTS,
)
def train_on_features():
    """Train on the point-in-time training set of a data version (rows in = rows out)."""
    # --8<-- [start:training_set]
    data = DataVersionSensor(task_id="wait_for_data", source="s3://lake/flights", soft_fail=True)
    feature_set = FeatureSetOperator(
        task_id="feature_set",
        entities=data.output,  # the data version's files
        feature_service=FEATURE_SERVICE,
        timestamp_column="time_hour",  # features known at this time, never after
        prepare="include.flights.feature_sources:with_route",  # adds the `route` entity key
        max_missing_rate=0.9,
    )
    TrainOperator(
        task_id="train",
        model_spec="include/flights/model_spec.yaml",  # its `feature_store` section names the service
        data_version=data.output,
        feature_set=feature_set.output,
    )
    # --8<-- [end:training_set]


materialize_features()
train_on_features()
