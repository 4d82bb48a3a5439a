"""mlops_ops.preload: the modules a deployment preloads for its task processes, and the Celery configuration."""

from __future__ import annotations

import pytest

from mlops_ops import preload


def test_an_extra_that_is_not_installed_is_left_out():
    modules = ("pandas", "not_an_installed_package.sub", "mlflow.sklearn")

    assert preload.installed_preload_modules(modules) == ("pandas", "mlflow.sklearn")


def test_the_celery_configuration_is_the_providers_default_plus_the_imports():
    from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
    from celery import Celery

    config = preload.CELERY_CONFIG

    assert {key: value for key, value in config.items() if key != "imports"} == {
        key: value for key, value in DEFAULT_CELERY_CONFIG.items() if key != "imports"
    }
    assert set(preload.installed_preload_modules()) <= set(config["imports"])
    # Celery reads it as Airflow hands it over (config_source), and its worker imports what `imports` lists.
    app = Celery("preload-check", config_source=config)
    assert set(preload.installed_preload_modules()) <= set(app.loader.default_modules)


def test_another_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="CELERY_CONFIGURATION"):
        preload.CELERY_CONFIGURATION  # noqa: B018
