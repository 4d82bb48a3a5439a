"""Provider metadata read by Airflow's ProvidersManager through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from mlops_ops import __version__

#: Where the provider's own documentation lives when its distribution metadata cannot be read (a source checkout
#: on sys.path without an install). The installed package's ``Documentation`` project URL (pyproject.toml) wins.
DOCUMENTATION_URL = "https://github.com/mlops-ops/mlops-ops/tree/main/docs"


def documentation_url() -> str:
    """The ``Documentation`` project URL of the installed mlops-ops distribution (pyproject's ``[project.urls]``)."""
    from importlib import metadata

    try:
        urls = metadata.metadata("mlops-ops").get_all("Project-URL") or []
    except metadata.PackageNotFoundError:
        return DOCUMENTATION_URL
    for entry in urls:
        label, _, url = entry.partition(",")
        if label.strip().lower() == "documentation" and url.strip():
            return url.strip()
    return DOCUMENTATION_URL


def get_provider_info() -> dict:
    """Describe mlops-ops to Airflow: hooks, connection types, operators, sensors, triggers."""
    return {
        "package-name": "mlops-ops",
        "name": "mlops-ops",
        "description": "Operators, sensors and hooks for the machine-learning lifecycle on MLflow.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "MLflow",
                "external-doc-url": "https://mlflow.org/docs/latest/",
                "tags": ["software"],
            },
            {
                "integration-name": "Feast",
                "external-doc-url": "https://docs.feast.dev/",
                "tags": ["software"],
            },
            {
                "integration-name": "Prometheus Pushgateway",
                "external-doc-url": "https://github.com/prometheus/pushgateway",
                "tags": ["software"],
            },
            {
                "integration-name": "mlops-ops",
                "external-doc-url": documentation_url(),
                "tags": ["software"],
            },
        ],
        "hooks": [
            {"integration-name": "MLflow", "python-modules": ["mlops_ops.hooks.mlflow"]},
            {"integration-name": "Webhook", "python-modules": ["mlops_ops.hooks.webhook"]},
            {"integration-name": "Feast", "python-modules": ["mlops_ops.hooks.feast"]},
            {"integration-name": "Prometheus Pushgateway", "python-modules": ["mlops_ops.hooks.prometheus"]},
            {"integration-name": "Redis", "python-modules": ["mlops_ops.hooks.redis_streams"]},
        ],
        "operators": [
            {
                "integration-name": "mlops-ops",
                "python-modules": [
                    "mlops_ops.operators.validation",
                    "mlops_ops.operators.training",
                    "mlops_ops.operators.gate",
                    "mlops_ops.operators.registry",
                    "mlops_ops.operators.promotion",
                    "mlops_ops.operators.approval",
                    "mlops_ops.operators.scoring",
                    "mlops_ops.operators.features",
                    "mlops_ops.operators.drift",
                    "mlops_ops.operators.performance",
                    "mlops_ops.operators.monitoring",
                    "mlops_ops.operators.streaming",
                ],
            }
        ],
        "sensors": [
            {"integration-name": "mlops-ops", "python-modules": ["mlops_ops.sensors.data_version"]},
        ],
        "config": {
            "mlops": {
                "description": "The Models view (Browse -> Models) that mlops-ops adds to the Airflow UI.",
                "options": {
                    "models_view_mlflow_conn_id": {
                        "description": "The connection of the MLflow registry the view reads.",
                        "version_added": None,
                        "type": "string",
                        "example": "mlflow_default",
                        "default": "mlflow_default",
                    },
                    "models_view_trust_conn_id": {
                        "description": "The trust connection whose signed alias log the view shows.",
                        "version_added": None,
                        "type": "string",
                        "example": "mlops_trust_default",
                        "default": "mlops_trust_default",
                    },
                    "models_view_storage_conn_id": {
                        "description": "The connection of the drift report root when it is in an object store "
                        "(aws for s3://, wasb for abfs://, google_cloud_platform for gs://).",
                        "version_added": None,
                        "type": "string",
                        "example": "azure_lake",
                        "default": "aws_default",
                    },
                },
            }
        },
        "triggers": [
            {"integration-name": "mlops-ops", "python-modules": ["mlops_ops.triggers.data_version"]},
        ],
        "connection-types": [
            {
                "hook-class-name": "mlops_ops.hooks.mlflow.MlflowHook",
                "connection-type": "mlflow",
                "hook-name": "MLflow",
                # Airflow 3.2+ reads the connection form from here, without importing the hook.
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port"],
                    "relabeling": {
                        "host": "Tracking URI",
                        "login": "Username",
                        "password": "Password or token",  # nosec B105 - a form label # pragma: allowlist secret
                    },
                    "placeholders": {
                        "host": "http://mlflow:5000 (empty: $MLFLOW_TRACKING_URI or the embedded one)"
                    },
                },
                "conn-fields": {
                    "registry_uri": {
                        "label": "Registry URI",
                        "description": "Model registry, when not the tracking URI",
                        "schema": {"type": ["string", "null"]},
                    },
                    "ui_url": {
                        "label": "MLflow UI URL",
                        "description": "Where task links and the Models view point; default an http(s) tracking URI",
                        "schema": {"type": ["string", "null"]},
                    },
                    "artifact_root": {
                        "label": "Artifact root",
                        "description": "Where new experiments keep artifacts, e.g. s3://mlflow/artifacts",
                        "schema": {"type": ["string", "null"]},
                    },
                },
            },
            {"hook-class-name": "mlops_ops.hooks.webhook.WebhookHook", "connection-type": "mlops_webhook"},
            {
                "hook-class-name": "mlops_ops.hooks.feast.FeastHook",
                "connection-type": "feast",
                "hook-name": "Feast",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "login", "password"],
                    "relabeling": {"host": "Feature repository folder"},
                    "placeholders": {"host": "include/my_project/feature_repo"},
                },
                "conn-fields": {
                    "project": {
                        "label": "Project",
                        "description": (
                            "Feast project (also the prefix of every online-store key); default: the project of "
                            "the repository's feature_store.yaml"
                        ),
                        "schema": {"type": ["string", "null"]},
                    },
                    "data_root": {
                        "label": "Data root",
                        "description": "Offline sources, registry and SQLite online store; default the mlops data root",
                        "schema": {"type": ["string", "null"]},
                    },
                    "registry": {
                        "label": "Registry",
                        "description": "Feast registry path or URI; default under the data root",
                        "schema": {"type": ["string", "null"]},
                    },
                },
            },
            {
                "hook-class-name": "mlops_ops.hooks.prometheus.PushgatewayHook",
                "connection-type": "prometheus_pushgateway",
            },
            {
                "hook-class-name": "mlops_ops.hooks.redis_streams.RedisStreamsHook",
                "connection-type": "mlops_redis",
            },
        ],
        "notifications": ["mlops_ops.notifiers.webhook.WebhookNotifier"],
        "extra-links": [
            "mlops_ops.links.mlflow.MlflowRunLink",
            "mlops_ops.links.mlflow.MlflowModelVersionLink",
            "mlops_ops.links.mlflow.XComUrlLink",
        ],
    }
