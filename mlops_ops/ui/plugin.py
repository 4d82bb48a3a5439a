"""Airflow UI plugin: the "Models" page (champion, challenger, alias history, gate and drift verdicts).

Registered by the wheel's ``airflow.plugins`` entry point, so ``pip install mlops-ops`` is all a deployment
needs (no file in its ``plugins/`` folder). Airflow's API server mounts the FastAPI app at /mlops-models; the
external view puts it in the UI's navigation (Browse -> Models), shown inside the Airflow UI. The app
(:mod:`mlops_ops.ui.models_view`) is built on its first request: Airflow loads plugins in every process, each
task's included.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from mlops_ops.ui.lazy import LazyAsgiApp

URL_PREFIX = "/mlops-models"


def models_view_connections() -> dict[str, str]:
    """The connections the Models view reads, from Airflow's ``[mlops]`` configuration
    (``AIRFLOW__MLOPS__MODELS_VIEW_STORAGE_CONN_ID`` and so on; defaults in the provider's info)."""
    from airflow.configuration import conf

    return {
        "mlflow_conn_id": conf.get("mlops", "models_view_mlflow_conn_id", fallback="mlflow_default"),
        "trust_conn_id": conf.get("mlops", "models_view_trust_conn_id", fallback="mlops_trust_default"),
        "storage_conn_id": conf.get("mlops", "models_view_storage_conn_id", fallback="aws_default"),
    }


def _models_app():
    from mlops_ops.ui.models_view import create_app

    return create_app(**models_view_connections())


class MlopsModelsPlugin(AirflowPlugin):
    """Registers the Models view."""

    name = "mlops_models"
    fastapi_apps = [{"app": LazyAsgiApp(_models_app), "url_prefix": URL_PREFIX, "name": "mlops-ops models"}]
    external_views = [
        {
            "name": "Models",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "category": "browse",
            "url_route": "mlops-models",
        }
    ]
