"""Where the embedded defaults put things."""

from __future__ import annotations

from mlops_ops.core import settings


def test_the_feature_root_is_the_local_data_root_or_a_local_folder_beside_an_s3_one(monkeypatch, tmp_path):
    monkeypatch.delenv(settings.FEATURE_ROOT_ENV, raising=False)
    monkeypatch.setenv(settings.MLOPS_HOME_ENV, str(tmp_path / "home"))
    monkeypatch.setenv(settings.DATA_ROOT_ENV, str(tmp_path / "data"))
    assert settings.feature_root() == str(tmp_path / "data")

    # Feast's file offline store reads local Parquet: an S3 data root keeps the feature sources local.
    monkeypatch.setenv(settings.DATA_ROOT_ENV, "s3://lake/data")
    assert settings.feature_root() == str(tmp_path / "home" / "features")

    monkeypatch.setenv(settings.FEATURE_ROOT_ENV, "/mnt/features")
    assert settings.feature_root() == "/mnt/features"
