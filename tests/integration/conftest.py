"""Fixtures of the integration tests that need landed flights and the feature sources built from them."""

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
