"""``mlops-ops ci retrain`` against a fake Airflow API server on 127.0.0.1: each exit status, what is sent (conf,
unpause, skip), what is printed and written as JSON, and that no secret is ever shown."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

import pytest

from mlops_ops.ci import retrain
from mlops_ops.ci.retrain import (
    EXIT_AUTH_REFUSED,
    EXIT_GATE_REFUSED,
    EXIT_NO_TRAINING,
    EXIT_NOT_TRIGGERED,
    EXIT_REGISTERED,
    EXIT_RUN_FAILED,
    EXIT_TIMED_OUT,
    EXIT_UNREACHABLE,
    AirflowAccess,
    RetrainRequest,
    RetrainRequestError,
    error_from_log,
    retrain_for_revision,
)
from mlops_ops.cli import main
from tests.airflow_rest import free_port

TOKEN = "good-token-0123456789"  # pragma: allowlist secret
PASSWORD = "s3cret-pass-word"  # pragma: allowlist secret
REVISION = "abc1234def"
FULL_REVISION = "abc1234def5678901234567890abcdef12345678"
RUN_ID = "manual__2026-12-06T07:00:00+00:00"
TASKS = ("wait_for_data", "train", "evaluate_gate", "register")
GATE_PASSED = {
    "passed": True,
    "checks": [
        {
            "name": "f1_macro >= floor",
            "passed": True,
            "value": 0.97,
            "threshold": 0.8,
            "comparison": ">=",
            "detail": "",
        }
    ],
    "challenger_metrics": {"f1_macro": 0.97},
    "champion_metrics": None,
    "champion_version": None,
    "policy": {},
    "run_id": "mlflow-run",
}
GATE_REFUSED = {
    "passed": False,
    "checks": [
        {"name": "f1_macro >= floor", "passed": False, "value": 0.19, "threshold": 0.8, "comparison": ">="},
        {"name": "log_loss <= ceiling", "passed": True, "value": 0.5, "threshold": 0.8, "comparison": "<="},
        {
            "name": "f1_macro regression vs champion",
            "passed": False,
            "value": -0.78,
            "threshold": -0.05,
            "comparison": ">=",
            "detail": "challenger 0.1900, champion 0.9700",
        },
    ],
    "challenger_metrics": {"f1_macro": 0.19, "log_loss": 0.5},
    "champion_metrics": {"f1_macro": 0.97, "log_loss": 0.1},
    "champion_version": "1",
    "policy": {},
    "run_id": "mlflow-run",
}


def snapshot(run_state: str, **states: str) -> dict:
    return {"state": run_state, "tasks": states}


def all_tasks(state: str) -> dict:
    return dict.fromkeys(TASKS, state)


class FakeAirflow:
    """Airflow 3's API as the command uses it: /auth/token, a DAG, one triggered run whose snapshots (run state
    and task states) are handed out one per poll, the last one repeated; XComs and logs per task."""

    def __init__(self) -> None:
        self.paused = False
        self.dags = {"retrain"}
        self.snapshots: list[dict] = [snapshot("success", **all_tasks("success"))]
        self.xcoms: dict[str, object] = {
            "train": {"code_revision": FULL_REVISION, "run_id": "mlflow-run"},
            "evaluate_gate": GATE_PASSED,
            "register": {"model_name": "wine", "version": "3", "alias": "challenger", "registered_new": True},
        }
        self.logs: dict[str, list] = {}
        self.requests: list[dict] = []
        self.fail_polls = 0  # answer 503 to this many polls of the run first
        self.trigger_status: int | None = None
        self.redirect = False
        self.not_json = False  # answer like a web page, not an API
        self.expire_at_first_poll = False  # answer the first poll of the run as to an expired token
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 5

            def do_GET(self) -> None:
                fake.handle(self, "GET")

            def do_POST(self) -> None:
                fake.handle(self, "POST")

            def do_PATCH(self) -> None:
                fake.handle(self, "PATCH")

            def log_message(self, format, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})

    def paths(self, method: str | None = None) -> list[str]:
        return [r["path"] for r in self.requests if method is None or r["method"] == method]

    def handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = json.loads(handler.rfile.read(length)) if length else None
        path = urlsplit(handler.path).path
        with self.lock:
            self.requests.append(
                {
                    "method": method,
                    "path": unquote(path),
                    "body": body,
                    "auth": handler.headers.get("Authorization"),
                }
            )
            status, answer, headers = self.answer(method, path, body, handler.headers.get("Authorization"))
        data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def answer(self, method: str, path: str, body, auth: str | None) -> tuple[int, object, dict]:
        if path == "/leak":
            return 200, {"leaked": True}, {}
        if path == "/auth/token" and method == "POST":
            if body == {"username": "ci", "password": PASSWORD}:
                return 201, {"access_token": TOKEN}, {}
            return 401, {"detail": "Invalid credentials"}, {}
        if self.redirect:
            return 307, {}, {"Location": f"{self.url}/leak"}
        if self.not_json:
            return 200, b"<html>a login page</html>", {}
        if auth is None:
            return 401, {"detail": "Not authenticated"}, {}
        if auth != f"Bearer {TOKEN}":  # as Airflow 3 answers a token it cannot verify
            return 403, {"detail": "Invalid JWT token"}, {}
        parts = [unquote(part) for part in path.split("/")[3:]]  # after /api/v2/
        if parts[:1] != ["dags"] or parts[1] not in self.dags:
            return 404, {"detail": "not found"}, {}
        rest = parts[2:]
        if not rest:
            if method == "PATCH":
                self.paused = bool(body["is_paused"])
            return 200, {"dag_id": parts[1], "is_paused": self.paused}, {}
        if rest == ["dagRuns"] and method == "POST":
            if self.trigger_status:
                return self.trigger_status, {"detail": "Invalid input for param code_revision"}, {}
            return 200, {"dag_run_id": RUN_ID, "state": "queued"}, {}
        if len(rest) == 2 and rest[0] == "dagRuns" and self.expire_at_first_poll:
            self.expire_at_first_poll = False
            return 401, {"detail": "Token Expired"}, {}
        if len(rest) == 2 and rest[0] == "dagRuns":
            if self.fail_polls:
                self.fail_polls -= 1
                return 503, {"detail": "database is locked"}, {}
            return 200, {"dag_run_id": RUN_ID, "state": self.current()["state"]}, {}
        if rest[2:] == ["taskInstances"]:
            now = self.snapshots.pop(0) if len(self.snapshots) > 1 else self.snapshots[0]
            instances = [
                {"task_id": task, "state": state, "try_number": 1, "end_date": f"2026-12-06T07:0{i}:00Z"}
                for i, (task, state) in enumerate(now["tasks"].items())
            ]
            return 200, {"task_instances": instances, "total_entries": len(instances)}, {}
        if len(rest) == 4 and rest[2] == "taskInstances" and method == "PATCH":
            return 200, {"task_instances": []}, {}
        if rest[2:3] == ["taskInstances"] and rest[4:5] == ["xcomEntries"]:
            if rest[3] not in self.xcoms:
                return 404, {"detail": "XCom entry not found"}, {}
            return 200, {"key": "return_value", "value": self.xcoms[rest[3]]}, {}
        if rest[2:3] == ["taskInstances"] and rest[4:5] == ["logs"]:
            return 200, {"content": self.logs.get(rest[3], []), "continuation_token": None}, {}
        return 404, {"detail": f"no route {path}"}, {}

    def current(self) -> dict:
        return self.snapshots[0]


@pytest.fixture
def airflow(monkeypatch):
    for name in ("AIRFLOW_URL", "MLOPS_AIRFLOW_URL", "AIRFLOW_TOKEN", "AIRFLOW_USERNAME", "AIRFLOW_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    fake = FakeAirflow()
    fake.thread.start()
    monkeypatch.setenv("AIRFLOW_URL", fake.url)
    monkeypatch.setenv("AIRFLOW_TOKEN", TOKEN)
    yield fake
    fake.server.shutdown()
    fake.server.server_close()
    fake.thread.join(timeout=5)


def ci_retrain(capsys, *extra: str, tmp_json=None) -> tuple[int, str, dict | None]:
    argv = ["ci", "retrain", "--model", "wine", "--code-revision", REVISION, "--poll-seconds", "0.05", *extra]
    if tmp_json is not None:
        argv += ["--json", str(tmp_json)]
    status = main(argv)
    captured = capsys.readouterr()
    written = json.loads(tmp_json.read_text()) if tmp_json is not None and tmp_json.exists() else None
    return status, captured.out + captured.err, written


def test_a_registered_challenger_exits_0_naming_version_and_revision(airflow, capsys, tmp_path):
    airflow.snapshots = [
        snapshot("queued"),
        snapshot("running", wait_for_data="success", train="running"),
        snapshot("success", **all_tasks("success")),
    ]
    status, out, written = ci_retrain(capsys, tmp_json=tmp_path / "outcome.json")

    assert status == EXIT_REGISTERED == 0
    assert f"registered wine v3 (alias challenger) from run {RUN_ID} of retrain" in out
    assert f"mlops.code_revision={FULL_REVISION}" in out
    assert "gate passed against no champion" in out
    assert "train: running" in out
    (trigger,) = [r for r in airflow.requests if r["method"] == "POST"]
    assert trigger["path"] == "/api/v2/dags/retrain/dagRuns"
    assert trigger["body"]["logical_date"] is None
    assert trigger["body"]["conf"] == {
        "code_revision": REVISION,
        "force": False,
        "reason": f"ci: wine at {REVISION}",
    }
    assert written["status"] == "registered" and written["exit_code"] == 0
    assert written["registered_version"] == "3" and written["registered_code_revision"] == FULL_REVISION
    assert written["run_id"] == RUN_ID and written["gate"]["passed"] is True
    assert written["task_states"] == all_tasks("success")
    assert TOKEN not in out and TOKEN not in json.dumps(written)


def test_a_refusing_gate_exits_3_with_each_failing_check_and_the_comparison(airflow, capsys, tmp_path):
    airflow.snapshots = [
        snapshot(
            "failed",
            wait_for_data="success",
            train="success",
            evaluate_gate="failed",
            register="upstream_failed",
        )
    ]
    airflow.xcoms["evaluate_gate"] = GATE_REFUSED
    status, out, written = ci_retrain(capsys, "--force", tmp_json=tmp_path / "outcome.json")

    assert status == EXIT_GATE_REFUSED == 3
    assert "the gate refused the challenger of wine" in out
    assert "gate failed 2 of 3 checks against champion v1" in out
    assert "failed: f1_macro >= floor: 0.1900 (must be >= 0.8000)" in out
    assert "failed: f1_macro regression vs champion: -0.7800 (must be >= -0.0500)" in out
    assert "log_loss <= ceiling" not in out  # passed: not listed as failing
    assert re.search(r"f1_macro\s+0\.1900\s+0\.9700", out)
    assert "champion v1" in out
    assert written["status"] == "gate_refused" and written["gate"] == GATE_REFUSED
    sent = [r["body"]["conf"] for r in airflow.requests if r["method"] == "POST"]
    assert sent[0]["force"] is True


def test_a_failed_task_exits_4_naming_it_with_the_error_from_its_log(airflow, capsys, tmp_path):
    airflow.snapshots = [
        snapshot(
            "failed",
            wait_for_data="success",
            train="failed",
            evaluate_gate="upstream_failed",
            register="upstream_failed",
        )
    ]
    message = f"the workers run code revision 'f00ba47', not the requested '{REVISION}': deploy that revision"
    airflow.logs["train"] = [
        {"event": "starting", "level": "info"},
        {
            "event": "Task failed with exception",
            "level": "error",
            "error_detail": [
                {"exc_type": "TrainingFailed", "exc_value": message, "is_cause": False, "frames": []}
            ],
        },
    ]
    del airflow.xcoms["evaluate_gate"]
    status, out, written = ci_retrain(capsys, tmp_json=tmp_path / "outcome.json")

    assert status == EXIT_RUN_FAILED == 4
    assert f"run {RUN_ID} of retrain failed at task train: TrainingFailed: {message}" in out
    assert written["status"] == "run_failed" and written["failed_task"] == "train"
    assert written["error"] == f"TrainingFailed: {message}"
    assert "/api/v2/dags/retrain/dagRuns/" + RUN_ID + "/taskInstances/train/logs/1" in airflow.paths("GET")


def test_a_failed_task_without_a_readable_error_is_named_with_its_state(airflow, capsys):
    airflow.snapshots = [snapshot("failed", wait_for_data="failed", train="upstream_failed")]
    status, out, _ = ci_retrain(capsys)
    assert status == EXIT_RUN_FAILED
    assert "failed at task wait_for_data (failed in try 1; its log gave no error)" in out


def test_a_gate_task_that_failed_before_deciding_is_a_failed_run(airflow, capsys):
    airflow.snapshots = [snapshot("failed", wait_for_data="success", train="success", evaluate_gate="failed")]
    del airflow.xcoms["evaluate_gate"]
    airflow.logs["evaluate_gate"] = [
        {"event": "Task failed: the champion could not be loaded", "level": "error"}
    ]
    status, out, _ = ci_retrain(capsys)
    assert status == EXIT_RUN_FAILED
    assert "failed at task evaluate_gate: Task failed: the champion could not be loaded" in out


def test_a_waiting_data_task_is_skipped_and_the_run_exits_5(airflow, capsys, tmp_path):
    airflow.snapshots = [
        snapshot("running", wait_for_data="deferred"),
        snapshot("running", wait_for_data="skipped", train="skipped"),
        snapshot(
            "success", wait_for_data="skipped", train="skipped", evaluate_gate="skipped", register="skipped"
        ),
    ]
    status, out, written = ci_retrain(capsys, tmp_json=tmp_path / "outcome.json")

    assert status == EXIT_NO_TRAINING == 5
    (skip,) = [r for r in airflow.requests if r["method"] == "PATCH"]
    assert skip["path"] == f"/api/v2/dags/retrain/dagRuns/{RUN_ID}/taskInstances/wait_for_data"
    assert skip["body"]["new_state"] == "skipped" and "mlops-ops ci retrain" in skip["body"]["note"]
    assert "wait_for_data waits for a data version the current models were not trained on" in out
    assert "no training: wait_for_data was skipped" in out and "--force retrains on it" in out
    assert written["status"] == "no_training"


def test_a_data_task_the_sensor_skipped_itself_exits_5(airflow, capsys):
    airflow.snapshots = [snapshot("success", **all_tasks("skipped"))]
    status, out, _ = ci_retrain(capsys)
    assert status == EXIT_NO_TRAINING
    assert not airflow.paths("PATCH")


def test_a_wrong_token_exits_6_naming_the_endpoint_and_status(airflow, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_TOKEN", "wrong-token-abcdef")
    status, out, written = ci_retrain(capsys, tmp_json=tmp_path / "outcome.json")

    assert status == EXIT_AUTH_REFUSED == 6
    assert out.strip() == (
        f"error: Airflow refused the token or the user's access: GET {airflow.url}/api/v2/dags/retrain answered "
        "403 (Invalid JWT token)"
    )
    assert "wrong-token" not in out
    assert written["endpoint"] == f"GET {airflow.url}/api/v2/dags/retrain" and written["http_status"] == 403
    assert not airflow.paths("POST")


def test_a_wrong_password_exits_6_naming_the_token_endpoint(airflow, capsys, monkeypatch):
    monkeypatch.delenv("AIRFLOW_TOKEN")
    monkeypatch.setenv("AIRFLOW_USERNAME", "ci")
    monkeypatch.setenv("AIRFLOW_PASSWORD", "not-the-password")
    status, out, _ = ci_retrain(capsys)
    assert status == EXIT_AUTH_REFUSED
    assert f"POST {airflow.url}/auth/token answered 401 (Invalid credentials)" in out
    assert "not-the-password" not in out and "ci" not in out.split("answered")[0].replace("credentials", "")


def test_username_and_password_are_exchanged_for_a_token(airflow, capsys, monkeypatch):
    monkeypatch.delenv("AIRFLOW_TOKEN")
    monkeypatch.setenv("AIRFLOW_USERNAME", "ci")
    monkeypatch.setenv("AIRFLOW_PASSWORD", PASSWORD)
    status, out, _ = ci_retrain(capsys)
    assert status == EXIT_REGISTERED
    assert airflow.requests[0]["path"] == "/auth/token" and airflow.requests[0]["auth"] is None
    assert all(r["auth"] == f"Bearer {TOKEN}" for r in airflow.requests[1:])
    assert PASSWORD not in out and TOKEN not in out


def test_a_token_that_expires_while_following_is_renewed_with_the_password(airflow, capsys, monkeypatch):
    monkeypatch.delenv("AIRFLOW_TOKEN")
    monkeypatch.setenv("AIRFLOW_USERNAME", "ci")
    monkeypatch.setenv("AIRFLOW_PASSWORD", PASSWORD)
    airflow.expire_at_first_poll = True
    status, _, _ = ci_retrain(capsys)
    assert status == EXIT_REGISTERED
    assert airflow.paths("POST").count("/auth/token") == 2


def test_no_credentials_says_which_variables_to_set(airflow, capsys, monkeypatch):
    monkeypatch.delenv("AIRFLOW_TOKEN")
    status, out, _ = ci_retrain(capsys)
    assert status == EXIT_AUTH_REFUSED
    assert f"GET {airflow.url}/api/v2/dags/retrain answered 401 (Not authenticated)" in out
    assert "no credentials: set AIRFLOW_TOKEN, or AIRFLOW_USERNAME and AIRFLOW_PASSWORD" in out


def test_an_unreachable_airflow_exits_7_in_one_line(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_TOKEN", TOKEN)
    url = f"http://127.0.0.1:{free_port()}"
    status, out, written = ci_retrain(capsys, "--airflow-url", url, tmp_json=tmp_path / "outcome.json")
    assert status == EXIT_UNREACHABLE == 7
    assert len(out.strip().splitlines()) == 1
    assert out.startswith(f"error: Airflow unreachable: GET {url}/api/v2/dags/retrain failed (")
    assert "refused" in out.lower()
    assert written["status"] == "unreachable"


def test_a_run_that_does_not_end_in_time_exits_8_in_one_line(airflow, capsys, tmp_path):
    airflow.snapshots = [snapshot("running", wait_for_data="success", train="running")]
    status, out, written = ci_retrain(capsys, "--timeout", "0.3", tmp_json=tmp_path / "outcome.json")
    assert status == EXIT_TIMED_OUT == 8
    (line,) = [line for line in out.splitlines() if line.startswith("error:")]
    assert line == (
        f"error: timed out after 0.3 s following run {RUN_ID} of retrain (run running; train running); "
        "it goes on in Airflow"
    )
    assert written["status"] == "timed_out" and written["run_state"] == "running"


def test_a_paused_dag_is_refused_unless_unpause_is_given(airflow, capsys):
    airflow.paused = True
    status, out, _ = ci_retrain(capsys)
    assert status == EXIT_NOT_TRIGGERED == 2
    assert "DAG retrain is paused: its run would wait queued" in out and "--unpause" in out
    assert not airflow.paths("POST") and not airflow.paths("PATCH")

    status, out, _ = ci_retrain(capsys, "--unpause")
    assert status == EXIT_REGISTERED
    (unpause,) = [r for r in airflow.requests if r["method"] == "PATCH"]
    assert unpause["path"] == "/api/v2/dags/retrain" and unpause["body"] == {"is_paused": False}
    assert "unpaused DAG retrain (--unpause)" in out


def test_no_wait_exits_0_once_triggered_printing_the_run_id(airflow, capsys, tmp_path):
    airflow.snapshots = [snapshot("queued")]
    status, out, written = ci_retrain(capsys, "--no-wait", tmp_json=tmp_path / "outcome.json")
    assert status == 0
    assert f"triggered run {RUN_ID} of retrain for revision {REVISION} (not followed: --no-wait)" in out
    assert not [p for p in airflow.paths("GET") if "dagRuns/" in p]
    assert written["status"] == "triggered" and written["run_id"] == RUN_ID


def test_an_unknown_dag_and_a_refused_conf_trigger_nothing(airflow, capsys):
    status, out, _ = ci_retrain(capsys, "--dag-id", "nope")
    assert status == EXIT_NOT_TRIGGERED
    assert "DAG nope not found at" in out

    airflow.trigger_status = 400
    status, out, _ = ci_retrain(capsys)
    assert status == EXIT_NOT_TRIGGERED
    assert "Airflow refused the run of retrain" in out and "answered 400 (Invalid input for param" in out


def test_a_dag_that_trains_another_revision_does_not_pass(airflow, capsys):
    """A DAG that ignores the conf's code_revision trains what its workers run: no verdict on the tested code."""
    airflow.xcoms["train"] = {"code_revision": "f00ba47f00ba47"}
    status, out, written = ci_retrain(capsys)
    assert status == EXIT_RUN_FAILED
    assert "registered wine v3 trained by revision f00ba47f00ba47, not the requested abc1234def" in out
    assert "expected_code_revision" in out


