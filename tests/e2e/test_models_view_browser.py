"""The Models view's charts in a real browser (Debian's Chromium, driven by Playwright): the view's app served by
uvicorn with Airflow's own auth manager in front, on a registry built as months of lifecycle runs leave it (a binary
``flight_delay`` model and a regression ``diabetes_progression`` one, see :mod:`tests.models_view_registry`).

Each chart is read back from ECharts itself (``echarts.getInstanceByDom(el).getOption()``): the number of points it
draws, its threshold lines. A point is hovered and its tooltip read; a point is clicked and its link followed. The
page loads nothing from outside the host (every other request is refused and counted).

Screenshots are saved under the test's tmp dir, and in ``$MLOPS_SCREENSHOTS_DIR`` when set (how
docs/screenshots/models-view-*.png were made).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from tests.airflow_rest import free_port
from tests.mlflow_connection import sqlite_mlflow_connection
from tests.trust_support import isolated_trust

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
]
UI_TIMEOUT_MS = 60_000
MLFLOW_UI = "http://mlflow.test"
FLIGHTS = {"versions": 12, "intervals": 120}
DIABETES = {"versions": 7, "intervals": 60}
#: Every chart of a model's page.
CHARTS = (
    "chart-holdout",
    "chart-drift-share",
    "chart-drift-heatmap",
    "chart-volume",
    "chart-distribution",
    "chart-performance",
    "chart-cost",
    "chart-timeline",
)


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} is missing: apt-get install -y chromium (Debian's package; .ci/run installs it)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


#: The retrain requests of each model in the session's Airflow database once the fixture recorded its own.
RETRAIN_REQUESTS: dict[str, int] = {}


@pytest.fixture(scope="module")
def registry(tmp_path_factory, airflow_db):
    from mlops_ops.hooks.mlflow import MlflowHook
    from tests.models_view_registry import build_model, record_retrain_requests

    _require_chromium()
    folder = tmp_path_factory.mktemp("models-view-registry")
    with pytest.MonkeyPatch.context() as monkeypatch:
        sqlite_mlflow_connection(monkeypatch, "mlflow_default", folder, ui_url=MLFLOW_UI)
        isolated_trust(monkeypatch, folder / "trust")
        hook = MlflowHook(mlflow_conn_id="mlflow_default")
        built = {
            "flight_delay": build_model(
                hook,
                "flight_delay",
                "binary",
                report_root=folder / "monitoring",
                out_of_band_challenger=True,
                **FLIGHTS,
            ),
            "diabetes_progression": build_model(
                hook, "diabetes_progression", "regression", report_root=folder / "monitoring", **DIABETES
            ),
        }
        RETRAIN_REQUESTS["flight_delay"] = record_retrain_requests("flight_delay", 3)
        yield built


@pytest.fixture(scope="module")
def server(registry):
    """The view's app behind Airflow's auth manager, on a free port; yields its URL and a viewer's token."""
    import uvicorn
    from airflow.api_fastapi import app as airflow_app
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    from mlops_ops.ui.lazy import LazyAsgiApp
    from mlops_ops.ui.models_view import create_app

    manager = airflow_app.create_auth_manager()
    token = manager.generate_jwt(SimpleAuthManagerUser(username="ana", role="viewer"))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(LazyAsgiApp(create_app), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}", token
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        airflow_app._AuthManagerState.instance = None


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models-view-screenshots")
    print(f"\nscreenshots: {folder}")
    copies = os.environ.get("MLOPS_SCREENSHOTS_DIR")

    def shot(page, name: str) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        if copies:
            Path(copies).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(copies) / path.name)
        return path

    return shot


@pytest.fixture(scope="module")
def browser_context(server):
    from playwright.sync_api import sync_playwright

    url, token = server
    outside: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, base_url=url)
        context.set_default_timeout(UI_TIMEOUT_MS)
        context.add_cookies([{"name": "_token", "value": token, "url": url}])

        def route(request_route):
            request = request_route.request
            if request.url.startswith(url):
                request_route.continue_()
            elif request.url.startswith(MLFLOW_UI):
                request_route.fulfill(status=200, content_type="text/html", body="<p>MLflow UI (stub)</p>")
            else:
                outside.append(request.url)
                request_route.abort()

        context.route("**/*", route)
        try:
            yield context, outside
        finally:
            browser.close()


