"""The Models view's app on a real MLflow registry (SQLite): what it reads, and that it wants an Airflow session."""

from __future__ import annotations

import pytest

from mlops_ops.core import lineage
from mlops_ops.core.promotion import AliasMove
from mlops_ops.hooks.mlflow import MlflowHook
from tests.mlflow_connection import sqlite_mlflow_connection
from tests.trust_support import isolated_trust, record_alias

pytestmark = pytest.mark.integration


@pytest.fixture
def registry(tmp_path, monkeypatch):
    sqlite_mlflow_connection(monkeypatch, "mlflow_view", tmp_path, ui_url="http://mlflow.test")
    isolated_trust(monkeypatch, tmp_path / "trust")
    hook = MlflowHook(mlflow_conn_id="mlflow_view")
    client = hook.client
    experiment = hook.get_or_create_experiment("flight_delay")
    runs = []
    for passed in ("true", "false"):
        run = client.create_run(experiment)
        client.set_tag(run.info.run_id, lineage.GATE_PASSED, passed)
        client.set_tag(run.info.run_id, lineage.GATE_SUMMARY, f"gate {passed}")
        client.set_terminated(run.info.run_id)
        runs.append(run.info.run_id)
    hook.ensure_registered_model("flight_delay")
    for run_id in runs:
        client.create_model_version("flight_delay", f"runs:/{run_id}/model", run_id=run_id)
    hook.set_alias("flight_delay", "champion", "1")
    hook.set_alias("flight_delay", "challenger", "2")
    client.set_model_version_tag("flight_delay", "1", lineage.GATE_PASSED, "true")
    client.set_model_version_tag("flight_delay", "1", "mlops.drift.status", "no drift")
    move = AliasMove(
        "flight_delay", "champion", None, "1", "promotion", "ana", "first", "2026-11-01", sequence=1
    )
    client.set_registered_model_tag("flight_delay", move.tag_key(), move.to_json())
    record_alias("flight_delay", "champion", "1", actor="ana")
    record_alias("flight_delay", "challenger", "2", move="registration", actor="RegisterOperator")
    return hook, runs


def test_overviews_read_aliases_history_latest_gate_and_drift(registry):
    hook, runs = registry
    (overview,) = hook.model_overviews()
    assert overview.name == "flight_delay" and overview.url == "http://mlflow.test/#/models/flight_delay"
    assert {alias: summary.version for alias, summary in overview.aliases.items()} == {
        "champion": "1",
        "challenger": "2",
    }
    assert overview.aliases["champion"].url == "http://mlflow.test/#/models/flight_delay/versions/1"
    assert [(move.to_version, move.actor) for move in overview.history] == [("1", "ana")]
    assert overview.latest_gate.run_id == runs[1] and overview.latest_gate.passed is False
    assert overview.latest_gate.summary == "gate false"
    assert (overview.drift, overview.drift_version) == ({"status": "no drift"}, "1")


def test_with_the_trust_connection_the_history_is_the_signed_log_and_moved_aliases_are_marked(registry):
    from mlops_ops.hooks.trust import TrustHook

    hook, _ = registry
    forged = AliasMove(
        "flight_delay", "champion", "1", "2", "promotion", "mallory", "trust me", "2026-12-01", sequence=2
    )
    hook.client.set_registered_model_tag("flight_delay", forged.tag_key(), forged.to_json())
    hook.set_alias("flight_delay", "champion", "2")  # out of band, as the MLflow UI's alias editor would
    (overview,) = hook.model_overviews(trust=TrustHook())
    assert sorted((move.alias, move.to_version, move.actor) for move in overview.history) == [
        ("challenger", "2", "RegisterOperator"),
        ("champion", "1", "ana"),
    ]
    assert (
        overview.aliases["champion"].untrusted == "moved outside the project: the signed alias log names v1"
    )
    assert overview.aliases["challenger"].untrusted is None
    from mlops_ops.core.model_overview import render_page

    page = render_page([overview], "sqlite://")
    assert "moved outside the project" in page and "mallory" not in page


