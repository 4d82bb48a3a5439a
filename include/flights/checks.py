"""Behavioural checks of the flight-delay model, run by the evaluation gate on the held-out rows.

Each check is ``check(model, evaluation_frame, spec) -> GateCheck``; the gate lists them with its metric checks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops_ops.core.gate import GateCheck
from mlops_ops.core.training import features_frame, positive_probability

if TYPE_CHECKING:
    import pandas as pd

    from mlops_ops.core.modelspec import ModelSpec

MIN_ORIGIN_AUC = 0.52
# Seasonal shift between the training months and the held-out weeks moves the delay rate by a few points;
# beyond 8 the probabilities would mislead whoever acts on them.
MAX_CALIBRATION_GAP = 0.08


def every_origin_better_than_chance(model: Any, frame: pd.DataFrame, spec: ModelSpec) -> GateCheck:
    """The model ranks delays better than chance at each of EWR, JFK and LGA, not only on average."""
    from sklearn.metrics import roc_auc_score

    scores = {}
    for origin, rows in frame.groupby("origin", observed=True):
        if rows[spec.target].nunique() == 2:
            scores[str(origin)] = roc_auc_score(
                rows[spec.target], positive_probability(model, features_frame(rows, spec))
            )
    worst = min(scores, key=scores.get)
    return GateCheck(
        "roc_auc at every origin",
        scores[worst] >= MIN_ORIGIN_AUC,
        float(scores[worst]),
        MIN_ORIGIN_AUC,
        ">=",
        "worst origin "
        + worst
        + "; "
        + ", ".join(f"{key} {value:.3f}" for key, value in sorted(scores.items())),
    )


def probabilities_are_calibrated_on_average(model: Any, frame: pd.DataFrame, spec: ModelSpec) -> GateCheck:
    """The mean predicted probability is within 8 points of the observed delay rate."""
    mean_probability = float(positive_probability(model, features_frame(frame, spec)).mean())
    observed = float(frame[spec.target].mean())
    gap = abs(mean_probability - observed)
    return GateCheck(
        "mean probability vs delay rate",
        gap <= MAX_CALIBRATION_GAP,
        gap,
        MAX_CALIBRATION_GAP,
        "<=",
        f"mean probability {mean_probability:.3f}, observed delay rate {observed:.3f}",
    )
