"""WebhookHook and WebhookNotifier against a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from types import SimpleNamespace

import pytest
import structlog
from airflow.sdk import DAG

from mlops_ops.hooks.webhook import WebhookError, WebhookHook, redact_url
from mlops_ops.notifiers.webhook import WebhookNotifier, send_webhook_notification
from tests.webhook_support import Receiver

pytestmark = pytest.mark.timeout(30)


def _set_connection(monkeypatch, conn_id: str, url: str, password: str | None = None, **extra) -> None:
    conn = {"conn_type": "mlops_webhook", "host": url, "extra": {"timeout": 2, "retry_delay": 0.01, **extra}}
    if password:
        conn["password"] = password
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


@pytest.fixture
def receiver():
    with Receiver() as receiver:
        yield receiver


@pytest.fixture
def webhook(receiver, monkeypatch):
    _set_connection(monkeypatch, "webhook_unit", receiver.url, password="s3cret")
    return receiver


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _task_context(exception: BaseException | None = None, state: str = "failed") -> dict:
    dag = DAG("promote_flights", schedule=None)
    ti = SimpleNamespace(
        task_id="register",
        state=state,
        try_number=2,
        log_url="http://airflow.local/dags/promote_flights/runs/r1/tasks/register?try_number=2",
    )
    context = {"dag": dag, "ti": ti, "run_id": "manual__2026-01-01"}
    if exception is not None:
        context["exception"] = exception
    return context


def _fields(payload: dict) -> dict[str, str]:
    """``*key*\\nvalue`` field texts of every fields section, as a dict."""
    found = {}
    for block in payload["blocks"]:
        for field in block.get("fields", []):
            key, _, value = field["text"].partition("\n")
            found[key.strip("*")] = value
    return found


# --- hook ---------------------------------------------------------------------------------------------


def test_post_sends_json_with_the_bearer_token(webhook):
    status = WebhookHook(webhook_conn_id="webhook_unit").post({"text": "hello"})
    assert status == 200
    (request,) = webhook.requests
    assert request["path"] == "/hook"
    assert request["body"] == {"text": "hello"}
    assert request["headers"]["Authorization"] == "Bearer s3cret"
    assert request["headers"]["Content-Type"].startswith("application/json")


def test_no_authorization_header_without_a_password(receiver, monkeypatch):
    _set_connection(monkeypatch, "webhook_open", receiver.url)
    WebhookHook(webhook_conn_id="webhook_open").post({"text": "hello"})
    assert "Authorization" not in receiver.requests[0]["headers"]


def test_5xx_is_retried_then_succeeds(webhook):
    webhook.fail_first = 2
    assert WebhookHook(webhook_conn_id="webhook_unit").post({"text": "retry"}) == 200
    assert len(webhook.requests) == 3


def test_retries_are_bounded(webhook):
    webhook.fail_first = 100
    with pytest.raises(WebhookError, match=r"HTTP 500: no_service \(after 3 attempts\)") as raised:
        WebhookHook(webhook_conn_id="webhook_unit").post({"text": "never"})
    assert raised.value.status == 500
    assert len(webhook.requests) == 3


def test_4xx_fails_at_once_naming_url_and_status(webhook):
    webhook.fail_first, webhook.fail_status = 100, 404
    with pytest.raises(WebhookError) as raised:
        WebhookHook(webhook_conn_id="webhook_unit", max_tries=5).post({"text": "lost"})
    assert raised.value.status == 404
    assert f"http://127.0.0.1:{webhook.port}/hook answered HTTP 404" in str(raised.value)
    assert "s3cret" not in str(raised.value)
    assert len(webhook.requests) == 1


def test_connection_error_is_retried_then_raised(monkeypatch):
    _set_connection(monkeypatch, "webhook_down", f"http://127.0.0.1:{_closed_port()}/hook")
    with structlog.testing.capture_logs() as logs:
        with pytest.raises(WebhookError, match="is not reachable") as raised:
            WebhookHook(webhook_conn_id="webhook_down", max_tries=2).post({"text": "x"})
    assert raised.value.status is None
    assert [log["log_level"] for log in logs] == ["warning"]


def test_only_http_urls_are_posted_to(monkeypatch):
    _set_connection(monkeypatch, "webhook_file", "file:///etc/passwd")
    with pytest.raises(WebhookError, match="absolute http"):
        WebhookHook(webhook_conn_id="webhook_file").post({"text": "x"})
    _set_connection(monkeypatch, "webhook_space", "http://127.0.0.1:9/services/T0 B0/SECRET")
    with pytest.raises(WebhookError, match=r"127.0.0.1:9/services/\*\*\* is invalid") as raised:
        WebhookHook(webhook_conn_id="webhook_space").post({"text": "x"})
    assert "SECRET" not in str(raised.value)


def test_redact_url_hides_secrets_in_the_path_and_user_info():
    assert redact_url("https://hooks.slack.com/services/T0/B0/XXXX") == "https://hooks.slack.com/services/***"
    assert redact_url("https://user:pw@example.com:8443/hook?token=t") == "https://example.com:8443/hook"


def test_test_connection_connects_without_posting(webhook, monkeypatch):
    ok, message = WebhookHook(webhook_conn_id="webhook_unit").test_connection()
    assert ok, message
    assert "no message was posted" in message
    assert webhook.requests == []

    _set_connection(monkeypatch, "webhook_down", f"http://127.0.0.1:{_closed_port()}/hook")
    ok, message = WebhookHook(webhook_conn_id="webhook_down").test_connection()
    assert not ok
    assert "cannot connect" in message

    _set_connection(monkeypatch, "webhook_bad", "not a url")
    ok, message = WebhookHook(webhook_conn_id="webhook_bad").test_connection()
    assert not ok and "absolute http" in message


def test_ui_field_behaviour():
    behaviour = WebhookHook.get_ui_field_behaviour()
    assert set(behaviour["hidden_fields"]) == {"schema", "port", "login"}
    assert behaviour["relabeling"] == {"host": "Webhook URL", "password": "Bearer token (optional)"}


# --- notifier -----------------------------------------------------------------------------------------


def test_failure_payload_has_blocks_fields_exception_and_log_link(webhook):
    notifier = WebhookNotifier(webhook_conn_id="webhook_unit", fields={"model": "flights"})
    with structlog.testing.capture_logs() as logs:
        notifier(_task_context(exception=ValueError("AUC 0.61 < 0.70 <threshold>")))

    (payload,) = webhook.payloads
    assert payload["text"] == "promote_flights / register: failed (run manual__2026-01-01)"
    header, facts, exception = payload["blocks"]
    assert header == {"type": "section", "text": {"type": "mrkdwn", "text": payload["text"]}}
    assert all(field["type"] == "mrkdwn" for field in facts["fields"])
    assert _fields(payload) == {
        "dag_id": "promote_flights",
        "run_id": "manual__2026-01-01",
        "task_id": "register",
        "state": "failed",
        "try_number": "2",
        "model": "flights",
        "log": "<http://airflow.local/dags/promote_flights/runs/r1/tasks/register?try_number=2|View log>",
    }
    # Context values are escaped: Slack would read "<threshold>" as markup.
    assert exception["text"]["text"] == "*exception*\n```ValueError: AUC 0.61 &lt; 0.70 &lt;threshold&gt;```"
    assert webhook.requests[0]["headers"]["Authorization"] == "Bearer s3cret"
    notification = next(log for log in logs if log["event"].startswith("Notification:"))
    assert notification["log_level"] == "error"
    assert "ValueError: AUC 0.61" in notification["event"]


def test_text_and_fields_are_templated(webhook):
    notifier = send_webhook_notification(
        text="Promoted {{ dag.dag_id }} after try {{ ti.try_number }}",
        webhook_conn_id="webhook_unit",
        fields={"run": "{{ run_id }}"},
    )
    with structlog.testing.capture_logs() as logs:
        notifier(_task_context(state="success"))
    (payload,) = webhook.payloads
    assert payload["text"] == "Promoted promote_flights after try 2"
    assert _fields(payload)["run"] == "manual__2026-01-01"
    assert "exception" not in json.dumps(payload)
    assert {log["log_level"] for log in logs if log["event"].startswith("Notification")} == {"info"}


def test_default_text_renders_in_a_dag_callback(webhook):
    dag_run = SimpleNamespace(dag_id="promote_flights", run_id="r7", state="success")
    context = {"dag": DAG("promote_flights", schedule=None), "dag_run": dag_run, "run_id": "r7"}
    WebhookNotifier(webhook_conn_id="webhook_unit")(context)
    (payload,) = webhook.payloads
    assert payload["text"] == "promote_flights: success (run r7)"
    assert _fields(payload) == {"dag_id": "promote_flights", "run_id": "r7", "state": "success"}


def test_a_failed_post_is_logged_not_raised(webhook):
    webhook.fail_first, webhook.fail_status = 100, 404
    with structlog.testing.capture_logs() as logs:
        WebhookNotifier(webhook_conn_id="webhook_unit")(_task_context())
    errors = [log["event"] for log in logs if log["log_level"] == "error"]
    assert any("was not delivered" in event and "HTTP 404" in event for event in errors)
    assert len(webhook.requests) == 1

    with pytest.raises(WebhookError, match="HTTP 404"):
        WebhookNotifier(webhook_conn_id="webhook_unit", fail_silently=False)(_task_context())


def test_a_template_error_is_logged_not_raised(webhook):
    WebhookNotifier("{{ no_such_variable.x }}", webhook_conn_id="webhook_unit")(_task_context())
    assert webhook.requests == []
    with pytest.raises(Exception, match="no_such_variable"):
        WebhookNotifier("{{ no_such_variable.x }}", fail_silently=False)(_task_context())


def test_missing_connection_only_logs(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_NO_SUCH_WEBHOOK", raising=False)
    with structlog.testing.capture_logs() as logs:
        WebhookNotifier(webhook_conn_id="no_such_webhook", fail_silently=False)(
            _task_context(state="success")
        )
    events = [log["event"] for log in logs]
    assert any(event.startswith("Notification: promote_flights / register: success") for event in events)
    assert any("No connection 'no_such_webhook'" in event for event in events)

    from airflow.sdk.exceptions import AirflowNotFoundException

    strict = WebhookNotifier(
        webhook_conn_id="no_such_webhook", fail_silently=False, log_only_without_connection=False
    )
    with pytest.raises(AirflowNotFoundException):
        strict(_task_context())


def test_construction_does_no_io(monkeypatch):
    monkeypatch.setattr(WebhookHook, "get_connection", lambda *a: pytest.fail("looked up a connection"))
    notifier = WebhookNotifier(webhook_conn_id="anything", fields={"a": "b"})
    assert set(notifier.template_fields) <= set(vars(notifier))


def test_modules_import_nothing_heavy():
    # airflow.sdk itself imports httpx (its API client), so compare against a bare ``import airflow.sdk``.
    script = (
        "import sys\n"
        "heavy = lambda: sorted({'pandas', 'mlflow', 'requests', 'httpx'} & {m.split('.')[0] for m in sys.modules})\n"
        "import airflow.sdk\n"
        "print(heavy())\n"
        "import mlops_ops.notifiers.webhook, mlops_ops.hooks.webhook\n"
        "print(heavy())"
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr[-2000:]
    baseline, after = completed.stdout.strip().splitlines()[-2:]
    assert after == baseline
    assert {"pandas", "mlflow", "requests"}.isdisjoint(json.loads(after.replace("'", '"')))
