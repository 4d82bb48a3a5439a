"""core.modelspec: the ``bounds`` of a model spec (accepted ranges of input values), parsed and checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_ops.core.errors import DataError
from mlops_ops.core.modelspec import ModelSpec

PROJECT_ROOT = Path(__file__).resolve().parents[3]
BASE = {"name": "m", "target": "y", "categorical_features": ["carrier"], "numerical_features": ["distance"]}


def test_bounds_are_read_as_min_max_pairs_with_open_ends():
    spec = ModelSpec.from_dict(
        BASE | {"bounds": {"distance": [1, 10000.5], "flight": [0, None], "t": [None, 9]}}
    )
    assert spec.bounds == {"distance": (1, 10000.5), "flight": (0, None), "t": (None, 9)}
    assert spec.to_dict()["bounds"] == {"distance": [1, 10000.5], "flight": [0, None], "t": [None, 9]}


def test_a_spec_without_bounds_keeps_its_former_form():
    """The training key hashes ``to_dict()``: a spec that declares no bounds must hash as it did before."""
    spec = ModelSpec.from_dict(BASE)
    assert spec.bounds == {} and "bounds" not in spec.to_dict()


@pytest.mark.parametrize(
    ("bounds", "message"),
    [
        ([1, 2], "bounds must be a mapping of column to [min, max], got list"),
        ({"distance": 5}, "bounds.distance must be [min, max]"),
        ({"distance": [1, 2, 3]}, "bounds.distance must be [min, max]"),
        ({"distance": ["1", 2]}, "bounds.distance: '1' is not a number"),
        ({"distance": [True, 2]}, "bounds.distance: True is not a number"),
        ({"distance": [float("nan"), 2]}, "bounds.distance: nan is not finite"),
        ({"distance": [0, float("inf")]}, "bounds.distance: inf is not finite (use null for no limit)"),
        ({"distance": [None, None]}, "bounds.distance: [null, null] limits nothing"),
        ({"distance": [10, 1]}, "bounds.distance: min 10 is greater than max 1"),
    ],
)
def test_invalid_bounds_are_refused_naming_the_column(bounds, message):
    with pytest.raises(DataError, match="^spec.yaml: ") as raised:
        ModelSpec.from_dict(BASE | {"bounds": bounds}, origin="spec.yaml")
    assert message in str(raised.value)


def test_a_spec_file_declares_its_request_ranges(tmp_path):
    """Bounds read from a spec file (the flights spec's own: tests/reference/test_flights_config.py)."""
    from tests.unit import synthetic

    spec = ModelSpec.load(synthetic.config_files(tmp_path)["model-spec"])
    assert spec.bounds == {"rooms": (1, 5), "width": (None, 100)}
