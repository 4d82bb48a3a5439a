"""Helpers of the feature-store and serving tests: a real flights feature repository on a temporary data root,
the real Redis on 127.0.0.1:6379, and flight_delay versions registered in a local MLflow."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path
from typing import Any

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
REPO_PATH = str(PROJECT_ROOT / "include" / "flights" / "feature_repo")
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


def redis_available() -> bool:
    """Whether a Redis server answers PING on 127.0.0.1:6379."""
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=1) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def require_redis() -> None:
    """Skip without Redis, except in CI, where the Redis test must run (and so fails)."""
    if not redis_available():
        if os.environ.get("CI"):
            pytest.fail(
                "CI is set but no Redis answers on 127.0.0.1:6379: the Redis online store test must run"
            )
        pytest.skip("no Redis on 127.0.0.1:6379 (start it: redis-server --port 6379); CI runs this test")


def redis_online_store() -> dict[str, Any]:
    """Feast's online store mapping for the local Redis."""
    return {"type": "redis", "connection_string": f"{REDIS_HOST}:{REDIS_PORT},db=0"}


def unique_project() -> str:
    """A Feast project name no other test uses: it suffixes every Redis key, so tests cannot collide."""
    return f"mlops_test_{uuid.uuid4().hex[:10]}"


def redis_keys(project: str) -> int:
    """How many Redis keys belong to ``project``."""
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    return sum(1 for _ in client.scan_iter(match=f"*{project}", count=1000))


def settings_for(tmp_path: Path, data_root: str, online_store: dict[str, Any] | None = None, project=None):
    """FeastSettings over ``data_root`` with the registry (and SQLite store) in ``tmp_path``."""
    from mlops_ops.core.features import FeastSettings

    return FeastSettings(
        repo_path=REPO_PATH,
        data_root=data_root,
        project=project or unique_project(),
        online_store=online_store or {"type": "sqlite", "path": str(tmp_path / "online.db")},
        registry=str(tmp_path / "registry.db"),
    )


def applied_store(settings):
    """A store with the repository's definitions applied."""
    from mlops_ops.core import features
    from mlops_ops.hooks.feast import open_feature_store

    store = open_feature_store(settings)
    features.apply_definitions(store, features.load_definitions(settings.repo_path, settings.data_root))
    return store


def connection_json(settings) -> str:
    """An Airflow connection (JSON, for ``AIRFLOW_CONN_*``) of ``settings``."""
    import json

    return json.dumps(
        {
            "conn_type": "feast",
            "host": settings.repo_path,
            "extra": {
                "project": settings.project,
                "data_root": settings.data_root,
                "online_store": dict(settings.online_store),
                "registry": settings.registry,
            },
        }
    )
