"""The reference project's flight-delay spec for tests outside the unit tier that train on landed flights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

SPEC_PATH = Path(__file__).resolve().parents[1] / "include" / "flights" / "model_spec.yaml"


def flights_spec() -> dict[str, Any]:
    """The real flight-delay spec without the feature store (raw landed flights are enough), with a small
    estimator, to keep training under a second."""
    from include.flights.features import without_feature_store

    return {**without_feature_store(yaml.safe_load(SPEC_PATH.read_text())), "params": {"max_iter": 20}}
