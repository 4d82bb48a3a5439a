"""Telling "the service is down" apart from every other failure, and saying so in one line.

A task that talks to the MLflow tracking server, an S3 endpoint or Redis fails with a chain of client
exceptions when the service is gone (``MlflowException`` <- ``requests.ConnectionError`` <- urllib3's
``MaxRetryError`` <- ``NewConnectionError`` <- ``ConnectionRefusedError``...). :func:`unreachable_as` turns such a
chain into one :class:`ServiceUnavailable` whose message names the service, its endpoint, what the task was
doing and the root cause, and leaves every other error alone. It is retryable on purpose (not an
``AirflowFailException``): the service may be back for Airflow's next try.

Recognised without importing any client library: each exception in the chain is matched by the module and
name of the classes it derives from, so this module stays free of optional dependencies (redis, botocore).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

from mlops_ops.core.errors import MlopsError

#: (module, class name) of the exceptions that mean "could not reach the service" (refused, reset, timed
#: out, DNS), in the libraries mlops-ops talks through. Subclasses match too.
NETWORK_ERRORS = frozenset(
    {
        ("builtins", "ConnectionError"),  # refused, reset, aborted, broken pipe
        ("builtins", "TimeoutError"),  # socket.timeout
        ("socket", "gaierror"),  # the host name does not resolve
        ("requests.exceptions", "ConnectionError"),
        ("requests.exceptions", "Timeout"),
        ("urllib3.exceptions", "NewConnectionError"),
        ("urllib3.exceptions", "ProtocolError"),  # the server went away mid-response
        ("urllib3.exceptions", "TimeoutError"),
        ("botocore.exceptions", "ConnectionError"),  # EndpointConnectionError, ConnectTimeoutError, ...
        ("botocore.exceptions", "HTTPClientError"),
        ("redis.exceptions", "ConnectionError"),
        ("redis.exceptions", "TimeoutError"),
    }
)
#: pyarrow's S3 filesystem raises a plain ``OSError`` that only its message tells apart.
NETWORK_MESSAGES = (
    "AWS Error NETWORK_CONNECTION",
    "curlCode: 7,",
    "curlCode: 28,",
    "Could not connect to server",
)
#: How much of the root cause a message quotes.
CAUSE_CHARACTERS = 300


class ServiceUnavailable(MlopsError, ConnectionError):
    """A service did not answer (refused, reset, timed out). Retrying later may succeed.

    :param service: what the service is, e.g. ``"MLflow tracking server"``.
    :param endpoint: where it was expected, e.g. ``"http://mlflow:5000"``.
    :param action: what the task was doing, e.g. ``"registering churn"``.
    :param cause: the client library's exception.
    """

    def __init__(self, service: str, endpoint: str, action: str, cause: BaseException) -> None:
        self.service = service
        self.endpoint = endpoint
        self.action = action
        super().__init__(f"{service} {endpoint} unreachable while {action}: {root_cause(cause)}")


def _chain(error: BaseException) -> Iterator[BaseException]:
    """``error``, then its causes and contexts, each once (chains can loop)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _is_network_error(error: BaseException) -> bool:
    if any((cls.__module__, cls.__name__) in NETWORK_ERRORS for cls in type(error).__mro__):
        return True
    return type(error) is OSError and any(marker in str(error) for marker in NETWORK_MESSAGES)


def is_unreachable(error: BaseException) -> bool:
    """Whether ``error`` (or anything in its cause chain) says a service could not be reached."""
    return any(_is_network_error(link) for link in _chain(error))


def root_cause(error: BaseException) -> str:
    """What failed at the socket, as ``"Type: message"`` on one line, clipped: the first operating-system
    network error of ``error``'s chain (``ConnectionRefusedError: [Errno 111] Connection refused``), else the
    innermost exception. (The innermost is not always it: a client that retries on a fresh connection raises
    the refusal while handling the stale connection's error, which then ends the chain.)"""
    chain = list(_chain(error))
    system = [link for link in chain if isinstance(link, (ConnectionError, TimeoutError, socket.gaierror))]
    innermost = system[0] if system else chain[-1]
    text = " ".join(str(innermost).split())
    if len(text) > CAUSE_CHARACTERS:
        text = text[: CAUSE_CHARACTERS - 3] + "..."
    return f"{type(innermost).__name__}: {text}" if text else type(innermost).__name__


@contextmanager
def unreachable_as(service: str, endpoint: str, action: str) -> Iterator[None]:
    """Re-raise a failure to reach ``service`` inside the block as :class:`ServiceUnavailable`.

    Other errors pass unchanged, and so does a :class:`ServiceUnavailable` raised inside (the innermost
    block knows best what was being done).

    :param service: what the service is, e.g. ``"S3 endpoint"``.
    :param endpoint: where it was expected.
    :param action: what the block does, e.g. ``"publishing predictions for 2013-01-10"``.
    """
    try:
        yield
    except ServiceUnavailable:
        raise
    except Exception as err:
        if not is_unreachable(err):
            raise
        raise ServiceUnavailable(service, endpoint, action, err) from err