@pytest.fixture
def view(registry, airflow_db):
    from airflow.api_fastapi import app as airflow_app
    from fastapi.testclient import TestClient

    from mlops_ops.ui.lazy import LazyAsgiApp
    from mlops_ops.ui.models_view import create_app

    # The API server's auth manager (the simple one, as in `airflow standalone`), without the server.
    manager = airflow_app.create_auth_manager()
    try:
        yield TestClient(LazyAsgiApp(lambda: create_app("mlflow_view"))), manager
    finally:
        airflow_app._AuthManagerState.instance = None


def test_the_view_refuses_requests_without_a_valid_airflow_session(view):
    client, _ = view
    for path in ("/", "/api/models"):
        assert client.get(path).status_code == 401, path
    assert client.get("/", headers={"Authorization": "Bearer not-a-jwt"}).status_code == 403
    assert client.get("/", cookies={"_token": "not-a-jwt"}).status_code == 403


def test_the_view_answers_a_user_with_an_airflow_session(view):
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    client, manager = view
    token = manager.generate_jwt(SimpleAuthManagerUser(username="ana", role="viewer"))
    page = client.get("/", cookies={"_token": token})
    assert page.status_code == 200 and 'data-model="flight_delay"' in page.text
    assert "gate false" in page.text and "no drift" in page.text
    (model,) = client.get("/api/models", headers={"Authorization": f"Bearer {token}"}).json()
    assert model["aliases"]["champion"]["version"] == "1"
    assert {(move["alias"], move["actor"]) for move in model["history"]} == {
        ("champion", "ana"),
        ("challenger", "RegisterOperator"),
    }


@pytest.fixture
def large_registry(tmp_path, monkeypatch, airflow_db):
    """50 versions and 365 scored daily intervals of one binary model (plus retrain requests in Airflow's db)."""
    from tests.models_view_registry import build_model, record_retrain_requests

    sqlite_mlflow_connection(monkeypatch, "mlflow_view", tmp_path, ui_url="http://mlflow.test")
    isolated_trust(monkeypatch, tmp_path / "trust")
    hook = MlflowHook(mlflow_conn_id="mlflow_view")
    built = build_model(
        hook, "large_model", "binary", versions=50, intervals=365, report_root=tmp_path / "monitoring"
    )
    record_retrain_requests("large_model", 3)
    return hook, built


def test_the_charts_of_50_versions_and_365_intervals(large_registry):
    from mlops_ops.hooks.trust import TrustHook
    from mlops_ops.ui.model_data import gather

    hook, built = large_registry
    data = gather(hook, "large_model", TrustHook())
    assert data["task"] == "binary"
    assert [version["version"] for version in data["versions"]] == [str(n) for n in range(1, 51)]
    assert data["aliases"] == {"champion": built.champion, "challenger": built.challenger}
    assert len(data["intervals"]) == 365 and len(data["drift"]["share"]) == 365
    assert len(data["drift"]["scores"]) == 365 * len(built.columns)
    # Columns sorted by how often they drifted (from the drift result files), most often first.
    assert data["drift"]["counted_intervals"] == 365
    assert data["drift"]["drift_counts"] == sorted(data["drift"]["drift_counts"], reverse=True)
    assert data["drift"]["threshold"] == 0.5
    assert data["drift"]["new_categories"]["carrier"] == ["<img src=x onerror=alert(1)>", "ZZ"]
    assert data["holdout"]["thresholds"] == [
        {"metric": "roc_auc", "kind": "floor", "value": 0.66},
        {"metric": "log_loss", "kind": "ceiling", "value": 0.5},
    ]
    # Every limit of the decay rule, kept or broken (accuracy's max_drop as the floor it sets).
    assert data["performance"]["thresholds"] == [
        {"metric": "roc_auc", "kind": "floor", "value": 0.65},
        {"metric": "accuracy", "kind": "floor", "value": 0.72},
    ]
    labelled = [value for value in data["performance"]["values"]["roc_auc"] if value is not None]
    assert len(labelled) == 365 - 5  # the last intervals' labels have not arrived
    assert data["distribution"]["metrics"] == ["prediction.mean", "predicted_positive_rate", "positive_rate"]
    assert None not in data["distribution"]["values"]["prediction.mean"]  # recorded before the labels arrive
    assert len(data["moves"]) == built.moves and {move["kind"] for move in data["moves"]} == {
        "registration",
        "promotion",
        "rollback",
        "force",
    }
    assert data["out_of_band"] == []
    assert [request["source"] for request in data["requests"]][:1] == [
        "monitor/scheduled__2013-01-15T00:00:00+00:00"
    ]
    interval = data["intervals"][0]
    assert interval["key"] == "20130101T0000Z_20130102T0000Z" and interval["report_url"].startswith(
        "http://mlflow.test/#/experiments/"
    )
    assert interval["report_url"].endswith(
        "/artifacts/drift/interval%3D20130101T0000Z_20130102T0000Z/drift_report.html"
    )
    # The Airflow run that checked the interval (named in its drift result file).
    assert (
        interval["airflow_url"]
        == "/dags/monitor_large_model/runs/scheduled__2013-01-02T00%3A00%3A00%2B00%3A00"
    )
    version = data["versions"][0]
    assert version["airflow_url"] == "/dags/retrain/runs/manual__2013-02-01T00%3A00%3A00%2B00%3A00"
    assert version["version_url"] == "http://mlflow.test/#/models/large_model/versions/1"


