"""The CI's pip-audit verdict: a finding fails, an unreachable vulnerability service is reported, not passed off."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / ".ci" / "pip_audit_report.py"


@pytest.fixture(scope="module")
def verdict():
    spec = importlib.util.spec_from_file_location("pip_audit_report", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.verdict


def _skipped(name):
    return {
        "name": name,
        "skip_reason": f"Dependency not found on PyPI and could not be audited: {name} (1.0)",
    }


def test_a_vulnerability_fails_and_is_named(verdict):
    status, lines = verdict(
        [
            {
                "name": "jinja2",
                "version": "3.1.2",
                "vulns": [{"id": "GHSA-h5c8-rqwp-cp95", "fix_versions": ["3.1.3"]}],
            },
            {"name": "numpy", "version": "2.4.0", "vulns": []},
        ]
    )
    assert status == 1
    assert "pip-audit: jinja2 3.1.2: GHSA-h5c8-rqwp-cp95 (fixed in 3.1.3)" in lines
    assert "FAILED: 1 vulnerable package(s) of 2 audited" in lines[-1]


def test_an_unreachable_service_is_reported_as_not_audited_without_failing(verdict):
    status, lines = verdict([_skipped("numpy"), _skipped("pandas")])
    assert status == 0
    assert (
        lines[-1].startswith("pip-audit: NOT AUDITED:") and "all 2 locked packages were skipped" in lines[-1]
    )


def test_a_clean_audit_says_what_it_skipped(verdict):
    status, lines = verdict([{"name": "numpy", "version": "2.4.0", "vulns": []}, _skipped("mlops-ops")])
    assert (status, lines) == (
        0,
        ["pip-audit: clean: 1 package(s) audited, no known vulnerability; 1 skipped: mlops-ops"],
    )
