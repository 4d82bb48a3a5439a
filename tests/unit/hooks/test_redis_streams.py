"""RedisStreamsHook: the URL it builds from an Airflow connection, and its connection test."""

from __future__ import annotations

import json

import pytest

from mlops_ops.hooks.redis_streams import RedisStreamsHook


@pytest.mark.parametrize(
    ("connection", "url"),
    [
        ("redis://redis:6379/1", "redis://redis:6379/1"),
        (
            json.dumps(
                {"conn_type": "redis", "host": "r", "password": "p@ss:/word", "extra": {"db": 2, "ssl": True}}
            ),
            "rediss://:p%40ss%3A%2Fword@r:6379/2",
        ),
        (
            json.dumps({"conn_type": "mlops_redis", "host": "r", "port": 7000, "login": "scorer"}),
            "redis://scorer:@r:7000/0",
        ),
    ],
)
def test_url_from_the_connection(monkeypatch, connection, url):
    monkeypatch.setenv("AIRFLOW_CONN_STREAMS", connection)
    assert RedisStreamsHook("streams").url == url


def test_a_bad_db_or_no_host_is_named(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_STREAMS", json.dumps({"conn_type": "redis", "host": "r", "extra": {"db": "x"}})
    )
    with pytest.raises(ValueError, match="db must be a number"):
        _ = RedisStreamsHook("streams").url
    monkeypatch.setenv("AIRFLOW_CONN_NOHOST", json.dumps({"conn_type": "redis"}))
    with pytest.raises(ValueError, match="names no Redis host"):
        _ = RedisStreamsHook("nohost").url


def test_connection_test_names_the_server_never_the_password(monkeypatch):
    # Port 1 on loopback: nothing listens there.
    monkeypatch.setenv("AIRFLOW_CONN_STREAMS", "redis://:hunter2@127.0.0.1:1/0")
    ok, message = RedisStreamsHook("streams").test_connection()
    assert not ok
    assert "'streams' does not answer" in message
    assert "hunter2" not in message