def test_a_busy_api_server_is_waited_out_while_following(airflow):
    airflow.fail_polls = 4  # 503 twice within one poll's retries, then twice more: two failed polls in a row
    airflow.snapshots = [snapshot("running", train="running"), snapshot("success", **all_tasks("success"))]
    waits: list[float] = []
    outcome = retrain_for_revision(
        RetrainRequest(model="wine", code_revision=REVISION, poll_seconds=1),
        AirflowAccess(url=airflow.url, token=TOKEN),
        sleep=waits.append,
    )
    assert outcome.status == "registered", outcome.message
    assert waits[:3] == [2.0, 4.0, 1.0]  # the retries of one request, then the poll interval


def test_a_redirect_is_not_followed_so_the_token_stays_here(airflow, capsys):
    airflow.redirect = True
    status, out, _ = ci_retrain(capsys)
    assert status == EXIT_NOT_TRIGGERED
    assert "answered 307 (a redirect, not followed" in out
    assert "/leak" not in airflow.paths()


def test_a_server_that_is_not_the_api_triggers_nothing(airflow, capsys):
    airflow.not_json = True
    status, out, _ = ci_retrain(capsys)
    assert status == EXIT_NOT_TRIGGERED
    assert f"GET {airflow.url}/api/v2/dags/retrain answered something that is not JSON" in out


