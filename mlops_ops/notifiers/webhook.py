"""Notifier that posts a Slack-compatible message to a webhook, for DAG and task callbacks."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier

from mlops_ops.hooks.webhook import WebhookHook

if TYPE_CHECKING:
    from airflow.sdk.definitions.context import Context

#: Works for task callbacks (``ti`` in the context) and DAG callbacks (only ``dag_run``); DAG templates use
#: StrictUndefined, so a bare ``{{ ti.task_id }}`` would fail to render in a DAG callback.
DEFAULT_TEXT = (
    "{{ dag.dag_id }}"
    "{% if ti is defined %} / {{ ti.task_id }}: {{ ti.state }}"
    "{% elif dag_run is defined %}: {{ dag_run.state }}{% endif %}"
    " (run {{ run_id }})"
)
#: Slack's limits: 3000 characters of section text, 2000 per field, 10 fields per section.
SECTION_TEXT_CHARS = 3000
FIELD_TEXT_CHARS = 2000
FIELDS_PER_SECTION = 10
FAILED_STATES = frozenset({"failed", "upstream_failed"})


class WebhookNotifier(BaseNotifier):
    """
    Posts a Slack-compatible message about a DAG run or task instance to a webhook, and logs it.

    Use it as ``on_success_callback`` / ``on_failure_callback`` of a DAG or task. The payload is a Slack
    incoming-webhook message: ``text`` (the fallback line) and ``blocks`` holding ``text`` as a section, the
    run's facts (dag_id, run_id, task_id, state, try_number, then ``fields``) as section fields, the
    exception when the context holds one, and a link to the task log when the task instance has a
    ``log_url``. The message is always logged, at ERROR for failures and INFO otherwise, so it is kept even
    where no webhook is configured.

    :param text: The message's first line (templated, mrkdwn).
    :param webhook_conn_id: Airflow connection id of the webhook (see :class:`~mlops_ops.hooks.webhook.WebhookHook`).
    :param fields: Extra facts shown as ``*key*`` / value fields (templated), e.g. ``{"model": "flights",
        "version": "{{ ti.xcom_pull('register')['version'] }}"}``.
    :param fail_silently: Log a failed post instead of raising, so a notification never fails its task or
        run; also covers a template that does not render.
    :param log_only_without_connection: When ``webhook_conn_id`` does not exist, only log the message (the
        embedded demo has no webhook); when false a missing connection is an error like any other.
    """

    template_fields: Sequence[str] = ("text", "fields")

    def __init__(
        self,
        text: str = DEFAULT_TEXT,
        *,
        webhook_conn_id: str = WebhookHook.default_conn_name,
        fields: dict[str, str] | None = None,
        fail_silently: bool = True,
        log_only_without_connection: bool = True,
    ) -> None:
        super().__init__()
        self.text = text
        self.webhook_conn_id = webhook_conn_id
        self.fields = fields
        self.fail_silently = fail_silently
        self.log_only_without_connection = log_only_without_connection

    @cached_property
    def hook(self) -> WebhookHook:
        """The hook that posts to ``webhook_conn_id``."""
        return WebhookHook(webhook_conn_id=self.webhook_conn_id)

    def __call__(self, *args: Any) -> None:
        """
        Render the templates and notify; with ``fail_silently`` nothing raises, not even a bad template.

        :param args: The callback's context, or the positional arguments of an SLA-style callback.
        """
        try:
            super().__call__(*args)
        except Exception:
            if not self.fail_silently:
                raise
            # BaseNotifier has logged the error; a callback must not turn a success into a failure.

    def build_payload(self, context: Context) -> dict[str, Any]:
        """
        The Slack incoming-webhook message for ``context``, from the rendered ``text`` and ``fields``.

        :param context: The Airflow context of the callback.
        :return: ``{"text": str, "blocks": [section, ...]}``.
        """
        facts = _facts(context)
        pairs = [(key, _escape(value)) for key, value in facts.items() if key != "exception"]
        pairs += [(str(key), str(value)) for key, value in (self.fields or {}).items()]
        log_url = getattr(context.get("ti"), "log_url", None)
        if log_url:
            pairs.append(("log", f"<{log_url}|View log>"))

        blocks: list[dict[str, Any]] = [_section(self.text)]
        field_items = [
            {"type": "mrkdwn", "text": _clip(f"*{_escape(key)}*\n{value}", FIELD_TEXT_CHARS)}
            for key, value in pairs
        ]
        for start in range(0, len(field_items), FIELDS_PER_SECTION):
            blocks.append({"type": "section", "fields": field_items[start : start + FIELDS_PER_SECTION]})
        if "exception" in facts:
            # Clip inside the code block, so the closing fence survives a long traceback message.
            exception = _clip(_escape(facts["exception"]), SECTION_TEXT_CHARS - 20)
            blocks.append(_section(f"*exception*\n```{exception}```"))
        return {"text": _clip(self.text, SECTION_TEXT_CHARS), "blocks": blocks}

    def notify(self, context: Context) -> None:
        """
        Log the message, then post it to the webhook.

        :param context: The Airflow context of the callback.
        """
        from airflow.sdk.exceptions import AirflowNotFoundException

        facts = _facts(context)
        failed = "exception" in facts or facts.get("state") in FAILED_STATES
        summary = self.text + "".join(f"\n  {key}: {value}" for key, value in facts.items())
        summary += "".join(f"\n  {key}: {value}" for key, value in (self.fields or {}).items())
        self.log.log(logging.ERROR if failed else logging.INFO, "Notification: %s", summary)

        payload = self.build_payload(context)
        try:
            status = self.hook.post(payload)
        except AirflowNotFoundException:
            if not self.log_only_without_connection:
                raise
            self.log.info("No connection %r: the notification was only logged", self.webhook_conn_id)
            return
        except Exception as err:
            if not self.fail_silently:
                raise
            self.log.error("Notification was not delivered through %r: %s", self.webhook_conn_id, err)
            return
        self.log.info("Notification posted to %s (HTTP %d)", self.hook.url, status)


#: Function-style name, as Airflow's providers offer (``send_slack_webhook_notification``).
send_webhook_notification = WebhookNotifier


def _facts(context: Context) -> dict[str, str]:
    """dag_id, run_id, task_id, state, try_number and exception from the context; absent ones left out."""
    ti = context.get("ti")
    dag = context.get("dag")
    dag_run = context.get("dag_run")
    state = getattr(ti, "state", None) if ti is not None else getattr(dag_run, "state", None)
    exception = context.get("exception")
    facts = {
        "dag_id": getattr(dag, "dag_id", None) or getattr(dag_run, "dag_id", None),
        "run_id": context.get("run_id") or getattr(dag_run, "run_id", None),
        "task_id": getattr(ti, "task_id", None),
        # TaskInstanceState and DagRunState are str enums; show "failed", not "TaskInstanceState.FAILED".
        "state": getattr(state, "value", state),
        "try_number": getattr(ti, "try_number", None),
        "exception": (
            f"{type(exception).__name__}: {exception}" if isinstance(exception, BaseException) else exception
        ),
    }
    return {key: str(value) for key, value in facts.items() if value not in (None, "")}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _clip(text, SECTION_TEXT_CHARS)}}


def _escape(text: str) -> str:
    # Slack reads <, > and & as markup; values from the context (exception texts) are plain text.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