@pytest.fixture
def page(browser_context, shots):
    context, outside = browser_context
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    try:
        yield page
    except BaseException:
        shots(page, "models-view-failure")
        raise
    finally:
        assert dialogs == [], f"a script from the registry ran: {dialogs}"
        assert outside == [], f"the page reached outside the host: {outside}"
        page.close()


def _options(page) -> dict:
    """Each chart's ECharts option as the chart instance holds it (only the JSON-safe parts)."""
    page.wait_for_function(
        "ids => ids.every(id => window.echarts && echarts.getInstanceByDom(document.getElementById(id)))",
        arg=list(CHARTS),
    )
    return page.evaluate(
        """ids => Object.fromEntries(ids.map(id => {
            const option = echarts.getInstanceByDom(document.getElementById(id)).getOption();
            return [id, {
                title: (option.title || []).map(t => t.text || ''),
                series: (option.series || []).map(s => ({
                    name: s.name, type: s.type, points: (s.data || []).length,
                    markPoints: ((s.markPoint || {}).data || []).map(p => p.name),
                    markLines: ((s.markLine || {}).data || []).map(l => l.yAxis),
                })),
                yAxis: (option.yAxis || []).map(a => a.data || null),
            }];
        }))""",
        list(CHARTS),
    )


def _points(option: dict) -> list[int]:
    return [series["points"] for series in option["series"]]


def _pixel(page, chart: str, series_name: str, index: int) -> tuple[float, float]:
    """Where point ``index`` of ``series_name`` is on the page (the chart scrolled into view)."""
    return page.evaluate(
        """([id, name, index]) => {
            document.getElementById(id).scrollIntoView({block: 'center'});
            const chart = echarts.getInstanceByDom(document.getElementById(id));
            const option = chart.getOption();
            const at = option.series.findIndex(s => s.name === name);
            const point = option.series[at].data[index];
            const value = point && typeof point === 'object' && 'value' in point ? point.value : point;
            const pixel = chart.convertToPixel({seriesIndex: at}, Array.isArray(value) ? value : [index, value]);
            const box = document.getElementById(id).getBoundingClientRect();
            return [box.left + pixel[0], box.top + pixel[1]];
        }""",
        [chart, series_name, index],
    )


def _hover(page, chart: str, series_name: str, index: int) -> str:
    """Move the mouse onto point ``index`` of ``series_name``; return the tooltip's text."""
    x, y = _pixel(page, chart, series_name, index)
    page.mouse.move(x - 30, y - 30)
    page.mouse.move(x, y, steps=5)
    tooltip = page.locator(f"#{chart} > div").filter(has_text=series_name).last
    tooltip.wait_for(state="visible")
    return tooltip.inner_text()


