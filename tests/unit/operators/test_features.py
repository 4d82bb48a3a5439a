"""Feature-store operators with the Feast hook mocked at its method level."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from unittest import mock

import pandas as pd
import pytest

from mlops_ops.core.features import FeastSettings, MaterializeWindow, SkewReport, TrainingSetReport
from mlops_ops.hooks.feast import FeastHook
from mlops_ops.operators.features import (
    FeastMaterializeOperator,
    FeatureSetOperator,
    FeatureSkewCheckOperator,
    FeatureSkewDetected,
    TrainingSetRefused,
)
from tests.unit.operators.support import make_ti

END = datetime(2013, 2, 1, tzinfo=UTC)


@pytest.fixture
def settings(tmp_path):
    # apply() is stubbed here (no repository on tmp_path); a test that checks it is called patches it again.
    with (
        mock.patch.object(
            FeastHook,
            "settings",
            FeastSettings(repo_path=str(tmp_path), data_root=str(tmp_path), project="unit"),
        ),
        mock.patch.object(FeastHook, "apply", return_value=[]),
    ):
        yield


def test_materialize_applies_then_materializes_up_to_the_interval_end(settings):
    window = MaterializeWindow(start=END - timedelta(hours=7), end=END, first_run=False, clamped=False)
    with (
        mock.patch.object(FeastHook, "apply", return_value=["aircraft", "origin"]) as apply,
        mock.patch.object(FeastHook, "materialize", return_value=window) as materialize,
    ):
        operator = FeastMaterializeOperator(
            task_id="materialize", feature_views=["aircraft"], overlap=timedelta(hours=6)
        )
        result = operator.execute({"data_interval_end": END, "ti": make_ti("r")})
    apply.assert_called_once_with()
    materialize.assert_called_once_with(END, timedelta(hours=6), ["aircraft"])
    assert json.loads(json.dumps(result)) == {
        "project": "unit",
        "online_store": "sqlite",
        "applied": ["aircraft", "origin"],
        "feature_views": ["aircraft"],
        "window": {
            "start": "2013-01-31T17:00:00+00:00",
            "end": "2013-02-01T00:00:00+00:00",
            "first_run": False,
            "clamped": False,
        },
    }


def test_a_rendered_end_param_wins_over_the_interval_and_is_utc(settings):
    window = MaterializeWindow(start=END, end=END, first_run=True, clamped=False)
    with (
        mock.patch.object(FeastHook, "materialize", return_value=window) as materialize,
        mock.patch.object(
            FeastHook, "store", SimpleNamespace(list_feature_views=lambda: [SimpleNamespace(name="v")])
        ),
    ):
        operator = FeastMaterializeOperator(task_id="m", end="2013-02-01T00:00:00", apply_definitions=False)
        result = operator.execute({"data_interval_end": datetime(2026, 1, 1, tzinfo=UTC), "ti": make_ti("r")})
    assert materialize.call_args.args[0] == END
    assert result["applied"] == [] and result["feature_views"] == ["v"]


def _write_entities(tmp_path) -> str:
    path = tmp_path / "entities.parquet"
    pd.DataFrame(
        {"origin": ["EWR", "JFK"], "time_hour": pd.to_datetime(["2013-01-01", "2013-01-02"], utc=True)}
    ).to_parquet(path)
    return str(path)


def _historical(frame, features, timestamp_column):
    assert features == "flight_delay_features" and timestamp_column == "time_hour"
    report = TrainingSetReport(
        rows_in=2,
        rows_out=2,
        rows_unmatched=1,
        rows_with_missing=1,
        missing={"temp": 1},
        features=["temp"],
    )
    return frame.assign(temp=[1.0, None]), report


def test_feature_set_writes_every_row_and_pushes_its_counts(settings, tmp_path):
    output = tmp_path / "out" / "train.parquet"
    with mock.patch.object(FeastHook, "historical_features", side_effect=_historical):
        operator = FeatureSetOperator(
            task_id="features",
            feature_service="flight_delay_features",
            entities={"files": [_write_entities(tmp_path)]},
            timestamp_column="time_hour",
            output_uri=str(output),
        )
        result = operator.execute({"ti": make_ti("r")})
    assert json.loads(json.dumps(result))["uri"] == str(output)
    assert (result["rows_in"], result["rows_out"], result["rows_with_missing"]) == (2, 2, 1)
    assert result["data_version"]["files"] == [str(output)] and result["data_version"]["kind"] == "local"
    assert result["data_version"]["fingerprint"].startswith("sha256:")
    assert pd.read_parquet(output)["temp"].isna().tolist() == [False, True]


def test_feature_set_refuses_too_many_missing_features_after_pushing_the_report(settings, tmp_path):
    ti = make_ti("r")
    with mock.patch.object(FeastHook, "historical_features", side_effect=_historical):
        operator = FeatureSetOperator(
            task_id="features",
            feature_service="flight_delay_features",
            entities=_write_entities(tmp_path),
            timestamp_column="time_hour",
            output_uri=str(tmp_path / "o.parquet"),
            max_missing_rate=0.25,
        )
        with pytest.raises(TrainingSetRefused, match=r"1 of 2 rows \(50.0%\).*'temp': 1"):
            operator.execute({"ti": ti})
    assert ti.pushed["return_value"]["rows_with_missing"] == 1


def test_feature_set_default_output_is_derived_from_the_run(settings, tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_DATA_ROOT", str(tmp_path / "root"))
    with mock.patch.object(FeastHook, "historical_features", side_effect=_historical):
        operator = FeatureSetOperator(
            task_id="features",
            feature_service="flight_delay_features",
            entities=[_write_entities(tmp_path)],
            timestamp_column="time_hour",
        )
        first = operator.execute({"ti": make_ti("run_1", task_id="features")})
        second = operator.execute({"ti": make_ti("run_1", task_id="features")})  # a retry: same file
    assert (
        first["uri"]
        == second["uri"]
        == str(tmp_path / "root" / "feature_sets" / "retrain" / "run_1" / "features.parquet")
    )


def test_feature_set_refuses_entities_that_name_no_files(settings):
    with pytest.raises(TrainingSetRefused, match="entities must name Parquet files"):
        FeatureSetOperator(
            task_id="features",
            feature_service="flight_delay_features",
            entities={"fingerprint": "x"},
            apply_definitions=False,
        ).execute({"ti": make_ti("r")})


def _skew(mismatched: int) -> SkewReport:
    examples = (
        [
            {
                "view": "aircraft",
                "key": {"tailnum": "N1"},
                "feature": "seats",
                "online": 1,
                "offline": 2,
                "at": END.isoformat(),
            }
        ]
        if mismatched
        else []
    )
    return SkewReport(checked=100, mismatched=mismatched, entities={"aircraft": 20}, examples=examples)


def test_skew_check_passes_within_the_threshold(settings):
    with mock.patch.object(FeastHook, "skew_check", return_value=_skew(1)) as check:
        result = FeatureSkewCheckOperator(
            task_id="skew", feature_service="team_features", sample_size=20, max_mismatch_rate=0.05, seed=3
        ).execute({"ti": make_ti("r")})
    check.assert_called_once_with("team_features", 20, 3)
    assert json.loads(json.dumps(result))["mismatch_rate"] == 0.01


def test_skew_check_fails_above_the_threshold_listing_the_differences(settings):
    ti = make_ti("r")
    with mock.patch.object(FeastHook, "skew_check", return_value=_skew(2)):
        with pytest.raises(
            FeatureSkewDetected, match=r"2 of 100 .*aircraft \{'tailnum': 'N1'\} seats: online 1 != offline 2"
        ):
            FeatureSkewCheckOperator(task_id="skew", feature_service="team_features").execute({"ti": ti})
    assert ti.pushed["return_value"]["mismatched"] == 2
