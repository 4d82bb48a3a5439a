"""core.services: a failure to reach a service becomes one message naming it; other failures pass unchanged."""

from __future__ import annotations

import socket

import pytest

from mlops_ops.core.services import ServiceUnavailable, is_unreachable, root_cause, unreachable_as


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _chained(*errors: BaseException) -> BaseException:
    """``errors[0]`` raised from ``errors[1]`` raised from ... (the first is the outermost)."""
    for outer, inner in zip(errors, errors[1:], strict=False):
        outer.__cause__ = inner
    return errors[0]


def test_a_refused_connection_deep_in_a_client_chain_is_unreachable():
    error = _chained(RuntimeError("API request failed"), ConnectionRefusedError(111, "Connection refused"))
    assert is_unreachable(error)
    assert root_cause(error) == "ConnectionRefusedError: [Errno 111] Connection refused"


def test_requests_and_urllib3_errors_from_a_closed_port_are_unreachable():
    import requests

    with pytest.raises(requests.ConnectionError) as raised:
        requests.get(f"http://127.0.0.1:{_closed_port()}/health", timeout=5)
    assert is_unreachable(raised.value)
    assert "Connection refused" in root_cause(raised.value)


def test_pyarrow_s3_network_errors_are_told_apart_by_their_message():
    import pyarrow.fs as pafs

    filesystem = pafs.S3FileSystem(
        access_key="k",
        secret_key="s",  # pragma: allowlist secret
        region="us-east-1",
        endpoint_override=f"127.0.0.1:{_closed_port()}",
        scheme="http",
        connect_timeout=1,
        request_timeout=1,
    )
    with pytest.raises(OSError) as raised:
        filesystem.get_file_info("bucket/key")
    assert is_unreachable(raised.value)
    assert not is_unreachable(OSError("When reading key 'k': Parquet magic bytes not found"))


@pytest.mark.parametrize(
    "error",
    [
        ValueError("a column is missing"),
        FileNotFoundError("no such file"),
        PermissionError("denied"),
        OSError("Parquet file size is 0 bytes"),
        KeyError("champion"),
    ],
)
def test_data_and_programming_errors_are_not_unreachable(error):
    assert not is_unreachable(error)


def test_the_message_names_service_endpoint_action_and_cause_on_one_line():
    error = _chained(RuntimeError("wrapped"), ConnectionRefusedError(111, "Connection\nrefused"))
    with (
        pytest.raises(ServiceUnavailable) as raised,
        unreachable_as("MLflow tracking server", "http://mlflow:5000", "registering flight_delay"),
    ):
        raise error
    assert str(raised.value) == (
        "MLflow tracking server http://mlflow:5000 unreachable while registering flight_delay: "
        "ConnectionRefusedError: [Errno 111] Connection refused"
    )
    assert raised.value.__cause__ is error
    assert (raised.value.service, raised.value.endpoint) == ("MLflow tracking server", "http://mlflow:5000")
    # Retryable: a ConnectionError, not one of Airflow's no-retry exceptions.
    assert isinstance(raised.value, ConnectionError)


def test_other_errors_and_inner_reports_pass_unchanged():
    with pytest.raises(ValueError, match="bad input"), unreachable_as("S3 endpoint", "http://s3", "scoring"):
        raise ValueError("bad input")
    inner = ServiceUnavailable("Redis online store", "redis://r:6379", "writing", ConnectionResetError())
    with pytest.raises(ServiceUnavailable) as raised, unreachable_as("S3 endpoint", "http://s3", "outer"):
        raise inner
    assert raised.value is inner


def test_the_cause_is_the_socket_error_not_a_stale_connection_handled_before_it():
    # redis-py: a pooled connection found closed, then a fresh one refused while handling that.
    stale = RuntimeError("Connection closed by server.")
    refused = ConnectionRefusedError(111, "Connection refused")
    refused.__context__ = stale
    error = _chained(RuntimeError("Error 111 connecting to redis:6379. Connection refused."), refused)
    assert root_cause(error) == "ConnectionRefusedError: [Errno 111] Connection refused"


def test_a_long_cause_is_clipped_and_a_cause_loop_ends():
    first, second = RuntimeError("a"), ConnectionError("x" * 1000)
    first.__cause__, second.__context__ = second, first
    assert is_unreachable(first)
    assert len(root_cause(first)) < 320
