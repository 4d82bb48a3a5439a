"""The Airflow UI in a real browser (Debian's Chromium, driven by Playwright) on ``make up``'s local stack:
log in, trigger ``retrain`` through its Params form, watch the run succeed, follow the task's extra link to
MLflow, answer the promotion's approval in the UI, read the Models view, roll back with the trigger form.

Screenshots of every step are saved under the test's tmp dir (``browser-screenshots``; the path is printed),
and in ``$MLOPS_SCREENSHOTS_DIR`` when set (how docs/screenshots/ was made).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from unittest import mock

import pytest

from tests.airflow_rest import RUN_SECONDS, Airflow, free_port
from tests.e2e.standalone import ADMIN_PASSWORD, PROJECT_ROOT, standalone_environment, wait_until_ready

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Playwright's wait for one element or navigation; the 2-core machine is shared, pages can be slow.
UI_TIMEOUT_MS = 60_000
FIRST_REASON = "browser test: first flight_delay model"
ROLLBACK_REASON = "browser test: back to the first model"


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} is missing: apt-get install -y chromium (Debian's package; .ci/run installs it)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """``make up``'s local stack (airflow standalone + the MLflow UI) in a home of its own, on free ports."""
    _require_chromium()
    from mlops_dev.local_stack import start_local_stack, stop_local_stack

    home = tmp_path_factory.mktemp("browser-stack")
    port, mlflow_port = free_port(), free_port()
    environment = standalone_environment(home, port)
    # start_local_stack reads the process environment, as `make up` does in the shell.
    with mock.patch.dict(os.environ, environment, clear=True):
        local = start_local_stack(PROJECT_ROOT, airflow_port=port, mlflow_port=mlflow_port, timeout=240)
    try:
        client = Airflow(local.airflow_url)
        wait_until_ready(client, {"ingest_flights", "retrain", "promote", "rollback"})
        yield client, environment, local
    finally:
        with mock.patch.dict(os.environ, environment, clear=True):
            stop_local_stack(PROJECT_ROOT)


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = tmp_path_factory.mktemp("browser-screenshots")
    print(f"\nscreenshots: {folder}")
    copies = os.environ.get("MLOPS_SCREENSHOTS_DIR")

    def shot(page, name: str) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=str(path))
        if copies:
            Path(copies).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(copies) / path.name)
        return path

    return shot


@pytest.fixture(scope="module")
def page(stack, shots):
    from playwright.sync_api import sync_playwright

    client, _, local = stack
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        # The MLflow UI asks for a login (basic auth): the person's read-only account, sent to MLflow only.
        viewer = {
            "username": local.mlflow_viewer,
            "password": local.mlflow_viewer_password_file.read_text().strip(),
            "origin": local.mlflow_url,
        }
        context = browser.new_context(
            viewport={"width": 1400, "height": 1300}, base_url=local.airflow_url, http_credentials=viewer
        )
        context.set_default_timeout(UI_TIMEOUT_MS)
        page = context.new_page()
        try:
            yield page
        except BaseException:
            shots(page, "failure")
            raise
        finally:
            browser.close()


def _registry(environment):
    import mlflow

    uri = f"sqlite:///{environment['MLOPS_HOME']}/mlflow.db"
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def _aliases(environment) -> dict[str, str]:
    aliases = _registry(environment).get_registered_model("flight_delay").aliases
    return {alias: str(version) for alias, version in aliases.items()}


def _new_run(client: Airflow, dag_id: str, before: set[str]) -> dict:
    return client.wait_for(
        lambda: [run for run in client.runs(dag_id) if run["dag_run_id"] not in before],
        RUN_SECONDS,
        f"a new {dag_id} run",
    )[0]


def _ingest(client: Airflow, through_month: int) -> None:
    run_id = client.trigger("ingest_flights", {"through_month": through_month})
    assert client.wait_run("ingest_flights", run_id) == "success"


