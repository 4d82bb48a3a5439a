"""Hook for a Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat, or any JSON receiver)."""

from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.error
import urllib.request
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowException

from mlops_ops.core.errors import MlopsError

#: Used when neither the hook's arguments nor the connection's extra say otherwise.
DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_TRIES = 3
DEFAULT_RETRY_DELAY = 1.0
#: ``test_connection`` only opens a socket; it need not wait as long as a post.
CONNECT_CHECK_TIMEOUT = 5.0
#: How much of an error response to quote: Slack answers a short reason such as ``invalid_token``.
ERROR_BODY_CHARS = 200


class WebhookError(MlopsError, AirflowException):
    """
    A webhook post failed: the receiver answered outside 2xx or could not be reached.

    :param message: What went wrong, naming the redacted URL.
    :param url: The webhook URL with its secret parts masked (see :func:`redact_url`).
    :param status: The HTTP status of the last answer, or ``None`` when no answer came.
    """

    def __init__(self, message: str, *, url: str, status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


def redact_url(url: str) -> str:
    """
    The URL fit for logs and error messages.

    Drops user info, query and fragment, and masks every path segment after the first: Slack, Teams and
    Discord put the webhook's secret in the path (``/services/T000/B000/XXXX``), so the path is a credential.

    :param url: The webhook URL.
    :return: e.g. ``https://hooks.slack.com/services/***``.
    """
    try:
        parts = urlsplit(url)
        netloc = parts.hostname or ""
        if parts.port is not None:
            netloc = f"{netloc}:{parts.port}"
    except ValueError:
        return "<unparsable webhook URL>"
    segments = [segment for segment in parts.path.split("/") if segment]
    path = "/" + segments[0] if segments else ""
    if len(segments) > 1:
        path += "/***"
    return f"{parts.scheme}://{netloc}{path}"


class WebhookHook(BaseHook):
    """
    Posts JSON payloads to a Slack-compatible incoming webhook through one Airflow connection.

    The connection's *Host* is the full webhook URL (``https://hooks.slack.com/services/...``,
    ``http://127.0.0.1:8080/hook``); an optional *Password* is sent as ``Authorization: Bearer <password>``;
    the extra may set ``timeout`` (seconds per request), ``max_tries`` and ``retry_delay`` (seconds before the
    first retry, doubled before each next one). Arguments given to the hook win over the extra.

    :param webhook_conn_id: Airflow connection id of the webhook.
    :param timeout: Seconds to wait for each request; ``None`` reads the extra (default 10).
    :param max_tries: Attempts per post, counting the first; only connection errors and 5xx answers are
        retried. ``None`` reads the extra (default 3).
    :param retry_delay: Seconds before the first retry, doubled for each next one; ``None`` reads the extra
        (default 1).
    """

    conn_name_attr = "webhook_conn_id"
    default_conn_name = "mlops_webhook_default"
    conn_type = "mlops_webhook"
    hook_name = "Webhook (Slack-compatible)"

    def __init__(
        self,
        webhook_conn_id: str = default_conn_name,
        timeout: float | None = None,
        max_tries: int | None = None,
        retry_delay: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.webhook_conn_id = webhook_conn_id
        self.timeout = timeout
        self.max_tries = max_tries
        self.retry_delay = retry_delay

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Labels of the connection form in the Airflow UI."""
        return {
            "hidden_fields": ["schema", "port", "login"],
            # A form label, not a secret.
            "relabeling": {"host": "Webhook URL", "password": "Bearer token (optional)"},  # nosec B105 # pragma: allowlist secret
            "placeholders": {
                "host": "https://hooks.slack.com/services/T000/B000/XXXX",  # pragma: allowlist secret
                "extra": '{"timeout": 10, "max_tries": 3, "retry_delay": 1}',
            },
        }

    @cached_property
    def _settings(self) -> dict[str, Any]:
        # Raises AirflowNotFoundException when the connection does not exist; callers decide what that means.
        conn = self.get_connection(self.webhook_conn_id)
        extra = conn.extra_dejson
        url = (conn.host or "").strip()
        timeout = self.timeout if self.timeout is not None else extra.get("timeout", DEFAULT_TIMEOUT)
        max_tries = (
            self.max_tries if self.max_tries is not None else extra.get("max_tries", DEFAULT_MAX_TRIES)
        )
        retry_delay = (
            self.retry_delay
            if self.retry_delay is not None
            else extra.get("retry_delay", DEFAULT_RETRY_DELAY)
        )
        return {
            "url": url,
            "token": conn.password or None,
            "timeout": float(timeout),
            "max_tries": max(1, int(max_tries)),
            "retry_delay": max(0.0, float(retry_delay)),
        }

    @property
    def url(self) -> str:
        """The webhook URL with its secret parts masked, for logs and messages."""
        return redact_url(self._settings["url"])

    def _checked_url(self) -> tuple[str, str, int]:
        """The URL's host and port, after refusing anything that is not an absolute http(s) URL."""
        url = self._settings["url"]
        if not url:
            raise WebhookError(
                f"Connection {self.webhook_conn_id!r} has no Host: set it to the full webhook URL", url=""
            )
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as err:
            raise WebhookError(
                f"Webhook URL {redact_url(url)} does not parse: {err}", url=redact_url(url)
            ) from err
        # urllib would also open file:// and ftp:// URLs; a webhook connection must not reach those.
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise WebhookError(
                f"Webhook URL of connection {self.webhook_conn_id!r} must be an absolute http(s) URL, "
                f"got {redact_url(url)}",
                url=redact_url(url),
            )
        return url, parts.hostname, port or (443 if parts.scheme == "https" else 80)

    def post(self, payload: dict[str, Any]) -> int:
        """
        Post ``payload`` as JSON to the webhook.

        Connection errors and 5xx answers are retried up to ``max_tries`` attempts in all, with a doubling
        delay; any other non-2xx answer fails at once. Redirects are not followed: urllib would turn a
        redirected POST into a GET without the body.

        :param payload: JSON-serializable message, e.g. a Slack ``{"text": ..., "blocks": [...]}``.
        :return: The HTTP status of the successful answer.
        :raises WebhookError: naming the redacted URL and the last HTTP status, when every attempt failed.
        """
        url, _, _ = self._checked_url()
        safe_url = redact_url(url)
        settings = self._settings
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if settings["token"]:
            headers["Authorization"] = f"Bearer {settings['token']}"
        body = json.dumps(payload).encode("utf-8")
        opener = urllib.request.build_opener(_NoRedirect)

        tries = settings["max_tries"]
        for attempt in range(1, tries + 1):
            request = urllib.request.Request(url, data=body, headers=headers, method="POST")
            try:
                with opener.open(request, timeout=settings["timeout"]) as response:
                    return response.status
            except urllib.error.HTTPError as err:
                reason = _read_reason(err)
                error = WebhookError(
                    f"Webhook {safe_url} answered HTTP {err.code}" + (f": {reason}" if reason else ""),
                    url=safe_url,
                    status=err.code,
                )
                if err.code < 500:
                    raise error from None
            except (ValueError, http.client.InvalidURL) as err:
                # http.client.InvalidURL quotes the URL, secret path included: name only the redacted one.
                raise WebhookError(
                    f"Webhook URL {safe_url} is invalid: {type(err).__name__}", url=safe_url
                ) from None
            except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
                cause = getattr(err, "reason", err)
                error = WebhookError(
                    f"Webhook {safe_url} is not reachable: {type(cause).__name__}: {cause}", url=safe_url
                )
            if attempt == tries:
                if tries > 1:
                    raise WebhookError(f"{error} (after {tries} attempts)", url=safe_url, status=error.status)
                raise error
            delay = settings["retry_delay"] * 2 ** (attempt - 1)
            self.log.warning("%s; attempt %d of %d, retrying in %.1fs", error, attempt, tries, delay)
            time.sleep(delay)
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    def test_connection(self) -> tuple[bool, str]:
        """
        Check the webhook without posting a message.

        Checks that the connection's Host is an absolute http(s) URL, that its host name resolves, and that a
        TCP connection to its host and port (443 or 80 unless the URL names one) opens within a few seconds.
        It does not check the path or the token: only a post could, and that would send a message.
        """
        try:
            _, host, port = self._checked_url()
        except Exception as err:
            return False, str(err)
        timeout = min(self._settings["timeout"], CONNECT_CHECK_TIMEOUT)
        try:
            socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as err:
            return False, f"Webhook host {host!r} does not resolve: {err}"
        try:
            with socket.create_connection((host, port), timeout=timeout):
                pass
        except OSError as err:
            return False, f"Webhook {self.url}: cannot connect to {host}:{port}: {type(err).__name__}: {err}"
        return True, f"Webhook {self.url}: {host}:{port} accepts connections (no message was posted)"


def _read_reason(err: urllib.error.HTTPError) -> str:
    """The start of an error answer's body, on one line; empty when there is none."""
    try:
        text = err.read(ERROR_BODY_CHARS + 1).decode("utf-8", errors="replace")
    except Exception:
        return ""
    text = " ".join(text.split())
    return text if len(text) <= ERROR_BODY_CHARS else text[:ERROR_BODY_CHARS] + "..."


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        # Returning None makes urllib raise the 3xx as an HTTPError, which post() reports.
        return None
