"""PushgatewayHook against a real Prometheus Pushgateway on 127.0.0.1: what is pushed is on its /metrics."""

from __future__ import annotations

import json
import urllib.error
import warnings

import pytest

from mlops_ops.hooks.prometheus import MetricSample, PushgatewayError, PushgatewayHook
from tests.pushgateway import get, running_pushgateway, series

pytestmark = pytest.mark.integration

MODEL = {"model": "flight_delay"}


def connection(monkeypatch, conn_id: str, host: str, port: int, **fields) -> None:
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}",
        json.dumps({"conn_type": "prometheus_pushgateway", "host": host, "port": port, **fields}),
    )


def live(metric: str, value: float, version: str = "3") -> MetricSample:
    labels = {**MODEL, "version": version, "metric": metric}
    return MetricSample("mlops_live_metric", "Live metric on labelled rows.", value, labels)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    with running_pushgateway(tmp_path_factory.mktemp("pushgateway")) as address:
        yield address


def test_pushed_series_and_values_are_on_the_gateways_metrics(gateway, monkeypatch):
    host, port = gateway
    connection(monkeypatch, "pushgateway", host, port)
    hook = PushgatewayHook()
    assert hook.test_connection() == (True, f"Pushgateway at http://{host}:{port} is healthy (HTTP 200)")
    samples = [
        live("roc_auc", 0.6875),
        live("f1", 0.25),
        MetricSample("mlops_business_cost_per_row", "Cost per labelled row.", 7.5, {**MODEL, "version": "3"}),
    ]
    assert hook.push("mlops_performance", samples, MODEL) == 3

    text = get(f"http://{host}:{port}/metrics")
    group = {("job", "mlops_performance"), ("instance", ""), ("model", "flight_delay"), ("version", "3")}
    assert series(text, "mlops_live_metric") == {
        frozenset({*group, ("metric", "roc_auc")}): 0.6875,
        frozenset({*group, ("metric", "f1")}): 0.25,
    }
    assert series(text, "mlops_business_cost_per_row") == {frozenset(group): 7.5}
    assert "# HELP mlops_live_metric Live metric on labelled rows." in text

    # A push replaces the group: a series left out of the next push disappears (no stale figure).
    hook.push("mlops_performance", [live("roc_auc", 0.5, version="4")], MODEL)
    text = get(f"http://{host}:{port}/metrics")
    assert series(text, "mlops_live_metric") == {
        frozenset(
            {
                ("job", "mlops_performance"),
                ("instance", ""),
                *MODEL.items(),
                ("version", "4"),
                ("metric", "roc_auc"),
            }
        ): 0.5
    }
    assert series(text, "mlops_business_cost_per_row") == {}


def test_basic_auth_from_the_connection(tmp_path, monkeypatch):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt

        hashed = crypt.crypt("s3cret", crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
    config = f"basic_auth_users:\n  mlops: {hashed}\n"
    with running_pushgateway(tmp_path, web_config=config, auth=("mlops", "s3cret")) as (host, port):
        connection(monkeypatch, "pg_auth", host, port, login="mlops", password="s3cret")
        PushgatewayHook("pg_auth").push("mlops_performance", [live("accuracy", 0.8)], MODEL)
        text = get(f"http://{host}:{port}/metrics", auth=("mlops", "s3cret"))
        assert list(series(text, "mlops_live_metric").values()) == [0.8]

        connection(monkeypatch, "pg_wrong", host, port, login="mlops", password="wrong")
        with pytest.raises(PushgatewayError, match=r"refused the push of job 'mlops_performance'.*401"):
            PushgatewayHook("pg_wrong").push("mlops_performance", [live("accuracy", 0.1)], MODEL)
        ok, message = PushgatewayHook("pg_wrong").test_connection()
        assert not ok and "401" in message
        with pytest.raises(urllib.error.HTTPError):
            get(f"http://{host}:{port}/metrics")
        assert list(
            series(
                get(f"http://{host}:{port}/metrics", auth=("mlops", "s3cret")), "mlops_live_metric"
            ).values()
        ) == [0.8]


def test_an_unreachable_gateway_fails_the_push_and_the_connection_test(monkeypatch):
    from tests.airflow_rest import free_port

    connection(monkeypatch, "pg_down", "127.0.0.1", free_port())
    hook = PushgatewayHook("pg_down", timeout=2)
    with pytest.raises(PushgatewayError, match="refused the push"):
        hook.push("mlops_performance", [live("f1", 0.1)], MODEL)
    ok, message = hook.test_connection()
    assert not ok and "is not reachable" in message