def _trigger_from_form(page, dag_id: str, fields: dict[str, str], shots, name: str) -> None:
    """Open the DAG's Trigger form, fill ``fields`` (param name -> text) and trigger."""
    page.goto(f"/dags/{dag_id}")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.get_by_role("dialog")
    for param, text in fields.items():
        dialog.locator(f"input[name=element_{param}]").fill(text)
    shots(page, name)
    dialog.get_by_role("button", name="Trigger").click()
    dialog.wait_for(state="hidden")


def test_log_in_and_trigger_retrain_through_its_params_form(stack, page, shots):
    client, environment, _ = stack
    client.unpause("ingest_flights")
    client.unpause("promote")
    _ingest(client, 2)  # retrain is still paused: no asset-triggered run is queued

    page.goto("/")
    page.locator("input[name=username]").fill("admin")
    page.locator("input[name=password]").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/auth/login" not in url)

    # Bad input: the form's schema refuses it and names the param; nothing is triggered.
    page.goto("/dags/retrain")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.get_by_role("dialog")
    dialog.locator("input[name=element_data_version]").fill("v3")
    dialog.get_by_role("button", name="Trigger").click()
    page.get_by_text("Invalid input for param data_version").wait_for()
    shots(page, "retrain-form-refuses-bad-input")
    # (The form unpaused retrain before the refused trigger: that starts its latest weekly run, not ours.)
    assert [run for run in client.runs("retrain") if run["run_type"] == "manual"] == []
    page.keyboard.press("Escape")

    # "Unpause retrain on trigger" stays checked, as a person leaves it.
    _trigger_from_form(page, "retrain", {"reason": FIRST_REASON}, shots, "retrain-trigger-form")
    manual = client.wait_for(
        lambda: [run for run in client.runs("retrain") if run["run_type"] == "manual"],
        60,
        "the manual retrain run",
    )
    assert manual[0]["conf"]["reason"] == FIRST_REASON


def test_watch_the_retrain_succeed_and_follow_the_link_to_mlflow(stack, page, shots):
    client, environment, local = stack
    # Unpausing also started the latest weekly run: the first of the two to get through trains on the landed
    # months, the other waits (deferred) for newer data.
    page.goto("/dags/retrain/runs")
    succeeded = client.wait_for(
        lambda: (
            [run for run in client.runs("retrain") if run["state"] == "success"]
            or _no_failed_runs(client, "retrain")
        ),
        2 * RUN_SECONDS,
        "a retrain run to succeed",
    )[0]
    run_id = succeeded["dag_run_id"]
    page.goto(f"/dags/retrain/runs/{run_id}")
    page.get_by_text("success").first.wait_for()
    shots(page, "retrain-run-succeeded")

    registered = client.xcom("retrain", run_id, "register")
    page.goto(f"/dags/retrain/runs/{run_id}/tasks/register/details")  # the task's extra links are listed here
    link = page.get_by_role("link", name="MLflow model version")
    href = link.get_attribute("href")
    assert href == f"{local.mlflow_url}/#/models/flight_delay/versions/{registered['version']}"
    shots(page, "register-task-extra-links")
    with page.context.expect_page() as opened:
        link.click()
    mlflow_page = opened.value
    mlflow_page.get_by_text(f"Version {registered['version']}").first.wait_for()
    shots(mlflow_page, "mlflow-model-version")
    assert mlflow_page.url.startswith(local.mlflow_url)
    mlflow_page.close()


def _no_failed_runs(client: Airflow, dag_id: str) -> list:
    failed = [run["dag_run_id"] for run in client.runs(dag_id) if run["state"] == "failed"]
    assert not failed, f"{dag_id} runs failed: {failed}"
    return []