@pytest.mark.parametrize(
    ("argument", "value", "named"),
    [
        ("--code-revision", "a" * 65, "--code-revision must be a revision id"),
        ("--code-revision", "abc;rm -rf /", "--code-revision must be a revision id"),
        ("--reason", "x" * 501, "--reason must hold 1-500 characters"),
        ("--dag-id", "../etc", "--dag-id must be an Airflow id"),
        ("--timeout", "0", "--timeout must be 1 s to 7 days"),
    ],
)
def test_bad_input_exits_2_without_echoing_it_whole(airflow, capsys, tmp_path, argument, value, named):
    status, out, written = ci_retrain(capsys, argument, value, tmp_json=tmp_path / "outcome.json")
    assert status == EXIT_NOT_TRIGGERED
    assert named in out
    if len(value) > 20:
        assert value not in out and f"({len(value)} characters)" in out
    assert airflow.requests == []
    assert written["status"] == "not_triggered"


def test_credentials_in_the_url_are_refused_and_not_shown(capsys, monkeypatch):
    monkeypatch.setenv("AIRFLOW_TOKEN", TOKEN)
    status, out, _ = ci_retrain(capsys, "--airflow-url", "http://admin:hunter2@127.0.0.1:1")
    assert status == EXIT_NOT_TRIGGERED
    assert "must not hold credentials" in out and "hunter2" not in out