def test_the_flights_model_page_draws_every_chart(page, registry, shots):
    built = registry["flight_delay"]
    page.goto("/model/flight_delay")
    options = _options(page)
    versions, intervals = FLIGHTS["versions"], FLIGHTS["intervals"]

    holdout = options["chart-holdout"]
    assert {series["name"] for series in holdout["series"]} == {"roc_auc", "accuracy", "f1", "log_loss"}
    assert set(_points(holdout)) == {versions}
    roc = next(series for series in holdout["series"] if series["name"] == "roc_auc")
    assert sorted(roc["markPoints"]) == ["challenger", "champion"] and roc["markLines"] == [0.66]
    log_loss = next(series for series in holdout["series"] if series["name"] == "log_loss")
    assert log_loss["markLines"] == [0.5]

    share = options["chart-drift-share"]
    assert _points(share) == [intervals] and share["series"][0]["markLines"] == [0.5]
    heat = options["chart-drift-heatmap"]
    assert _points(heat) == [intervals * len(built.columns)]
    assert sorted(heat["yAxis"][0]) == sorted(built.columns)  # every column, sorted by how often it drifted
    assert _points(options["chart-volume"]) == [intervals, intervals]
    distribution = options["chart-distribution"]
    assert [series["name"] for series in distribution["series"]] == [
        "mean predicted probability",
        "predicted positive rate",
        "observed positive rate",
    ]
    assert _points(distribution) == [intervals, intervals, intervals]
    performance = options["chart-performance"]
    assert {series["name"] for series in performance["series"]} == {"roc_auc", "accuracy"}
    assert set(_points(performance)) == {intervals}
    assert next(s for s in performance["series"] if s["name"] == "roc_auc")["markLines"] == [0.65]
    # A decay limit is drawn before it is broken: accuracy's max_drop as the floor it sets.
    assert next(s for s in performance["series"] if s["name"] == "accuracy")["markLines"] == [0.72]
    assert _points(options["chart-cost"]) == [intervals, intervals]
    timeline = {series["name"]: series["points"] for series in options["chart-timeline"]["series"]}
    assert sum(timeline[kind] for kind in ("registration", "promotion", "rollback", "force")) == built.moves
    assert timeline["out-of-band move (not in the signed log)"] == 1
    assert timeline["retrain request"] == RETRAIN_REQUESTS["flight_delay"] >= 3
    for chart in CHARTS:
        assert options[chart]["title"] in ([], [""]), f"{chart} drew nothing: {options[chart]['title']}"

    # The registry's out-of-band move is flagged; new categories are listed, as text.
    assert "outside the project" in page.locator("p.untrusted").inner_text()
    assert "<img src=x onerror=alert(1)>" in page.locator("ul.categories").inner_text()
    shots(page, "models-view-flight_delay")

    # Hover a version: who trained it and why (escaped: the tag's markup shows as text), and its links.
    champion_index = int(built.champion) - 1
    text = _hover(page, "chart-holdout", "roc_auc", champion_index)
    assert f"v{built.champion}" in text and "champion" in text and "<b>origin</b>" in text
    assert "MLflow model version" in text and "Airflow run" in text

    text = _hover(page, "chart-drift-share", "drift share", 3)
    assert "interval 2013-01-04" in text and "threshold 0.5" in text and "drift report" in text
    assert "Airflow run" in text  # the run that checked the interval
    page.mouse.move(5, 5)

    # A column name too long for the heat map's axis is cut; hovering the label shows it whole.
    from tests.models_view_registry import LONG_COLUMN

    x, y, shown = page.evaluate(
        """column => {
            const element = document.getElementById('chart-drift-heatmap');
            element.scrollIntoView({block: 'center'});
            const chart = echarts.getInstanceByDom(element);
            const y = chart.convertToPixel({yAxisIndex: 0}, column);
            const box = element.getBoundingClientRect();
            const axis = chart.getModel().getComponent('yAxis', 0).axis;
            const label = axis.getViewLabels().find(item => item.rawLabel === column);
            return [box.left + 150, box.top + y, label ? label.formattedLabel : null];
        }""",
        LONG_COLUMN,
    )
    assert shown is not None and len(shown) < len(LONG_COLUMN) and "\u2026" in shown
    page.mouse.move(x - 40, y)
    page.mouse.move(x, y, steps=5)
    tooltip = page.locator("#chart-drift-heatmap > div").filter(has_text=LONG_COLUMN).last
    tooltip.wait_for(state="visible")
    assert "drifted in" in tooltip.inner_text()
    page.mouse.move(5, 5)
    page.mouse.move(5, 5)

    # Click the version's point: its MLflow page opens.
    with page.context.expect_page() as opened:
        x, y = page.evaluate(
            """index => {
                document.getElementById('chart-holdout').scrollIntoView({block: 'center'});
                const chart = echarts.getInstanceByDom(document.getElementById('chart-holdout'));
                const at = chart.getOption().series.findIndex(s => s.name === 'roc_auc');
                const value = chart.getOption().series[at].data[index].value;
                const pixel = chart.convertToPixel({seriesIndex: at}, [index, value]);
                const box = document.getElementById('chart-holdout').getBoundingClientRect();
                return [box.left + pixel[0], box.top + pixel[1]];
            }""",
            champion_index,
        )
        page.mouse.click(x, y)
    mlflow = opened.value
    mlflow.wait_for_load_state()
    assert mlflow.url == f"{MLFLOW_UI}/#/models/flight_delay/versions/{built.champion}"
    mlflow.close()