def test_the_model_page_is_served_within_a_second_at_50_versions_and_365_intervals(
    large_registry, airflow_db
):
    """A coarse guard on the server time of ``GET /model/<name>`` (registry reads, signed-log checks, HTML): the
    median of 5 under 2 s. The measurement against issue 21's goal (1 s) is the benchmark,
    ``uv run --frozen python -m benchmarks models_view`` (benchmarks/results/models_view.json)."""
    import statistics
    import time

    from airflow.api_fastapi import app as airflow_app
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    from mlops_ops.ui.lazy import LazyAsgiApp
    from mlops_ops.ui.models_view import create_app

    manager = airflow_app.create_auth_manager()
    try:
        client = TestClient(LazyAsgiApp(lambda: create_app("mlflow_view")))
        token = manager.generate_jwt(SimpleAuthManagerUser(username="ana", role="viewer"))
        client.cookies.set("_token", token)
        assert client.get("/model/large_model").status_code == 200  # warm: imports, first connection
        timings = {}
        for path in ("/model/large_model", "/"):
            seconds = []
            for _ in range(5):
                started = time.perf_counter()
                response = client.get(path)
                seconds.append(time.perf_counter() - started)
                assert response.status_code == 200
            timings[path] = statistics.median(seconds)
        print(f"\nmedian server time of 5: {timings} ({len(response.text):,} bytes overview)")
        # Not the measurement: `python -m benchmarks models_view` measures this page (and its charts JSON)
        # against the 1 s goal, medians and p90 of 15 requests. Here the 2-core machine is shared with other
        # test workers, hence the margin: this only catches a page that became several times slower.
        assert timings["/model/large_model"] <= 2.0, timings
    finally:
        airflow_app._AuthManagerState.instance = None


def test_the_wheel_carries_echarts_and_the_view_script(tmp_path):
    """``uv build`` (the sdist, then the wheel from it) puts the git-ignored ECharts bundle that ``make ui-assets``
    copied into the package, and leaves the npm folder out."""
    import shutil
    import subprocess
    import zipfile
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    bundle = root / "mlops_ops" / "ui" / "static" / "echarts.min.js"
    assert bundle.is_file(), (
        "run `make ui-assets` (a prerequisite of `make env`): npm ci + copy of echarts.min.js"
    )
    uv = shutil.which("uv") or str(Path.home() / ".local" / "bin" / "uv")
    subprocess.run([uv, "build", "-q", "-o", str(tmp_path), str(root)], check=True, timeout=300)
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"mlops_ops/ui/static/echarts.min.js", "mlops_ops/ui/scripts/models_view.js"} <= names
    assert zipfile.ZipFile(wheel).read("mlops_ops/ui/static/echarts.min.js") == bundle.read_bytes()
    assert not [name for name in names if "/frontend/" in name or "node_modules" in name]
