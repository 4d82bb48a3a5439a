"""Airflow Assets that connect the lifecycle DAGs: a landed dataset, a model alias, a retrain request.

Names are stable strings so that DAGs in different files (and teams) refer to the same asset. URIs use an
``x-`` scheme, which Airflow leaves as is: any other scheme makes it load every provider's URI handlers at
parse time (the Amazon provider's pulls in boto3, about a second per parse).
"""

from __future__ import annotations

from airflow.sdk import Asset


def dataset_asset(name: str) -> Asset:
    """The asset updated whenever a new version of dataset ``name`` lands."""
    return Asset(name=f"dataset.{name}", uri=f"x-mlops://datasets/{name}", group="dataset")


def model_alias_asset(model_name: str, alias: str) -> Asset:
    """The asset updated whenever ``alias`` of registered model ``model_name`` moves."""
    return Asset(
        name=f"model.{model_name}@{alias}", uri=f"x-mlops://models/{model_name}/{alias}", group="model"
    )


def predictions_asset(model_name: str) -> Asset:
    """The asset updated whenever an interval's predictions of ``model_name`` are published."""
    return Asset(
        name=f"predictions.{model_name}", uri=f"x-mlops://predictions/{model_name}", group="predictions"
    )


def retrain_request_asset(model_name: str) -> Asset:
    """The asset updated whenever monitoring asks for ``model_name`` to be retrained (extras: reason, evidence)."""
    return Asset(
        name=f"retrain_request.{model_name}",
        uri=f"x-mlops://retrain-requests/{model_name}",
        group="retrain_request",
    )
