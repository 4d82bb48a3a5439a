"""The wiring the retrain DAG can use: FeatureSetOperator (real Feast) -> TrainOperator on the feature service."""

from __future__ import annotations

import glob
import json

import pytest
import yaml

from include.flights.features import FEATURE_STORE_COLUMNS
from mlops_ops.core.versions import local_version
from mlops_ops.operators.features import FeatureSetOperator
from mlops_ops.operators.training import TrainOperator
from tests.integration.feature_support import PROJECT_ROOT, applied_store, connection_json, settings_for
from tests.unit.operators.support import make_ti

pytestmark = pytest.mark.integration


def test_a_point_in_time_training_set_trains_the_flights_model_with_store_features(
    feature_root, tmp_path, monkeypatch
):
    settings = settings_for(tmp_path, feature_root)
    applied_store(settings)
    monkeypatch.setenv("AIRFLOW_CONN_FEAST_WIRING", connection_json(settings))
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_WIRING",
        json.dumps(
            {
                "conn_type": "mlflow",
                "host": f"sqlite:///{tmp_path}/mlflow.db",
                "extra": {"artifact_root": (tmp_path / "artifacts").as_uri()},
            }
        ),
    )
    files = sorted(glob.glob(f"{feature_root}/flights/month=*/part-0.parquet"))
    version = local_version(f"{feature_root}/flights")
    assert version is not None and sorted(version.files) == files

    feature_set = FeatureSetOperator(
        task_id="feature_set",
        entities=version.to_dict(),
        feature_service="flight_delay_features",
        timestamp_column="time_hour",
        prepare="include.flights.feature_sources:with_route",
        output_uri=str(tmp_path / "training_set.parquet"),
        max_missing_rate=0.9,  # wind_gust alone is missing in 71% of 2013 observations
        feast_conn_id="feast_wiring",
    ).execute({"ti": make_ti("manual__wiring", task_id="feature_set")})
    assert feature_set["rows_in"] == feature_set["rows_out"] == 27004 + 24951
    assert feature_set["data_version"]["details"]["entities_fingerprint"] == version.fingerprint

    assert feature_set["fingerprint"].startswith("sha256:")

    spec = yaml.safe_load((PROJECT_ROOT / "include" / "flights" / "model_spec.yaml").read_text())
    assert set(FEATURE_STORE_COLUMNS) <= {*spec["categorical_features"], *spec["numerical_features"]}
    spec |= {"params": {"max_iter": 50}}
    train = TrainOperator(
        task_id="train",
        model_spec=spec,
        data_version=version.to_dict(),
        feature_set=feature_set,
        evaluation_root=str(tmp_path / "eval"),
        mlflow_conn_id="mlflow_wiring",
    )
    trained = train.execute(context={"ti": make_ti("manual__wiring")})
    # The lineage names the landed data (what DataVersionSensor compares), and the training set beside it.
    assert trained["data_version"] == version.fingerprint
    assert 0.6 < trained["metrics"]["roc_auc"] < 1.0

    import mlflow

    from mlops_ops.core.model_artifacts import model_inputs

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    folder = mlflow.artifacts.download_artifacts(trained["model_uri"], dst_path=str(tmp_path / "model"))
    names = {spec.name for spec in model_inputs(folder)}
    assert {"temp", "seats", "carrier_delay_rate_7d", "route_mean_arr_delay_7d", "aircraft_type"} <= names
    tags = mlflow.MlflowClient().get_run(trained["run_id"]).data.tags
    assert tags["mlops.data_version"] == version.fingerprint
    recorded = json.loads(tags["mlops.feature_set"])
    assert recorded["fingerprint"] == feature_set["fingerprint"]
    assert recorded["feature_service"] == "flight_delay_features"

    # A training set of another feature service, or none at all, is refused: features would diverge.
    from mlops_ops.operators.training import TrainingFailed

    for wrong in ({**feature_set, "feature_service": "other_features"}, None):
        train.feature_set = wrong
        with pytest.raises(TrainingFailed, match="feature service|feature_set"):
            train.execute(context={"ti": make_ti("manual__wiring_refused")})