def test_the_regression_model_page_draws_every_chart(page, registry, shots):
    built = registry["diabetes_progression"]
    page.goto("/model/diabetes_progression")
    options = _options(page)
    versions, intervals = DIABETES["versions"], DIABETES["intervals"]

    holdout = options["chart-holdout"]
    assert {series["name"] for series in holdout["series"]} == {"rmse", "mae", "r2"}
    assert set(_points(holdout)) == {versions}
    assert next(s for s in holdout["series"] if s["name"] == "rmse")["markLines"] == [60.0]
    assert next(s for s in holdout["series"] if s["name"] == "r2")["markLines"] == [0.35]
    assert _points(options["chart-drift-share"]) == [intervals]
    assert _points(options["chart-drift-heatmap"]) == [intervals * len(built.columns)]
    assert _points(options["chart-volume"]) == [intervals, intervals]
    distribution = options["chart-distribution"]
    assert [series["name"] for series in distribution["series"]] == [
        "prediction p10",
        "prediction median",
        "prediction p90",
        "mean prediction",
        "mean prediction (labelled rows)",
        "mean observed target",
    ]
    assert set(_points(distribution)) == {intervals}
    performance = options["chart-performance"]
    assert {series["name"] for series in performance["series"]} == {"rmse", "mae", "r2"}
    assert next(s for s in performance["series"] if s["name"] == "rmse")["markLines"] == [62.0]
    assert next(s for s in performance["series"] if s["name"] == "r2")["markLines"] == [0.3]
    assert _points(options["chart-cost"]) == [intervals, intervals]
    for chart in CHARTS:
        assert options[chart]["title"] in ([], [""]), f"{chart} drew nothing: {options[chart]['title']}"
    timeline = {series["name"]: series["points"] for series in options["chart-timeline"]["series"]}
    assert "out-of-band move (not in the signed log)" not in timeline
    assert timeline["retrain request"] == 0
    assert page.locator("p.untrusted").count() == 0
    shots(page, "models-view-diabetes_progression")

    text = _hover(page, "chart-performance", "rmse", 10)
    assert "interval 2013-01-11" in text and "MLflow monitoring run" in text and "Airflow run" in text
    page.mouse.move(5, 5)

    # Click the interval's point: the monitoring run of the version that scored it opens in MLflow.
    with page.context.expect_page() as opened:
        page.mouse.click(*_pixel(page, "chart-performance", "rmse", 10))
    mlflow = opened.value
    mlflow.wait_for_load_state()
    monitoring_run = page.evaluate(
        "JSON.parse(document.getElementById('model-data').textContent).intervals[10].monitoring_url"
    )
    assert monitoring_run.startswith(f"{MLFLOW_UI}/#/runs/") and mlflow.url == monitoring_run
    mlflow.close()

    # The rollback's reason holds markup: the timeline's tooltip shows it as text.
    rollback = page.evaluate(
        """() => {
            const chart = echarts.getInstanceByDom(document.getElementById('chart-timeline'));
            return chart.getOption().series.find(s => s.name === 'rollback').data.length;
        }"""
    )
    assert rollback == 1
    text = _hover(page, "chart-timeline", "rollback", 0)
    assert "by admin" in text and "<script>x</script>" in text


def test_the_overview_links_each_model_with_its_sparkline(page, registry, shots):
    page.goto("/")
    page.wait_for_function("document.querySelectorAll('.sparkline canvas').length === 2")
    assert page.locator('section[data-model=flight_delay] tr[data-alias="champion"]').count() == 1
    shots(page, "models-view-overview")
    page.get_by_role("link", name="charts of diabetes_progression").click()
    page.wait_for_url("**/model/diabetes_progression")
    assert page.locator("h1").inner_text() == "diabetes_progression"
    _options(page)


def test_an_unknown_model_is_a_404_and_the_scripts_need_a_session(server):
    import httpx

    url, token = server
    assert httpx.get(f"{url}/model/nope", cookies={"_token": token}).status_code == 404
    assert httpx.get(f"{url}/static/echarts.min.js").status_code == 401
    assert httpx.get(f"{url}/static/../models_view.py", cookies={"_token": token}).status_code == 404
    script = httpx.get(f"{url}/static/echarts.min.js", cookies={"_token": token})
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