def test_the_url_comes_from_the_environment_and_secrets_stay_out_of_repr():
    access = AirflowAccess.from_environment(
        environ={
            "AIRFLOW_URL": "http://a:8080/",
            "MLOPS_AIRFLOW_URL": "https://b/airflow/",
            "AIRFLOW_TOKEN": TOKEN,
        }
    )
    assert access.url == "https://b/airflow" and access.token == TOKEN
    assert TOKEN not in repr(access)
    assert AirflowAccess.from_environment("http://c:1", {"AIRFLOW_URL": "http://a"}).url == "http://c:1"
    with pytest.raises(RetrainRequestError, match="no Airflow URL"):
        AirflowAccess.from_environment(environ={})


def test_the_python_api_returns_a_typed_outcome_with_a_fake_clock(airflow):
    ticks = iter(range(1000))
    outcome = retrain_for_revision(
        RetrainRequest(model="wine", code_revision=REVISION, timeout_seconds=5, poll_seconds=1),
        AirflowAccess(url=airflow.url, token=TOKEN),
        clock=lambda: float(next(ticks)),
        sleep=lambda seconds: None,
    )
    assert isinstance(outcome, retrain.RetrainOutcome)
    assert outcome.exit_code == 0 and outcome.registered_version == "3"
    assert json.loads(json.dumps(outcome.to_dict()))["status"] == "registered"


