"""Fixtures of the integration tests: landed flights with the feature sources built from them, and a client of
the machine's Redis for the stream tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def feature_root(tmp_path_factory) -> str:
    """A data root with 2013 months 1 and 2 landed and the flights feature sources built from them."""
    from include.flights import data, feature_sources

    root = str(tmp_path_factory.mktemp("feature-root"))
    for month in (1, 2):
        data.land_month(root, month)
    feature_sources.build_sources(root)
    return root


@pytest.fixture
def redis_client():
    """A client of the Redis on 127.0.0.1:6379 (the stream tests check it is up first: ``require_redis``)."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379)
    yield client
    client.close()
