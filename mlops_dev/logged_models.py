"""Models logged to an MLflow registry as RegisterOperator logs them (skops, with a signature), for the tests'
and benchmarks' registries: one place instead of a copy per suite."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd


@dataclass(frozen=True)
class LoggedVersion:
    """A logged and registered model: its ``runs:/`` URI, registered version and run."""

    model_uri: str
    version: str
    run_id: str


def sqlite_registry(folder: Path, experiment_name: str) -> tuple[str, Any, str]:
    """An MLflow tracking store and registry on SQLite in ``folder``, made current, with an experiment whose
    artifacts are under ``folder/artifacts``.

    :return: the store's URI, an ``MlflowClient`` on it and the experiment's id.
    """
    import mlflow

    uri = f"sqlite:///{folder}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = mlflow.MlflowClient(uri, uri)
    experiment = client.create_experiment(experiment_name, artifact_location=(folder / "artifacts").as_uri())
    return uri, client, experiment


def log_binary_classifier(
    model: Any, inputs: pd.DataFrame, experiment_id: str, registered_name: str
) -> LoggedVersion:
    """Log a fitted two-class scikit-learn ``model`` with skops and a signature inferred from ``inputs`` and its
    probabilities of class 1, in a run of ``experiment_id``, and register it as ``registered_name`` on the
    current registry."""
    import warnings

    import mlflow
    import skops.io
    from mlflow.models import infer_signature

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLflow's notes on the environment it records
        with mlflow.start_run(experiment_id=experiment_id) as run:
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                signature=infer_signature(inputs, model.predict_proba(inputs)[:, 1]),
                serialization_format="skops",
                skops_trusted_types=skops.io.get_untrusted_types(data=skops.io.dumps(model)),
                pip_requirements=["scikit-learn"],
            )
        version = str(mlflow.register_model(info.model_uri, registered_name).version)
    return LoggedVersion(info.model_uri, version, run.info.run_id)
