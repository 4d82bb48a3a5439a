"""Live performance of a binary classifier once its labels arrive, and the decay rule that requests a retrain.

A batch-scored interval is joined on its key columns with the labels that landed since; rows without a label
yet are counted (coverage) and left out. The labelled rows give the classification metrics (with the decisions
as batch scoring made them), a business cost (missed positives against false alarms, with configured costs)
and a :class:`DecayVerdict` against a :class:`DecayRule`: floors, ceilings, and the largest allowed drop from
the metrics the model scored on its held-out rows at training time.

Bad input never yields a "healthy" verdict: no joined row, no label at all, probabilities outside [0, 1],
arrays of different lengths raise :class:`~mlops_ops.core.errors.DataError`; a check that cannot be evaluated
(ROC-AUC of an interval holding one class only) makes the verdict ``inconclusive``, not healthy.

The package's seams: :mod:`.metrics`, :mod:`.costs`, :mod:`.decay`, :mod:`.labels`, and :mod:`.interval` (the
whole measurement of one interval).
"""

from __future__ import annotations

from mlops_ops.core.performance.costs import (
    BusinessCost,
    BusinessCosts,
)
from mlops_ops.core.performance.decay import (
    DecayCheck,
    DecayRule,
    DecayVerdict,
    Status,
)
from mlops_ops.core.performance.interval import (
    MeasuredInterval,
    measure_interval,
    scored_version,
)
from mlops_ops.core.performance.labels import (
    interval_step,
    join_labels,
    read_labels,
    read_predictions,
)
from mlops_ops.core.performance.metrics import (
    COST_METRIC,
    DECAY_LOWER_IS_BETTER,
    LIVE_METRICS,
    RULE_METRICS,
    TRAINED_METRICS,
    TRAINING_PREFIX,
    ConfusionCounts,
    IntervalPerformance,
    evaluate_interval,
)

__all__ = [
    "MeasuredInterval",
    "measure_interval",
    "scored_version",
    "BusinessCost",
    "BusinessCosts",
    "COST_METRIC",
    "ConfusionCounts",
    "DECAY_LOWER_IS_BETTER",
    "DecayCheck",
    "DecayRule",
    "DecayVerdict",
    "IntervalPerformance",
    "LIVE_METRICS",
    "RULE_METRICS",
    "Status",
    "TRAINED_METRICS",
    "TRAINING_PREFIX",
    "evaluate_interval",
    "interval_step",
    "join_labels",
    "read_labels",
    "read_predictions",
]
