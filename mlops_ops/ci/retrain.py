"""``mlops-ops ci retrain``: retrain for the commit a CI job tested, through Airflow's REST API, and exit on the
verdict of the evaluation gate.

The job triggers the retrain DAG with ``conf {"code_revision", "force", "reason"}``; the DAG's ``TrainOperator``
refuses to train unless the workers run that revision, so the gate judges the tested code. The command follows
the run until it ends and reads its task instances, the gate's decision (XCom of the gate task, pushed even when
the gate refuses) and the registered version (XCom of the register task). It talks to Airflow's public API
(``/api/v2``) with the standard library only: a CI runner needs neither Airflow nor MLflow installed.

Authentication comes from the environment, never the command line: ``$AIRFLOW_TOKEN`` (a JWT), or
``$AIRFLOW_USERNAME`` and ``$AIRFLOW_PASSWORD`` exchanged at ``POST /auth/token`` (Airflow 3's simple auth
manager and the FAB auth manager both serve it). Messages name endpoints, never credentials.

Exit statuses (``EXIT_*`` below): 0 registered (or triggered, with ``--no-wait``); 2 nothing triggered (bad input,
unknown DAG, DAG paused without ``--unpause``, conf refused); 3 the gate refused the challenger; 4 the run failed
elsewhere (or registered a model of another revision); 5 no training (no data version to train on); 6 Airflow
refused the credentials or access; 7 Airflow unreachable; 8 timed out while the run goes on.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from mlops_ops.core.errors import MlopsError, RefusedByPolicy
from mlops_ops.core.printable import printable

#: The challenger passed the gate and was registered (with ``--no-wait``: the run was triggered).
EXIT_REGISTERED = 0
#: Nothing was triggered: invalid input, an unknown DAG, a paused DAG without ``--unpause``, conf refused.
EXIT_NOT_TRIGGERED = 2
#: The gate refused the challenger; its failing checks are printed.
EXIT_GATE_REFUSED = 3
#: The run failed before or after the gate (or registered a model trained by another revision).
EXIT_RUN_FAILED = 4
#: No training happened: the data task found no data version to train on (see ``--force``).
EXIT_NO_TRAINING = 5
#: Airflow refused the credentials or the user's access (HTTP 401 or 403).
EXIT_AUTH_REFUSED = 6
#: Airflow could not be reached (connection refused, no answer, DNS).
EXIT_UNREACHABLE = 7
#: The run did not end within ``--timeout``; it goes on in Airflow.
EXIT_TIMED_OUT = 8

Status = Literal[
    "registered",
    "triggered",
    "not_triggered",
    "gate_refused",
    "run_failed",
    "no_training",
    "auth_refused",
    "unreachable",
    "timed_out",
]
EXIT_CODES: dict[Status, int] = {
    "registered": EXIT_REGISTERED,
    "triggered": EXIT_REGISTERED,
    "not_triggered": EXIT_NOT_TRIGGERED,
    "gate_refused": EXIT_GATE_REFUSED,
    "run_failed": EXIT_RUN_FAILED,
    "no_training": EXIT_NO_TRAINING,
    "auth_refused": EXIT_AUTH_REFUSED,
    "unreachable": EXIT_UNREACHABLE,
    "timed_out": EXIT_TIMED_OUT,
}

#: The Airflow API server's URL, when ``--airflow-url`` is not given (the first one set wins).
URL_VARIABLES = ("MLOPS_AIRFLOW_URL", "AIRFLOW_URL")
TOKEN_VARIABLE = "AIRFLOW_TOKEN"  # nosec B105 - the variable's name, not a token
USERNAME_VARIABLE = "AIRFLOW_USERNAME"
PASSWORD_VARIABLE = "AIRFLOW_PASSWORD"  # nosec B105 # pragma: allowlist secret (the variable's name)

MAX_REVISION = 64
MAX_REASON = 500
MAX_MODEL_NAME = 200
REVISION_PATTERN = re.compile(r"[0-9A-Za-z._-]{1,64}")
#: Airflow's own rule for dag and task ids (``airflow.utils.helpers.KEY_REGEX``, 250 characters at most).
AIRFLOW_KEY_PATTERN = re.compile(r"[\w.-]{1,250}")
#: Seconds one HTTP request may take before Airflow counts as unreachable.
REQUEST_SECONDS = 30.0
#: States in which a sensor has looked and waits to look again (deferred, or rescheduled between pokes).
WAITING_STATES = frozenset({"deferred", "up_for_reschedule"})
#: Answers of a busy API server (SQLite locked, a restarting worker) that are asked again.
TRANSIENT_STATUSES = frozenset({502, 503, 504})
#: Failed polls in a row tolerated while following a run (the API server restarting, a network blip).
POLL_FAILURES = 5


class RetrainRequestError(MlopsError, ValueError):
    """An argument that cannot be sent; the message names it and shows at most its beginning."""


@dataclass(frozen=True)
class RetrainRequest:
    """What a CI job asks for: a retrain of ``model`` by ``dag_id`` for the revision it tested.

    :param model: the registered model the DAG retrains (used in the default reason and the report).
    :param code_revision: the revision the workers must run (a commit id; letters, digits, ``-_.``, ≤ 64).
    :param dag_id: the retrain DAG.
    :param reason: why, recorded on the model version (≤ 500 characters); default ``"ci: <model> at <revision>"``.
    :param force: retrain on data the champion or challenger was already trained on.
    :param unpause: unpause the DAG when it is paused (otherwise a paused DAG is refused: its run would wait).
    :param wait: follow the run to its end; ``False`` returns once it is triggered.
    :param timeout_seconds: how long to follow the run.
    :param poll_seconds: how often to look at it.
    :param data_task: the task that waits for a data version (skipped: no training happened).
    :param train_task: the task whose result names the code revision that trained the model.
    :param gate_task: the task whose XCom is the gate's decision.
    :param register_task: the task whose XCom is the registered version.
    """

    model: str
    code_revision: str
    dag_id: str = "retrain"
    reason: str | None = None
    force: bool = False
    unpause: bool = False
    wait: bool = True
    timeout_seconds: float = 3600.0
    poll_seconds: float = 10.0
    data_task: str = "wait_for_data"
    train_task: str = "train"
    gate_task: str = "evaluate_gate"
    register_task: str = "register"

    def __post_init__(self) -> None:
        if not REVISION_PATTERN.fullmatch(self.code_revision):
            raise RetrainRequestError(
                f"--code-revision must be a revision id (letters, digits, - _ ., at most {MAX_REVISION} "
                f"characters), got {_shown(self.code_revision)}"
            )
        if not self.model or len(self.model) > MAX_MODEL_NAME or not self.model.isprintable():
            raise RetrainRequestError(
                f"--model must be a registered model name (printable, 1-{MAX_MODEL_NAME} characters), "
                f"got {_shown(self.model)}"
            )
        if self.reason is not None and (len(self.reason) > MAX_REASON or not self.reason.strip()):
            raise RetrainRequestError(
                f"--reason must hold 1-{MAX_REASON} characters, got {_shown(self.reason)}"
            )
        for option, value in (
            ("--dag-id", self.dag_id),
            ("--data-task", self.data_task),
            ("--train-task", self.train_task),
            ("--gate-task", self.gate_task),
            ("--register-task", self.register_task),
        ):
            if not AIRFLOW_KEY_PATTERN.fullmatch(value):
                raise RetrainRequestError(
                    f"{option} must be an Airflow id (letters, digits, _ . -), got {_shown(value)}"
                )
        if not 0 < self.timeout_seconds <= 7 * 24 * 3600:
            raise RetrainRequestError(f"--timeout must be 1 s to 7 days, got {self.timeout_seconds:g}")
        if not 0 < self.poll_seconds <= 3600:
            raise RetrainRequestError(
                f"--poll-seconds must be above 0 and at most 3600, got {self.poll_seconds:g}"
            )

    @property
    def trigger_reason(self) -> str:
        """The reason recorded on the run and the model version."""
        if self.reason is not None:
            return self.reason
        return f"ci: {self.model} at {self.code_revision}"[:MAX_REASON]

    def conf(self) -> dict[str, Any]:
        """The run conf the retrain DAGs take as params."""
        return {"code_revision": self.code_revision, "force": self.force, "reason": self.trigger_reason}


@dataclass(frozen=True)
class AirflowAccess:
    """Where the Airflow API server is and how to authenticate; secrets are kept out of ``repr``.

    :param url: the API server's base URL (``http(s)://host[:port][/prefix]``), without credentials in it.
    :param token: a bearer JWT; wins over username and password.
    :param username: exchanged with ``password`` for a JWT at ``POST /auth/token``.
    :param password: see ``username``.
    """

    url: str
    token: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", _base_url(self.url))

    @classmethod
    def from_environment(
        cls, url: str | None = None, environ: Mapping[str, str] | None = None
    ) -> AirflowAccess:
        """The access given by ``url`` (else ``$MLOPS_AIRFLOW_URL``, ``$AIRFLOW_URL``) and the credentials in
        ``$AIRFLOW_TOKEN``, or ``$AIRFLOW_USERNAME`` and ``$AIRFLOW_PASSWORD``.

        :raises RetrainRequestError: no URL, or one that is not a plain http(s) URL.
        """
        environ = os.environ if environ is None else environ
        url = url or next((environ[name] for name in URL_VARIABLES if environ.get(name)), None)
        if not url:
            raise RetrainRequestError(
                f"no Airflow URL: pass --airflow-url or set {' or '.join(reversed(URL_VARIABLES))}"
            )
        return cls(
            url=url,
            token=environ.get(TOKEN_VARIABLE) or None,
            username=environ.get(USERNAME_VARIABLE) or None,
            password=environ.get(PASSWORD_VARIABLE) or None,
        )


def _base_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RetrainRequestError(f"the Airflow URL must be http(s)://host[:port], got {_shown(url, 60)}")
    if parts.username is not None or parts.password is not None:
        # Not echoed: it holds a password. Credentials belong in the environment, where no log shows them.
        raise RetrainRequestError(
            f"the Airflow URL must not hold credentials: set {TOKEN_VARIABLE}, or {USERNAME_VARIABLE} and "
            f"{PASSWORD_VARIABLE}"
        )
    if parts.query or parts.fragment:
        raise RetrainRequestError(f"the Airflow URL must have no query or fragment, got {_shown(url, 60)}")
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


@dataclass(frozen=True)
class RetrainOutcome:
    """What became of a CI retrain: the status (which decides the exit code), one line and further lines for
    people, and the facts a CI summary shows.

    :param status: see :data:`EXIT_CODES`.
    :param message: one line saying what happened.
    :param details: further lines: failing gate checks, metrics against the champion, the failed task's error.
    :param airflow_url: the API server's base URL.
    :param dag_id: the retrain DAG.
    :param model: the model asked for.
    :param code_revision: the revision asked for.
    :param run_id: the triggered run, once there is one.
    :param run_state: its last state seen.
    :param task_states: each task's last state seen.
    :param registered_version: the version the register task returned.
    :param registered_code_revision: the revision that trained it (the train task's result; the version's
        ``mlops.code_revision`` tag).
    :param gate: the gate's decision as the gate task pushed it.
    :param failed_task: the task that failed the run.
    :param error: the failed task's error, or the request's.
    :param endpoint: the API call refused or unanswered (``METHOD URL``).
    :param http_status: its HTTP status, when it answered.
    """

    status: Status
    message: str
    details: tuple[str, ...] = ()
    airflow_url: str = ""
    dag_id: str = ""
    model: str = ""
    code_revision: str = ""
    run_id: str | None = None
    run_state: str | None = None
    task_states: dict[str, str] = field(default_factory=dict)
    registered_version: str | None = None
    registered_code_revision: str | None = None
    gate: dict[str, Any] | None = None
    failed_task: str | None = None
    error: str | None = None
    endpoint: str | None = None
    http_status: int | None = None

    @property
    def exit_code(self) -> int:
        """The command's exit status."""
        return EXIT_CODES[self.status]

    def lines(self) -> list[str]:
        """The report for people: the message, then the details indented."""
        return [self.message, *(f"  {line}" for line in self.details)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form, for ``--json`` (a CI summary)."""
        return {
            "status": self.status,
            "exit_code": self.exit_code,
            "message": self.message,
            "details": list(self.details),
            "airflow_url": self.airflow_url,
            "dag_id": self.dag_id,
            "model": self.model,
            "code_revision": self.code_revision,
            "run_id": self.run_id,
            "run_state": self.run_state,
            "task_states": dict(self.task_states),
            "registered_version": self.registered_version,
            "registered_code_revision": self.registered_code_revision,
            "gate": self.gate,
            "failed_task": self.failed_task,
            "error": self.error,
            "endpoint": self.endpoint,
            "http_status": self.http_status,
        }


# --- Airflow's REST API -------------------------------------------------------------------------------------


class AirflowApiError(MlopsError):
    """A call to the API server that did not give an answer to use; ``endpoint`` is ``METHOD URL``."""

    def __init__(self, endpoint: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.status = status


class AuthenticationRefused(AirflowApiError, RefusedByPolicy):
    """401 or 403: the credentials, or the user's permissions; asking again changes nothing."""


class AirflowUnreachable(AirflowApiError, ConnectionError):
    """No answer: connection refused, a timeout, an unknown host; asking later may succeed."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # urllib would send the Authorization header on to wherever a redirect points.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class _AirflowApi:
    """The few calls of Airflow 3's REST API this command makes, with a bearer token."""

    def __init__(self, access: AirflowAccess, sleep: Callable[[float], None]) -> None:
        self.access = access
        self.sleep = sleep
        self.token = access.token
        self.opener = urllib.request.build_opener(_NoRedirect)

    def endpoint(self, method: str, path: str) -> str:
        return f"{method} {self.access.url}{path}"

    def login(self) -> None:
        """Exchange username and password for a JWT, when no token was given."""
        if self.token or not (self.access.username and self.access.password):
            return
        answer = self._send(
            "POST",
            "/auth/token",
            {"username": self.access.username, "password": self.access.password},
            authenticated=False,
        )
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not token:
            endpoint = self.endpoint("POST", "/auth/token")
            raise AirflowApiError(endpoint, f"{endpoint} answered without an access_token")
        self.token = str(token)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One API call; a 401 with username and password logs in again once (an expired token)."""
        try:
            return self._send(method, path, body)
        except AuthenticationRefused as err:
            if err.status != 401 or not (self.access.username and self.access.password) or self.access.token:
                raise
            self.token = None
            self.login()
            return self._send(method, path, body)

    def _send(self, method: str, path: str, body: dict[str, Any] | None, authenticated: bool = True) -> Any:
        endpoint = self.endpoint(method, path.split("?", 1)[0])
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        if authenticated and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = json.dumps(body).encode() if body is not None else None
        for attempt in range(3):
            request = urllib.request.Request(
                self.access.url + path, data=data, method=method, headers=headers
            )
            try:
                # The URL was checked to be http(s) in AirflowAccess; nothing else is opened.
                with self.opener.open(request, timeout=REQUEST_SECONDS) as response:  # nosec B310
                    raw = response.read()
                return json.loads(raw) if raw else {}
            except urllib.error.HTTPError as err:
                detail = _detail(err)
                if err.code in (401, 403):
                    # Airflow 3: 401 without a token or with an expired one; 403 for an invalid token
                    # ("Invalid JWT token") or a user without the permission ("Forbidden").
                    what = (
                        "refused the credentials"
                        if err.code == 401
                        else "refused the token or the user's access"
                    )
                    raise AuthenticationRefused(
                        endpoint, f"Airflow {what}: {endpoint} answered {err.code} ({detail})", err.code
                    ) from None
                if err.code in TRANSIENT_STATUSES and attempt < 2:
                    self.sleep(2.0 * (attempt + 1))
                    continue
                if 300 <= err.code < 400:
                    detail = "a redirect, not followed: give the API server's own URL"
                raise AirflowApiError(
                    endpoint, f"{endpoint} answered {err.code} ({detail})", err.code
                ) from None
            # HTTPException: a connection closed mid-answer (a proxy, a server restarting).
            except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as err:
                reason = getattr(err, "reason", None) or f"{type(err).__name__}: {err}"
                raise AirflowUnreachable(
                    endpoint, f"Airflow unreachable: {endpoint} failed ({printable(reason, 200)})"
                ) from None
            except ValueError as err:  # not JSON: something else listens there
                raise AirflowApiError(
                    endpoint, f"{endpoint} answered something that is not JSON ({err})"
                ) from None
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    # The calls, each named after what it reads or changes.

    def dag(self, dag_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/api/v2/dags/{_quote(dag_id)}"))

    def unpause(self, dag_id: str) -> None:
        self.call("PATCH", f"/api/v2/dags/{_quote(dag_id)}", {"is_paused": False})

    def trigger(self, dag_id: str, conf: dict[str, Any], note: str) -> dict[str, Any]:
        body = {"logical_date": None, "conf": conf, "note": note}
        return dict(self.call("POST", f"/api/v2/dags/{_quote(dag_id)}/dagRuns", body))

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/api/v2/dags/{_quote(dag_id)}/dagRuns/{_quote(run_id)}"))

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        path = f"/api/v2/dags/{_quote(dag_id)}/dagRuns/{_quote(run_id)}/taskInstances?limit=1000"
        return list(self.call("GET", path).get("task_instances", []))

    def skip(self, dag_id: str, run_id: str, task_id: str, note: str) -> None:
        path = f"/api/v2/dags/{_quote(dag_id)}/dagRuns/{_quote(run_id)}/taskInstances/{_quote(task_id)}"
        self.call("PATCH", path, {"new_state": "skipped", "note": note})

    def xcom(self, dag_id: str, run_id: str, task_id: str) -> Any:
        """The task's ``return_value``, or ``None`` when it pushed none."""
        path = (
            f"/api/v2/dags/{_quote(dag_id)}/dagRuns/{_quote(run_id)}/taskInstances/{_quote(task_id)}"
            "/xcomEntries/return_value"
        )
        try:
            value = self.call("GET", path).get("value")
        except AirflowApiError as err:
            if err.status == 404:
                return None
            raise
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value

    def error_of(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> str | None:
        """The exception that failed a task try, from its log; ``None`` when the log cannot be read."""
        path = (
            f"/api/v2/dags/{_quote(dag_id)}/dagRuns/{_quote(run_id)}/taskInstances/{_quote(task_id)}"
            f"/logs/{max(try_number, 0)}?full_content=true"
        )
        try:
            content = self.call("GET", path).get("content")
        except (AirflowApiError, AttributeError):
            return None
        return error_from_log(content)


def error_from_log(content: Any) -> str | None:
    """The error a task's structured log ends with: the raised exception (``error_detail``), else the last
    error-level event; ``None`` without either.

    :param content: the ``content`` of Airflow's log endpoint: structured events, or plain lines.
    """
    if not isinstance(content, list):
        return None
    events = [event for event in content if isinstance(event, dict)]
    for event in reversed(events):
        raised = [e for e in event.get("error_detail") or [] if isinstance(e, dict)]
        if raised:
            # Outermost first; causes (``is_cause``) follow the exception that was raised.
            exception = next((e for e in raised if not e.get("is_cause")), raised[0])
            kind, value = exception.get("exc_type") or "", exception.get("exc_value") or ""
            return printable(f"{kind}: {value}" if kind else value, 600)
    for event in reversed(events):
        if str(event.get("level", "")).lower() in ("error", "critical") and event.get("event"):
            return printable(event["event"], 600)
    return None


def _detail(err: urllib.error.HTTPError) -> str:
    """The server's reason for an error answer, short and on one line (FastAPI's ``detail``, else the reason)."""
    try:
        body = json.loads(err.read(64 * 1024) or b"{}")
    except (ValueError, OSError):
        body = {}
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list):  # a validation error: where and what, for each
        detail = "; ".join(
            f"{'.'.join(map(str, item.get('loc', [])))}: {item.get('msg', '')}"
            for item in detail
            if isinstance(item, dict)
        )
    return printable(detail or err.reason or "no detail", 300)


def _quote(part: str) -> str:
    return urllib.parse.quote(part, safe="")


def _shown(value: str, limit: int = 20) -> str:
    """A value as an error shows it: its beginning, escaped, and its length when clipped."""
    text = repr(printable(value, limit))
    return text if len(value) <= limit else f"{text} ({len(value)} characters)"


# --- the retrain ----------------------------------------------------------------------------------------------


def retrain_for_revision(
    request: RetrainRequest,
    access: AirflowAccess,
    *,
    progress: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> RetrainOutcome:
    """Trigger ``request.dag_id`` for ``request.code_revision``, follow the run and return what became of it.

    A data task that waits (deferred: no data version to train on) is marked skipped, so the run ends now
    without training, as the sensor's own soft fail would end it hours later, and holds no run slot meanwhile.

    :param request: what to retrain, for which revision.
    :param access: the API server and credentials.
    :param progress: told one line at each step (triggered, a task started, ...); default silent.
    :param clock: monotonic seconds (tests pass a fake).
    :param sleep: waits between polls (tests pass a fake).
    :return: the outcome; its ``exit_code`` is the command's.
    """
    return _Retrain(
        request, _AirflowApi(access, sleep), progress or (lambda line: None), clock, sleep
    ).outcome()


def revision_matches(running: str, requested: str) -> bool:
    """Whether ``running`` is the requested revision (the full id, or one it begins with, 7+ characters), as
    ``TrainOperator(expected_code_revision=...)`` decides it."""
    return running == requested or (len(requested) >= 7 and running.startswith(requested))


class _Retrain:
    """One CI retrain: trigger, follow, judge. Every outcome starts from :attr:`base` (the request's facts)."""

    def __init__(
        self,
        request: RetrainRequest,
        api: _AirflowApi,
        say: Callable[[str], None],
        clock: Callable[[], float],
        sleep: Callable[[float], None],
    ) -> None:
        self.request = request
        self.api = api
        self.say = say
        self.clock = clock
        self.sleep = sleep
        self.base = RetrainOutcome(
            "not_triggered",
            "",
            airflow_url=api.access.url,
            dag_id=request.dag_id,
            model=request.model,
            code_revision=request.code_revision,
        )

    def outcome(self) -> RetrainOutcome:
        request, api = self.request, self.api
        try:
            api.login()
            refusal = self._dag_refusal()
            if refusal:
                return replace(self.base, message=refusal)
            try:
                run = api.trigger(
                    request.dag_id, request.conf(), f"mlops-ops ci retrain: {request.trigger_reason}"
                )
            except (AuthenticationRefused, AirflowUnreachable):
                raise
            except AirflowApiError as err:  # 400: the DAG's params refuse the conf; 409: that run id exists
                return replace(
                    self.base,
                    message=f"error: Airflow refused the run of {request.dag_id}: {err}",
                    endpoint=err.endpoint,
                    http_status=err.status,
                )
            self.base = replace(self.base, status="run_failed", run_id=str(run["dag_run_id"]))
            if not request.wait:
                return replace(
                    self.base,
                    status="triggered",
                    message=f"triggered run {self.base.run_id} of {request.dag_id} for revision "
                    f"{request.code_revision} (not followed: --no-wait)",
                    run_state=str(run.get("state")),
                )
            self.say(
                f"triggered run {self.base.run_id} of {request.dag_id} for revision {request.code_revision}; "
                "following it"
            )
            followed = self._follow(self.clock() + request.timeout_seconds)
            return followed if isinstance(followed, RetrainOutcome) else self._verdict(*followed)
        except AuthenticationRefused as err:
            access = api.access
            hint = (
                ""
                if access.token or access.username
                else f" (no credentials: set {TOKEN_VARIABLE}, or {USERNAME_VARIABLE} and {PASSWORD_VARIABLE})"
            )
            return replace(
                self.base,
                status="auth_refused",
                message=f"error: {err}{hint}",
                endpoint=err.endpoint,
                http_status=err.status,
            )
        except AirflowUnreachable as err:
            return replace(self.base, status="unreachable", message=f"error: {err}", endpoint=err.endpoint)
        except AirflowApiError as err:
            # An answer that gives no verdict (a 5xx that persisted, the run gone): not triggered, or failed.
            return replace(self.base, message=f"error: {err}", endpoint=err.endpoint, http_status=err.status)

    def _dag_refusal(self) -> str | None:
        """Why the DAG cannot take the run (unknown, paused), or ``None``; unpauses it when asked to."""
        dag_id = self.request.dag_id
        try:
            dag = self.api.dag(dag_id)
        except AirflowApiError as err:
            if err.status == 404:
                return f"error: DAG {dag_id} not found at {self.api.access.url} (not parsed yet, or another --dag-id)"
            raise
        if dag.get("is_paused"):
            if not self.request.unpause:
                return (
                    f"error: DAG {dag_id} is paused: its run would wait queued. Unpause it in Airflow, or pass "
                    "--unpause"
                )
            self.api.unpause(dag_id)
            self.say(f"unpaused DAG {dag_id} (--unpause)")
        return None

    def _follow(self, deadline: float) -> tuple[dict[str, Any], list[dict[str, Any]]] | RetrainOutcome:
        """Poll the run until it ends: its last state and task instances; or the outcome when it cannot end."""
        request, run_id = self.request, str(self.base.run_id)
        failures = 0
        reported: dict[str, str] = {}
        skipped = False
        run: dict[str, Any] = {}
        instances: list[dict[str, Any]] = []
        while True:
            try:
                run = self.api.run(request.dag_id, run_id)
                instances = self.api.task_instances(request.dag_id, run_id)
                failures = 0
            except AirflowApiError as err:
                # A restarting API server or a network blip is waited out; a refusal or a 4xx is not.
                transient = isinstance(err, AirflowUnreachable) or (err.status or 0) >= 500
                failures += 1
                if not transient or failures >= POLL_FAILURES:
                    raise
            if run.get("state") in ("success", "failed"):
                return run, instances
            states = _states(instances)
            for task_id, state in states.items():
                if state in ("running", "deferred", "up_for_reschedule") and reported.get(task_id) != state:
                    self.say(f"{task_id}: {state}")
                reported[task_id] = state
            if not skipped and states.get(request.data_task) in WAITING_STATES:
                skipped = True
                waiting = self._end_the_wait(states)
                if waiting is not None:
                    return waiting
            now = self.clock()
            if now >= deadline:
                going = ", ".join(
                    f"{task} {state}" for task, state in states.items() if state not in _NOT_GOING
                )
                return replace(
                    self.base,
                    status="timed_out",
                    message=f"error: timed out after {request.timeout_seconds:g} s following run {run_id} of "
                    f"{request.dag_id} (run {run.get('state', 'unknown')}{'; ' + going if going else ''}); "
                    "it goes on in Airflow",
                    run_state=run.get("state"),
                    task_states=states,
                )
            self.sleep(min(request.poll_seconds, max(deadline - now, 0.0)))

    def _end_the_wait(self, states: dict[str, str]) -> RetrainOutcome | None:
        """Skip a data task that waits for data, so the run ends without training now; ``None`` once skipped."""
        request = self.request
        wanted = (
            "a data version" if request.force else "a data version the current models were not trained on"
        )
        try:
            self.api.skip(
                request.dag_id,
                str(self.base.run_id),
                request.data_task,
                f"mlops-ops ci retrain: no {wanted}; skipped so the run ends without training",
            )
        except AirflowUnreachable:
            raise
        except AirflowApiError as err:  # e.g. 403: the user may trigger runs but not set task states
            return replace(
                self.base,
                status="no_training",
                message=f"no training: {request.data_task} waits for {wanted}; it could not be skipped ({err}), "
                f"so run {self.base.run_id} goes on waiting and trains when one lands",
                run_state="running",
                task_states=states,
                endpoint=err.endpoint,
                http_status=err.status,
            )
        self.say(
            f"{request.data_task} waits for {wanted}: marked it skipped, so the run ends without training"
        )
        return None

    def _verdict(self, run: dict[str, Any], instances: list[dict[str, Any]]) -> RetrainOutcome:
        """The outcome of an ended run, from its task states and the gate's and register's results."""
        request = self.request
        states = _states(instances)
        ended = replace(self.base, run_state=run.get("state"), task_states=states)
        run_id = str(ended.run_id)
        if states.get(request.register_task) == "success":
            return self._registered(ended)
        if states.get(request.gate_task) == "failed":
            decision = self.api.xcom(request.dag_id, run_id, request.gate_task)
            if isinstance(decision, dict) and decision.get("passed") is False:
                return self._gate_refused(ended, decision)
        failed = sorted(
            (i for i in instances if i.get("state") == "failed"), key=lambda i: str(i.get("end_date") or "")
        )
        if failed:
            task_id, try_number = str(failed[0].get("task_id")), int(failed[0].get("try_number") or 0)
            error = self.api.error_of(request.dag_id, run_id, task_id, try_number)
            said = f": {error}" if error else f" (failed in try {try_number}; its log gave no error)"
            return replace(
                ended,
                message=f"run {run_id} of {request.dag_id} failed at task {task_id}{said}",
                details=tuple(f"also failed: {i.get('task_id')}" for i in failed[1:11]),
                failed_task=task_id,
                error=error,
            )
        if states.get(request.data_task) == "skipped":
            hint = "" if request.force else " the current models were not trained on (--force retrains on it)"
            return replace(
                ended,
                status="no_training",
                message=f"no training: {request.data_task} was skipped in run {run_id} of {request.dag_id}: no "
                f"data version{hint}",
            )
        listed = ", ".join(f"{task} {state}" for task, state in states.items())
        return replace(
            ended,
            message=f"run {run_id} of {request.dag_id} ended {run.get('state')} without registering a model "
            f"({request.register_task} {states.get(request.register_task, 'absent')}; tasks: {listed})",
        )

    def _registered(self, ended: RetrainOutcome) -> RetrainOutcome:
        request, run_id = self.request, str(ended.run_id)
        registered = self.api.xcom(request.dag_id, run_id, request.register_task)
        training = self.api.xcom(request.dag_id, run_id, request.train_task)
        decision = self.api.xcom(request.dag_id, run_id, request.gate_task)
        registered = registered if isinstance(registered, dict) else {}
        version = str(registered["version"]) if registered.get("version") is not None else None
        revision = training.get("code_revision") if isinstance(training, dict) else None
        revision = revision if isinstance(revision, str) else None
        name = printable(registered.get("model_name") or request.model, 200)
        gate = decision if isinstance(decision, dict) else None
        facts = replace(ended, registered_version=version, registered_code_revision=revision, gate=gate)
        if version is None or revision is None or not revision_matches(revision, request.code_revision):
            # A DAG that ignores the conf trains whatever its workers run: not a verdict on the tested code.
            trained_by = f"revision {printable(revision, 80)}" if revision else "a revision it does not say"
            return replace(
                facts,
                message=f"run {run_id} of {request.dag_id} registered {name} v{version or '?'} trained by "
                f"{trained_by}, not the requested {request.code_revision}: does its task {request.train_task} "
                "pass params.code_revision to TrainOperator(expected_code_revision=...)?",
            )
        details = [_gate_summary(gate)] if gate is not None else []
        if registered.get("registered_new") is False:
            details.append(
                "an identical training (same code, data, spec, seed) was registered before: reused"
            )
        if name != request.model:
            details.append(f"note: the DAG registered {name!r}, not --model {printable(request.model, 80)!r}")
        alias = registered.get("alias")
        return replace(
            facts,
            status="registered",
            message=f"registered {name} v{version}{f' (alias {printable(alias, 80)})' if alias else ''} from run "
            f"{run_id} of {request.dag_id}; it carries mlops.code_revision={printable(revision, 80)}",
            details=tuple(details),
        )

    def _gate_refused(self, ended: RetrainOutcome, decision: dict[str, Any]) -> RetrainOutcome:
        request = self.request
        checks = [c for c in decision.get("checks") or [] if isinstance(c, dict)]
        details = [f"failed: {_describe_check(check)}" for check in checks if not check.get("passed")]
        return replace(
            ended,
            status="gate_refused",
            message=f"the gate refused the challenger of {printable(request.model, 80)} for revision "
            f"{request.code_revision} in run {ended.run_id} of {request.dag_id}: {_gate_summary(decision)}",
            details=(*details, *_comparison(decision)),
            gate=decision,
        )


#: Task states not worth naming in a timeout's line: ended, or not started ("none": not even scheduled).
_NOT_GOING = frozenset({"success", "failed", "skipped", "upstream_failed", "removed", "none"})


def _states(instances: list[dict[str, Any]]) -> dict[str, str]:
    """Each task's state; a mapped task counts as failed when one of its instances failed."""
    states: dict[str, str] = {}
    for instance in instances:
        task_id, state = str(instance.get("task_id")), str(instance.get("state") or "none")
        if states.get(task_id) != "failed":
            states[task_id] = state
    return states


def _gate_summary(decision: dict[str, Any]) -> str:
    checks = [c for c in decision.get("checks") or [] if isinstance(c, dict)]
    failing = sum(1 for c in checks if not c.get("passed"))
    champion = decision.get("champion_version")
    against = f"champion v{printable(champion, 40)}" if champion not in (None, "") else "no champion"
    verdict = "passed" if decision.get("passed") else f"failed {failing} of {len(checks)} checks"
    return f"gate {verdict} against {against}"


def _describe_check(check: dict[str, Any]) -> str:
    """One failing check as the gate's own error message words it."""
    from mlops_ops.core.gate import GateCheck

    try:
        described = GateCheck(
            name=str(check.get("name", "")),
            passed=bool(check.get("passed")),
            value=None if check.get("value") is None else float(check["value"]),
            threshold=None if check.get("threshold") is None else float(check["threshold"]),
            comparison=str(check.get("comparison") or ""),
            detail=str(check.get("detail") or ""),
        ).describe()
    except (TypeError, ValueError):
        described = json.dumps(check, default=str)
    return printable(described, 300)


def _comparison(decision: dict[str, Any]) -> list[str]:
    """Challenger and champion metrics side by side, one line each (at most 20)."""
    challenger = decision.get("challenger_metrics") or {}
    champion = decision.get("champion_metrics") or {}
    if not isinstance(challenger, dict) or not isinstance(champion, dict) or not challenger:
        return []
    version = decision.get("champion_version")
    head = f"champion v{printable(version, 40)}" if champion else "no champion"
    lines = [f"{'metric':<24} {'challenger':>12} {head:>14}"]
    for name in sorted(challenger)[:20]:
        lines.append(
            f"{printable(name, 24):<24} {_number(challenger.get(name)):>12} {_number(champion.get(name)):>14}"
        )
    return lines


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    return str(value) if isinstance(value, int) else f"{value:.4f}"  # a count (rows) as it is


# --- the command --------------------------------------------------------------------------------------------

EXIT_CODES_HELP = f"""exit status:
  {EXIT_REGISTERED}  the challenger passed the gate and was registered (with --no-wait: the run was triggered)
  {EXIT_NOT_TRIGGERED}  nothing triggered: invalid input, unknown DAG, DAG paused (see --unpause), conf refused
  {EXIT_GATE_REFUSED}  the gate refused the challenger: each failing check with its value and threshold
  {EXIT_RUN_FAILED}  the run failed elsewhere (the failed task and its error), or trained another revision
  {EXIT_NO_TRAINING}  no training: no data version to train on (see --force)
  {EXIT_AUTH_REFUSED}  Airflow refused the credentials or the access (401/403), naming the endpoint
  {EXIT_UNREACHABLE}  Airflow unreachable
  {EXIT_TIMED_OUT}  timed out following the run (see --timeout); the run goes on in Airflow

environment:
  MLOPS_AIRFLOW_URL, AIRFLOW_URL       the API server, when --airflow-url is not given
  AIRFLOW_TOKEN                        a bearer JWT, or:
  AIRFLOW_USERNAME, AIRFLOW_PASSWORD   exchanged for one at POST /auth/token
"""


def add_command(actions: argparse._SubParsersAction) -> None:
    """Register ``mlops-ops ci retrain``."""
    retrain = actions.add_parser(
        "retrain",
        help="trigger the retrain DAG for the tested commit, follow it, exit on the gate's verdict",
        description=(
            "Trigger the retrain DAG over Airflow's REST API with conf {code_revision, force, reason}: the\n"
            "DAG's train task refuses to train unless the workers run that revision. Follow the run to its end\n"
            "and exit on the verdict: the registered version, the gate's failing checks, or the failed task's\n"
            "error. Credentials come from the environment only, never the command line."
        ),
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    retrain.add_argument("--model", required=True, help="the registered model the DAG retrains")
    retrain.add_argument(
        "--code-revision",
        required=True,
        metavar="SHA",
        help=f"the commit the job tested (letters, digits, - _ ., at most {MAX_REVISION}; a 7+ prefix names "
        "the commit it begins)",
    )
    retrain.add_argument("--dag-id", default="retrain", help="the retrain DAG (default retrain)")
    retrain.add_argument(
        "--reason", help=f"recorded on the model version (default 'ci: MODEL at SHA'; ≤ {MAX_REASON})"
    )
    retrain.add_argument(
        "--force", action="store_true", help="retrain on data the champion or challenger was trained on"
    )
    retrain.add_argument(
        "--unpause",
        action="store_true",
        help="unpause the DAG if paused (default: refuse, nothing triggered)",
    )
    retrain.add_argument(
        "--wait",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="follow the run to its end (default); --no-wait exits 0 once triggered, printing the run id",
    )
    retrain.add_argument(
        "--timeout",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="follow the run this long (default 3600)",
    )
    retrain.add_argument(
        "--poll-seconds", type=float, default=10.0, metavar="N", help="look at the run every N s (default 10)"
    )
    retrain.add_argument("--json", type=Path, metavar="FILE", help="also write the outcome to FILE as JSON")
    retrain.add_argument(
        "--airflow-url", metavar="URL", help="the API server (default $MLOPS_AIRFLOW_URL, else $AIRFLOW_URL)"
    )
    for option, default, what in (
        ("--data-task", "wait_for_data", "the task waiting for a data version"),
        ("--train-task", "train", "the task whose result names the revision that trained"),
        ("--gate-task", "evaluate_gate", "the task whose XCom is the gate's decision"),
        ("--register-task", "register", "the task whose XCom is the registered version"),
    ):
        retrain.add_argument(option, default=default, help=f"{what} (default {default})")
    retrain.set_defaults(handler=_retrain)


def _retrain(args: argparse.Namespace) -> int:
    try:
        request = RetrainRequest(
            model=args.model,
            code_revision=args.code_revision,
            dag_id=args.dag_id,
            reason=args.reason,
            force=args.force,
            unpause=args.unpause,
            wait=args.wait,
            timeout_seconds=args.timeout,
            poll_seconds=args.poll_seconds,
            data_task=args.data_task,
            train_task=args.train_task,
            gate_task=args.gate_task,
            register_task=args.register_task,
        )
        access = AirflowAccess.from_environment(args.airflow_url)
    except RetrainRequestError as err:
        outcome = RetrainOutcome(
            "not_triggered",
            f"error: {err}",
            dag_id=printable(args.dag_id, 80),
            model=printable(args.model, 80),
            code_revision=printable(args.code_revision, MAX_REVISION),
        )
    else:
        outcome = retrain_for_revision(request, access, progress=lambda line: print(line, flush=True))
    stream = sys.stderr if outcome.message.startswith("error:") else sys.stdout
    for line in outcome.lines():
        print(line, file=stream)
    if args.json is not None:
        try:
            args.json.write_text(json.dumps(outcome.to_dict(), indent=2) + "\n")
        except OSError as err:
            print(f"error: cannot write {args.json}: {err.strerror}", file=sys.stderr)
    return outcome.exit_code