def test_the_default_reason_is_bounded():
    request = RetrainRequest(model="m" * 200, code_revision="a" * 64)
    assert len(request.trigger_reason) <= 500
    assert request.conf() == {"code_revision": "a" * 64, "force": False, "reason": request.trigger_reason}


def test_the_error_of_a_log_is_the_raised_exception_else_the_last_error_event():
    assert (
        error_from_log(
            [
                {"event": "x", "level": "info"},
                {
                    "event": "Task failed with exception",
                    "level": "error",
                    "error_detail": [
                        {"exc_type": "GateFailed", "exc_value": "line one\nline two", "is_cause": False},
                        {"exc_type": "KeyError", "exc_value": "'f1'", "is_cause": True},
                    ],
                },
            ]
        )
        == "GateFailed: line one\\nline two"
    )
    assert error_from_log([{"event": "boom \x1b[31m", "level": "ERROR"}]) == "boom \\x1b[31m"
    assert error_from_log(["plain line"]) is None
    assert error_from_log(None) is None


def test_the_command_needs_neither_airflow_nor_mlflow():
    """A CI runner needs the wheel and the standard library only: nothing heavy is imported."""
    import subprocess
    import sys

    code = (
        "import sys; from mlops_ops.ci import retrain; "
        "print(sorted(m for m in ('airflow', 'mlflow', 'pandas', 'sklearn', 'numpy') if m in sys.modules))"
    )
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert imported.strip() == "[]"