def test_answer_the_promotion_approval_in_the_ui(stack, page, shots):
    client, environment, _ = stack
    run_id = client.wait_for(lambda: client.runs("promote"), 120, "the challenger to start a promotion")[0][
        "dag_run_id"
    ]
    comment = "first champion, approved in the browser"
    # As tests/airflow_rest.py's answer(): Airflow 3.3 may fail a try answered right after it paused, and its
    # retry asks again; a person answers the retry too.
    for _ in range(3):
        paused = client.wait_for(
            lambda: (
                (ti := client.task_instance("promote", run_id, "approve"))["state"] == "awaiting_input" and ti
            ),
            RUN_SECONDS,
            "the approval to wait for input",
        )
        page.goto(f"/dags/promote/runs/{run_id}/tasks/approve/required_actions")
        page.get_by_role("cell", name="roc_auc").first.wait_for()  # the metric diff, rendered as a table
        page.locator("input[name=element_comment], textarea[name=element_comment]").first.fill(comment)
        shots(page, "promote-approval-form")
        page.get_by_role("button", name="Approve").click()
        if client._resumed("promote", run_id, "approve", paused["try_number"]):
            break
    assert client.wait_run("promote", run_id) == "success"
    request = client.xcom("promote", run_id, "request")
    assert _aliases(environment)["champion"] == request["version"]
    decision = json.loads(
        _registry(environment)
        .get_model_version("flight_delay", request["version"])
        .tags["mlops.promotion.decision"]
    )
    assert decision == {
        "outcome": "promoted",
        "by": "admin",
        "comment": comment,
        "airflow_run": f"promote/{run_id}",
    }


def test_the_models_view_shows_the_champion_and_its_history(stack, page, shots):
    client, environment, _ = stack
    champion = _aliases(environment)["champion"]
    page.goto("/")
    page.get_by_role("button", name="Browse").click()
    page.get_by_role("menuitem", name="Models").click()
    view = page.frame_locator("iframe[title=Models]")
    row = view.locator('section[data-model=flight_delay] tr[data-alias="champion"]')
    row.get_by_text(f"v{champion}").wait_for()
    assert "passed" in row.inner_text()
    assert "promotion" in view.locator("table.history").inner_text()
    assert view.locator("p.drift").inner_text() == "none yet"
    shots(page, "models-view")

    # The model's page of charts, inside the Airflow UI: ECharts served by the plugin through the API server.
    view.get_by_role("link", name="charts of flight_delay").click()
    holdout = view.locator("#chart-holdout")
    holdout.locator("canvas").wait_for()
    versions = len(_registry(environment).search_model_versions("name = 'flight_delay'"))
    drawn = holdout.evaluate(
        "el => echarts.getInstanceByDom(el).getOption().series.find(s => s.name === 'roc_auc')"
        ".data.filter(p => p.value !== null).length"
    )
    assert drawn == versions
    assert "No drift check yet" in view.locator("#chart-drift-share").evaluate(
        "el => echarts.getInstanceByDom(el).getOption().title[0].text"
    )
    shots(page, "models-view-charts-in-airflow")
    view.get_by_role("link", name="all models").click()
    view.locator("table.history").wait_for()


def test_roll_back_with_the_trigger_form(stack, page, shots):
    client, environment, _ = stack
    first = _aliases(environment)["champion"]
    # A second champion to roll back from: new data wakes the deferred retrain, its challenger is approved.
    before = {run["dag_run_id"] for run in client.runs("promote")}
    _ingest(client, 3)
    promotion = _new_run(client, "promote", before)["dag_run_id"]
    client.answer("promote", promotion, "approve", "Approve", "March data")
    assert client.wait_run("promote", promotion) == "success"
    second = _aliases(environment)["champion"]
    assert second != first

    _trigger_from_form(page, "rollback", {"reason": ROLLBACK_REASON}, shots, "rollback-trigger-form")
    rollback = client.wait_for(lambda: client.runs("rollback"), 60, "the rollback run")[0]["dag_run_id"]
    assert client.wait_run("rollback", rollback) == "success"
    assert _aliases(environment)["champion"] == first

    page.goto("/plugin/mlops-models")
    view = page.frame_locator("iframe[title=Models]")
    view.locator('tr[data-alias="champion"]').get_by_text(f"v{first}").wait_for()
    latest = view.locator("table.history tr").nth(1).inner_text()
    assert "rollback" in latest and ROLLBACK_REASON in latest and "admin" in latest
    shots(page, "models-view-after-rollback")
