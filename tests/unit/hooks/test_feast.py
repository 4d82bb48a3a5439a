"""FeastHook: settings from its connection or the embedded default, test_connection, a missing extra; on the tiny
synthetic feature repository of tests/unit/synthetic.py (the flights repository is tests/reference/'s)."""

from __future__ import annotations

import json
import sys
from unittest import mock

import pytest

from mlops_ops.core.optional import MissingExtraError
from mlops_ops.hooks.feast import FeastHook
from tests.unit import synthetic


@pytest.fixture
def repo(tmp_path) -> str:
    """A feature repository of one entity, one feature view over a local Parquet file and one feature service."""
    return str(synthetic.feature_repo(tmp_path / "feature_repo", tmp_path / "data"))


def test_connection_sets_repo_project_data_root_and_online_store(monkeypatch, tmp_path, repo):
    extra = {
        "project": "prod",
        "data_root": str(tmp_path),
        "online_store": {"type": "redis", "connection_string": "r:6379"},
    }
    monkeypatch.setenv(
        "AIRFLOW_CONN_FEAST_X", json.dumps({"conn_type": "feast", "host": repo, "extra": extra})
    )
    settings = FeastHook("feast_x").settings
    assert (settings.repo_path, settings.project, settings.data_root) == (repo, "prod", str(tmp_path))
    assert settings.online_store_type == "redis"
    # Feast hands these options to the Redis client: a dead or silent Redis fails in seconds, never hangs.
    assert settings.repo_config()["online_store"]["connection_string"] == (
        "r:6379,socket_connect_timeout=5,socket_timeout=30"
    )


def test_without_a_connection_the_repo_of_the_environment_and_sqlite_are_used(monkeypatch, tmp_path):
    monkeypatch.setenv("MLOPS_DATA_ROOT", str(tmp_path))
    repo = tmp_path / "team_repo"
    repo.mkdir()
    (repo / "feature_store.yaml").write_text("project: team_a\nprovider: local\n")
    monkeypatch.setenv("MLOPS_FEAST_REPO", str(repo))
    settings = FeastHook("feast_missing").settings
    assert settings.repo_path == str(repo) and settings.data_root == str(tmp_path)
    # The project is the repository's own, as the Feast CLI reads it: the wheel knows no project of its own.
    assert settings.project == "team_a"
    assert settings.online_store_type == "sqlite"


def test_without_a_connection_or_a_repo_in_the_environment_the_hook_refuses_to_guess(monkeypatch):
    from mlops_ops.core.features import FeatureStoreError

    monkeypatch.delenv("MLOPS_FEAST_REPO", raising=False)
    with pytest.raises(
        FeatureStoreError, match="no Airflow connection 'feast_missing' and \\$MLOPS_FEAST_REPO"
    ):
        _ = FeastHook("feast_missing").settings


def test_a_repository_without_a_project_names_the_file_and_the_extra(monkeypatch, tmp_path):
    from mlops_ops.core.features import FeatureStoreError

    (tmp_path / "feature_store.yaml").write_text("provider: local\n")
    monkeypatch.setenv("AIRFLOW_CONN_FEAST_X", json.dumps({"conn_type": "feast", "host": str(tmp_path)}))
    with pytest.raises(FeatureStoreError, match="feature_store.yaml names no project.*extra 'project'"):
        _ = FeastHook("feast_x").settings


def test_a_connection_without_a_host_is_refused(monkeypatch):
    from mlops_ops.core.features import FeatureStoreError

    monkeypatch.setenv("AIRFLOW_CONN_FEAST_X", json.dumps({"conn_type": "feast"}))
    with pytest.raises(FeatureStoreError, match="names no feature repository"):
        _ = FeastHook("feast_x").settings


def test_a_repository_that_does_not_exist_is_named(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_FEAST_X", json.dumps({"conn_type": "feast", "host": "no/such/repo"}))
    with pytest.raises(FileNotFoundError, match="no/such/repo"):
        _ = FeastHook("feast_x").settings


def test_test_connection_reports_success_and_failure(monkeypatch, tmp_path, repo):
    monkeypatch.setenv("MLOPS_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.setenv("MLOPS_FEAST_REPO", repo)
    ok, message = FeastHook("feast_missing").test_connection()
    assert ok, message
    assert f"Feast project {synthetic.FEATURE_PROJECT!r} at {repo}" in message
    assert f"{len(synthetic.FEATURE_REPO_OBJECTS)} definitions" in message and "sqlite" in message
    extra = {
        "data_root": str(tmp_path),
        "online_store": {"type": "redis", "connection_string": "127.0.0.1:1"},
    }
    monkeypatch.setenv(
        "AIRFLOW_CONN_FEAST_X", json.dumps({"conn_type": "feast", "host": repo, "extra": extra})
    )
    ok, message = FeastHook("feast_x").test_connection()
    assert not ok and "ConnectionError" in message


def test_a_missing_extra_fails_naming_it(monkeypatch, tmp_path, repo):
    monkeypatch.setenv("MLOPS_DATA_ROOT", str(tmp_path))
    monkeypatch.setenv("MLOPS_FEAST_REPO", repo)
    with (
        mock.patch.dict(sys.modules, {"feast": None}),
        pytest.raises(MissingExtraError, match=r"mlops-ops\[features\]"),
    ):
        FeastHook("feast_missing").get_conn()


def test_redis_timeouts_set_in_the_connection_string_are_kept():
    from mlops_ops.core.features import with_redis_timeouts

    online = {"type": "redis", "connection_string": "r:6379,db=1,socket_timeout=2"}
    assert (
        with_redis_timeouts(online)["connection_string"]
        == "r:6379,db=1,socket_timeout=2,socket_connect_timeout=5"
    )
    assert with_redis_timeouts({"type": "sqlite", "path": "x.db"}) == {"type": "sqlite", "path": "x.db"}


def test_a_dead_redis_fails_naming_the_online_store_without_its_password(monkeypatch, tmp_path, repo):
    import socket

    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from mlops_ops.core.services import ServiceUnavailable

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    extra = {
        "data_root": str(tmp_path),
        "online_store": {"type": "redis", "connection_string": f"127.0.0.1:{port},password=hunter2"},
    }
    monkeypatch.setenv(
        "AIRFLOW_CONN_FEAST_X", json.dumps({"conn_type": "feast", "host": repo, "extra": extra})
    )
    hook = FeastHook("feast_x")
    with pytest.raises(ServiceUnavailable) as raised, hook.unreachable_as("materializing every feature view"):
        # No client retries here (redis-py's default 3, with backoff, take seconds): the translation is tested.
        redis.Redis(host="127.0.0.1", port=port, retry=Retry(NoBackoff(), 0)).ping()
    message = str(raised.value)
    assert message.startswith(
        f"Redis online store redis://127.0.0.1:{port} unreachable while materializing every feature view: "
    )
    assert "hunter2" not in message
