"""The flights reference project's Feast repository (include/flights/feature_repo) through FeastHook: its
definitions load, its registry opens and its SQLite online store answers.

Reference tier: this is about the reference project's repository, so it lives outside the unit tier (moved from
tests/unit/hooks/test_feast.py, whose tests of the hook now use a tiny synthetic repository)."""

from __future__ import annotations

from pathlib import Path

from mlops_ops.hooks.feast import FeastHook

REPO = str(Path(__file__).resolve().parents[2] / "include" / "flights" / "feature_repo")


def test_the_flights_repository_passes_test_connection_with_its_ten_definitions(monkeypatch, tmp_path):
    monkeypatch.setenv("MLOPS_DATA_ROOT", str(tmp_path))
    monkeypatch.setenv("MLOPS_FEAST_REPO", REPO)
    ok, message = FeastHook("feast_missing").test_connection()
    assert ok, message
    assert "Feast project 'flights'" in message
    assert "10 definitions" in message and "sqlite" in message
