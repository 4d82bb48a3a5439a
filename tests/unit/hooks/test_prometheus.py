"""PushgatewayHook without a gateway: the URL from the connection, and samples refused before any request."""

from __future__ import annotations

import json

import pytest

from mlops_ops.hooks.prometheus import MetricSample, PushgatewayError, PushgatewayHook


def hook(monkeypatch, **fields) -> PushgatewayHook:
    monkeypatch.setenv("AIRFLOW_CONN_PG_UNIT", json.dumps({"conn_type": "prometheus_pushgateway", **fields}))
    return PushgatewayHook("pg_unit")


@pytest.mark.parametrize(
    ("fields", "url"),
    [
        ({"host": "pushgateway"}, "http://pushgateway:9091"),
        ({"host": "gw.example", "port": 443, "schema": "https"}, "https://gw.example:443"),
        ({"host": "http://127.0.0.1:19091"}, "http://127.0.0.1:19091"),
    ],
)
def test_url_from_the_connection(monkeypatch, fields, url):
    assert hook(monkeypatch, **fields).url == url


@pytest.mark.parametrize(
    ("fields", "words"),
    [({}, "has no Host"), ({"host": "ftp://gw"}, "over http or https, got scheme 'ftp'")],
)
def test_a_connection_without_a_usable_gateway_is_named(monkeypatch, fields, words):
    with pytest.raises(PushgatewayError, match=words):
        hook(monkeypatch, **fields).get_conn()


GROUP = {"model": "m"}


@pytest.mark.parametrize(
    ("samples", "words"),
    [
        ([], "no samples"),
        ([MetricSample("mlops-live", "d", 1.0)], "'mlops-live' is not a valid Prometheus metric name"),
        ([MetricSample("mlops_x", "d", float("nan"))], "is NaN; leave an undefined value out"),
        ([MetricSample("mlops_x", "d", None)], "has no numeric value"),
        ([MetricSample("mlops_x", "d", 1.0, {"__name": "a"})], "'__name' is not a valid Prometheus label"),
        ([MetricSample("mlops_x", "d", 1.0, {"model": "other"})], "model='other' but is pushed in the group"),
        (
            [MetricSample("mlops_x", "d", 1.0, {"a": "1"}), MetricSample("mlops_x", "d", 2.0, {"b": "1"})],
            r"samples of mlops_x must share label names: \['a'\] and \['b'\]",
        ),
    ],
)
def test_invalid_samples_are_refused_before_any_request(monkeypatch, samples, words):
    # Port 9 (discard) on loopback: were a request made, the error would say "refused the push" instead.
    with pytest.raises(PushgatewayError, match=words):
        hook(monkeypatch, host="127.0.0.1", port=9).push("job", samples, GROUP)
