"""A second team's synthetic binary model, shared by the stream scorer's tests and benchmark: visits of a shop
with a category, numbers, a count and a flag, and whether the visitor ``bought``. Not the flights reference
project: the scorer must serve a model it knows nothing about."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops_dev.logged_models import LoggedVersion, log_binary_classifier

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


def log_shop_model(experiment_id: str, max_iter: int, seed: int = 0) -> tuple[Any, LoggedVersion]:
    """Train the model on 3,000 visits drawn with ``seed`` (gradient boosting, ``max_iter`` iterations, as
    ``build_estimator`` makes it), log it with skops and its signature in a run of ``experiment_id``, and
    register it under :data:`MODEL` on the current MLflow registry.

    :return: the fitted model and the logged version.
    """
    from mlops_ops.core.training import build_estimator, features_frame

    spec = shop_spec()
    frame = shop_frame(3000, seed)
    inputs = features_frame(frame, spec)
    model = build_estimator(spec, {"max_iter": max_iter}, seed=0).fit(inputs, frame["bought"])
    return model, log_binary_classifier(model, inputs, experiment_id, MODEL)
