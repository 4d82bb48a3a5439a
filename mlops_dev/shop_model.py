"""A second team's synthetic binary model, shared by the stream scorer's tests and benchmark: visits of a shop
with a category, numbers, a count and a flag, and whether the visitor ``bought``. Not the flights reference
project: the scorer must serve a model it knows nothing about."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from mlops_ops.core.modelspec import ModelSpec

MODEL = "shop_conversion"
FEATURES = ["colour", "width", "rooms", "renovated"]


def shop_spec() -> ModelSpec:
    from mlops_ops.core.modelspec import ModelSpec

    return ModelSpec(
        name=MODEL,
        target="bought",
        categorical_features=("colour",),
        numerical_features=("width", "rooms", "renovated"),
    )


def shop_frame(rows: int, seed: int) -> pd.DataFrame:
    """``rows`` visits drawn with ``seed``, with the ``bought`` label."""
    import numpy as np
    import pandas as pd

    draws = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "colour": draws.choice(["red", "green", "blue"], rows),
            "width": draws.normal(10, 3, rows),
            "rooms": draws.integers(1, 6, rows).astype("float64"),
            "renovated": (draws.random(rows) < 0.4).astype("float64"),
        }
    )
    score = frame["width"] / 3 + frame["rooms"] - (frame["colour"] == "red") * 2 + frame["renovated"]
    frame["bought"] = (score + draws.normal(0, 1, rows) > 6).astype("int64")
    return frame
