"""Pure parts of core.features: the materialization window, value equality, settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mlops_ops.core.features import (
    FIRST_START,
    FeastSettings,
    FeatureStoreError,
    materialize_window,
    same_value,
)

END = datetime(2013, 2, 1, tzinfo=UTC)
SIX_HOURS = timedelta(hours=6)


def test_first_run_reads_everything_up_to_end():
    window = materialize_window([None, END], END, SIX_HOURS)
    assert (window.start, window.end, window.first_run, window.clamped) == (FIRST_START, END, True, False)


def test_later_runs_start_at_the_oldest_last_end_minus_the_overlap():
    window = materialize_window([END - timedelta(hours=1), END - timedelta(hours=3)], END, SIX_HOURS)
    assert window.start == END - timedelta(hours=9) and window.end == END and not window.first_run


def test_an_old_end_is_clamped_instead_of_rolling_the_online_store_back():
    window = materialize_window([END], END - timedelta(days=3), SIX_HOURS)
    assert window.clamped and window.end == END and window.start == END - SIX_HOURS


def test_naive_and_string_ends_are_utc():
    assert materialize_window([None], "2013-02-01T00:00:00", SIX_HOURS).end == END
    assert materialize_window([None], datetime(2013, 2, 1), SIX_HOURS).to_dict()["end"] == END.isoformat()


@pytest.mark.parametrize(
    ("left", "right", "equal"),
    [
        (None, float("nan"), True),
        (1.0, 1.0 + 1e-12, True),
        (1.0, 1.01, False),
        (None, 0.0, False),
        (149, 149.0, True),
        ("Turbo-fan", "Turbo-fan", True),
        ("a", "b", False),
    ],
)
def test_same_value(left, right, equal):
    assert same_value(left, right) is equal


def test_settings_default_to_sqlite_under_the_data_root_and_refuse_s3(tmp_path):
    config = FeastSettings(
        repo_path=str(tmp_path), data_root=str(tmp_path / "data"), project="unit"
    ).repo_config()
    assert config["online_store"] == {
        "type": "sqlite",
        "path": str(tmp_path / "data" / "feast" / "online.db"),
    }
    assert config["registry"]["path"] == str(tmp_path / "data" / "feast" / "registry.db")
    with pytest.raises(FeatureStoreError, match="is in an object store"):
        FeastSettings(repo_path=str(tmp_path), data_root="s3://bucket/data", project="unit").repo_config()
