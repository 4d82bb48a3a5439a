"""Live performance of a model once its labels arrive, per task, and the decay rule that requests a retrain.

A batch-scored interval is joined on its key columns with the labels that landed since; rows without a label
yet are counted (coverage) and left out. The labelled rows give the metrics of the model's task
(:mod:`mlops_ops.core.tasks`; the decisions as batch scoring made them), a business cost (binary: missed
positives against false alarms; multiclass: misclassified rows; regression: units of error under and over the
label, with configured costs) and a :class:`DecayVerdict` against a :class:`DecayRule`: floors, ceilings, and
the largest allowed worsening from the metrics the model scored on its held-out rows at training time.

Bad input never yields a "healthy" verdict: no joined row, no label at all, probabilities outside [0, 1], a
label of a class the model was not trained on, a text label of a regression model, arrays of different lengths
raise :class:`~mlops_ops.core.errors.DataError`; a check that cannot be evaluated (ROC-AUC of an interval
holding one class only, R² of equal targets) makes the verdict ``inconclusive``, not healthy.

The package's seams: :mod:`.metrics`, :mod:`.costs`, :mod:`.decay`, :mod:`.labels`, and :mod:`.interval` (the
whole measurement of one interval).
"""

from __future__ import annotations

from mlops_ops.core.performance.costs import (
    COST_FIELDS,
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
    check_prediction_columns,
    interval_step,
    join_labels,
    read_labels,
    read_predictions,
    scored_task,
)
from mlops_ops.core.performance.metrics import (
    COST_METRIC,
    TRAINING_PREFIX,
    ClassConfusion,
    ConfusionCounts,
    IntervalPerformance,
    evaluate_interval,
    live_metrics,
    lower_is_better,
    metric_name_part,
    observed_class_shares,
)

__all__ = [
    "MeasuredInterval",
    "measure_interval",
    "scored_version",
    "BusinessCost",
    "BusinessCosts",
    "COST_FIELDS",
    "COST_METRIC",
    "ClassConfusion",
    "ConfusionCounts",
    "DecayCheck",
    "DecayRule",
    "DecayVerdict",
    "IntervalPerformance",
    "Status",
    "TRAINING_PREFIX",
    "check_prediction_columns",
    "evaluate_interval",
    "interval_step",
    "join_labels",
    "metric_name_part",
    "live_metrics",
    "lower_is_better",
    "observed_class_shares",
    "read_labels",
    "read_predictions",
    "scored_task",
]
