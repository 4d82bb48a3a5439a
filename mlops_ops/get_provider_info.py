"""Provider metadata read by Airflow's ProvidersManager through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from mlops_ops import __version__


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
                "integration-name": "mlops-ops",
                "external-doc-url": "https://mlflow.org/",
                "tags": ["software"],
            },
        ],
        "hooks": [
            {"integration-name": "MLflow", "python-modules": ["mlops_ops.hooks.mlflow"]},
            {"integration-name": "Webhook", "python-modules": ["mlops_ops.hooks.webhook"]},
            {"integration-name": "Feast", "python-modules": ["mlops_ops.hooks.feast"]},
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
                ],
            }
        ],
        "sensors": [
            {"integration-name": "mlops-ops", "python-modules": ["mlops_ops.sensors.data_version"]},
        ],
        "triggers": [
            {"integration-name": "mlops-ops", "python-modules": ["mlops_ops.triggers.data_version"]},
        ],
        "connection-types": [
            {"hook-class-name": "mlops_ops.hooks.mlflow.MlflowHook", "connection-type": "mlflow"},
            {"hook-class-name": "mlops_ops.hooks.webhook.WebhookHook", "connection-type": "mlops_webhook"},
            {"hook-class-name": "mlops_ops.hooks.feast.FeastHook", "connection-type": "feast"},
        ],
        "notifications": ["mlops_ops.notifiers.webhook.WebhookNotifier"],
        "extra-links": [
            "mlops_ops.links.mlflow.MlflowRunLink",
            "mlops_ops.links.mlflow.MlflowModelVersionLink",
            "mlops_ops.links.mlflow.XComUrlLink",
        ],
    }
