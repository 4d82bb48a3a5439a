"""Task types: what a model predicts, and everything that follows from it.

A model spec declares its ``task``:

- ``binary``: a 0/1 label (``true``/``false`` accepted); the model has ``predict_proba`` and the positive class
  is 1. Scored as ``prediction`` (0/1) and ``probability`` (of class 1) at the spec's threshold.
- ``multiclass``: a label among two or more classes (integers or strings, as trained); the model has
  ``predict_proba`` and ``classes_``. Scored as ``prediction`` (the most probable class) and one
  ``probability_<class>`` column per class, in the order of the model's ``classes_``.
- ``regression``: a numeric target; the model has ``predict`` and is not a classifier. Scored as ``prediction``.

Each task names its metrics with a direction (:attr:`Metric.higher_is_better`): the gate, the decay rules and the
model card compare through it, so a lower RMSE is an improvement as a higher ROC-AUC is.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from mlops_ops.core.errors import DataError, MlopsError, required

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

TaskType = Literal["binary", "multiclass", "regression"]
TASK_TYPES: tuple[TaskType, ...] = ("binary", "multiclass", "regression")

#: Prefix of a multiclass model's per-class probability columns and per-class recall metrics.
PROBABILITY_PREFIX = "probability_"
RECALL_PREFIX = "recall_"

#: How many offending values an error message quotes (each clipped), so a bad column is named, not dumped.
QUOTED_VALUES = 3
QUOTED_LENGTH = 40


class TaskMismatchError(MlopsError, TypeError):
    """The estimator or the fitted model does not do the task the model spec declares; retrying will not help."""


@dataclass(frozen=True)
class Metric:
    """A metric a task measures, with the direction that makes it better."""

    name: str
    higher_is_better: bool
    description: str


def _quote(values: Sequence[Any]) -> str:
    """A few values for an error message, each clipped: the problem is named, the data is not echoed."""
    shown = [repr(value)[:QUOTED_LENGTH] for value in list(values)[:QUOTED_VALUES]]
    return "[" + ", ".join(shown) + (", ..." if len(values) > QUOTED_VALUES else "") + "]"


@dataclass(frozen=True)
class Predictions:
    """A model's predictions for some rows, in the shape its task gives them.

    :param label: the decision per row: 0/1 (binary), a class (multiclass) or the predicted value (regression).
    :param probabilities: binary: the probability of class 1 per row; multiclass: one row of class
        probabilities per row, columns in the order of ``classes``; regression: ``None``.
    :param classes: the model's classes (classification), ``None`` for regression.
    """

    task: TaskType
    label: np.ndarray
    probabilities: np.ndarray | None = None
    classes: tuple[Any, ...] | None = None

    @property
    def drift_value(self) -> np.ndarray:
        """The per-row value whose distribution the drift check compares: the probability of class 1 (binary),
        the predicted class (multiclass), the predicted value (regression)."""
        if self.task == "binary":
            return required(self.probabilities, "a binary prediction's probabilities")
        return self.label

    def columns(self) -> dict[str, np.ndarray]:
        """The output columns batch scoring writes, by name, in order (see :func:`output_columns`)."""
        if self.task == "binary":
            return {"prediction": self.label, "probability": required(self.probabilities, "probabilities")}
        if self.task == "multiclass":
            probabilities = required(self.probabilities, "a multiclass prediction's probabilities")
            columns = {"prediction": self.label}
            for index, name in enumerate(probability_columns(required(self.classes, "the classes"))):
                columns[name] = probabilities[:, index]
            return columns
        return {"prediction": self.label}


def probability_columns(classes: Sequence[Any]) -> list[str]:
    """The per-class probability column names of a multiclass model, ``probability_<class>``."""
    return [f"{PROBABILITY_PREFIX}{value}" for value in classes]


def recall_metric(value: Any) -> str:
    """The per-class recall metric of class ``value``: ``recall_<class>``, with the characters MLflow refuses in a
    metric name (anything but letters, digits, ``_ - . /`` and space) replaced by ``_``."""
    return RECALL_PREFIX + re.sub(r"[^A-Za-z0-9_\-. /]", "_", str(value))


def output_columns(task: TaskType, classes: Sequence[Any] | None = None) -> list[str]:
    """The prediction columns batch scoring writes for ``task``, in order."""
    if task == "binary":
        return ["prediction", "probability"]
    if task == "multiclass":
        if not classes:
            raise DataError("a multiclass model's output columns need its classes")
        return ["prediction", *probability_columns(classes)]
    return ["prediction"]


class Task(ABC):
    """What a task type needs: its target, its estimator check, its predictions and its metrics."""

    name: ClassVar[TaskType]
    #: Metrics measured on labelled rows that only describe them (no direction; never a gate or decay key).
    descriptive: ClassVar[frozenset[str]] = frozenset({"rows"})

    @abstractmethod
    def metrics(self, classes: Sequence[Any] | None = None) -> dict[str, Metric]:
        """The metrics with a direction this task measures (per-class ones need ``classes``)."""

    def metric_names(self, classes: Sequence[Any] | None = None) -> list[str]:
        """The names of :meth:`metrics`, sorted."""
        return sorted(self.metrics(classes))

    def direction(self, metric: str) -> Metric:
        """The metric named ``metric``, or :class:`DataError` naming those this task has."""
        known = self.metrics()
        if metric in known:
            return known[metric]
        per_class = self._per_class_metric(metric)
        if per_class is not None:
            return per_class
        raise DataError(
            f"metric {metric!r} is not one of a {self.name} model's metrics; available: {self.available()}"
        )

    def available(self) -> str:
        """The metric keys this task accepts in a gate policy or decay rule, in words."""
        return ", ".join(self.metric_names())

    def _per_class_metric(self, metric: str) -> Metric | None:
        return None

    def lower_is_better(self, metric: str) -> bool:
        """Whether a lower value of ``metric`` is better (:class:`DataError` for a key this task lacks)."""
        return not self.direction(metric).higher_is_better

    def check_metric_keys(self, keys: Mapping[str, Any] | Sequence[str], origin: str) -> None:
        """Refuse, naming ``origin`` and the available keys, any metric key this task does not measure."""
        unknown = [key for key in keys if key not in self.metrics() and self._per_class_metric(key) is None]
        if unknown:
            raise DataError(
                f"{origin}: metric key(s) {sorted(unknown)} are not measured for a {self.name} model; "
                f"available: {self.available()}"
            )

    @abstractmethod
    def target(self, values: pd.Series, column: str) -> pd.Series:
        """The labelled target values as the estimator is fitted on them.

        :raises DataError: naming ``column`` and a few offending values when they cannot be this task's target.
        """

    @abstractmethod
    def check_estimator(self, estimator: Any, where: str) -> None:
        """Refuse an unfitted estimator of another task (:class:`TaskMismatchError`)."""

    @abstractmethod
    def check_model(self, model: Any, where: str) -> None:
        """Refuse a fitted model of another task, or one that cannot predict this task
        (:class:`TaskMismatchError`); ``where`` begins the message, e.g. ``"model 'churn' is"``."""

    @abstractmethod
    def predict(self, model: Any, inputs: pd.DataFrame, threshold: float = 0.5) -> Predictions:
        """The model's predictions for ``inputs``."""

    @abstractmethod
    def evaluate(self, labels: Any, predictions: Predictions) -> dict[str, float]:
        """The task's metrics (and descriptive counts) of ``predictions`` against ``labels``.

        NaN where a metric is undefined on these rows (ROC-AUC on one class, MAPE with a zero target).
        """


def _is_classifier(model: Any) -> bool:
    from sklearn.base import is_classifier

    try:
        return bool(is_classifier(model))
    except Exception:  # an object outside scikit-learn's conventions: judged by its methods below
        return hasattr(model, "predict_proba")


def _is_regressor(model: Any) -> bool:
    from sklearn.base import is_regressor

    try:
        return bool(is_regressor(model))
    except Exception:
        return False


class _Classification(Task):
    def check_estimator(self, estimator: Any, where: str) -> None:
        if _is_regressor(estimator):
            raise TaskMismatchError(
                f"{where}: {type(_last_step(estimator)).__name__} is a regressor but the model spec declares "
                f"task {self.name!r}; use a classifier or declare task: regression"
            )

    def check_model(self, model: Any, where: str) -> None:
        kind = type(_last_step(model)).__name__
        if _is_regressor(model) or not hasattr(model, "predict_proba"):
            raise TaskMismatchError(
                f"{where} {kind}, which has no predict_proba: a {self.name} model needs one "
                "(use a classifier, or declare task: regression)"
            )
        classes = getattr(model, "classes_", None)
        self._check_classes(None if classes is None else list(classes), f"{where} {kind}")

    @abstractmethod
    def _check_classes(self, classes: list[Any] | None, where: str) -> None:
        """Refuse classes this task cannot predict (``None``: the model has no ``classes_``)."""


class BinaryTask(_Classification):
    """A 0/1 label; the probability of class 1 decides at a threshold."""

    name: ClassVar[TaskType] = "binary"
    descriptive = frozenset({"rows", "positive_rate"})

    def metrics(self, classes: Sequence[Any] | None = None) -> dict[str, Metric]:
        return {
            metric.name: metric
            for metric in (
                Metric("roc_auc", True, "area under the ROC curve of the probability of class 1"),
                Metric("log_loss", False, "cross-entropy of the probabilities"),
                Metric("brier_score", False, "mean squared error of the probability of class 1"),
                Metric("accuracy", True, "share of rows decided right at the threshold"),
                Metric("precision", True, "share of positive decisions that were positive"),
                Metric("recall", True, "share of positives decided positive"),
                Metric("f1", True, "harmonic mean of precision and recall"),
            )
        }

    def target(self, values: pd.Series, column: str) -> pd.Series:
        import pandas as pd

        if pd.api.types.is_bool_dtype(values):
            return values.astype("int64")
        numbers = pd.to_numeric(values, errors="coerce")
        bad = values[numbers.isna() | ~numbers.isin([0, 1])]
        if len(bad):
            raise DataError(
                f"the binary target {column!r} holds {len(bad)} value(s) other than 0/1, e.g. "
                f"{_quote(bad.unique())}; declare task: multiclass (or regression) for such a target"
            )
        return numbers.astype("int64")

    def _check_classes(self, classes: list[Any] | None, where: str) -> None:
        # A model without classes_ (a hand-written one) is taken at its word: column 1 is class 1.
        if classes is None:
            return
        if len(classes) != 2 or {int(value) if _is_number(value) else value for value in classes} != {0, 1}:
            raise TaskMismatchError(
                f"{where}, whose classes are {_quote(classes)}: a binary model predicts classes 0 and 1 "
                "(declare task: multiclass for other classes)"
            )

    def predict(self, model: Any, inputs: pd.DataFrame, threshold: float = 0.5) -> Predictions:
        import numpy as np

        probability = np.asarray(model.predict_proba(inputs)[:, 1], dtype="float64")
        return Predictions("binary", (probability >= threshold).astype("int8"), probability, (0, 1))

    def evaluate(self, labels: Any, predictions: Predictions) -> dict[str, float]:
        probabilities = required(predictions.probabilities, "a binary prediction's probabilities")
        return classification_metrics(labels, probabilities, predicted=predictions.label)


def _is_number(value: Any) -> bool:
    import numbers

    return isinstance(value, numbers.Number) and not isinstance(value, bool)


class MulticlassTask(_Classification):
    """A label among two or more classes; the most probable class is the decision."""

    name: ClassVar[TaskType] = "multiclass"

    def metrics(self, classes: Sequence[Any] | None = None) -> dict[str, Metric]:
        metrics = [
            Metric("accuracy", True, "share of rows given their class"),
            Metric("f1_macro", True, "F1 averaged over the classes, each counting the same"),
            Metric("f1_weighted", True, "F1 averaged over the classes, weighted by their rows"),
            Metric("log_loss", False, "cross-entropy of the class probabilities"),
        ]
        metrics += [
            Metric(recall_metric(value), True, f"share of rows of class {value} given it")
            for value in classes or ()
        ]
        return {metric.name: metric for metric in metrics}

    def available(self) -> str:
        return ", ".join(self.metric_names()) + f", {RECALL_PREFIX}<class>"

    def _per_class_metric(self, metric: str) -> Metric | None:
        if metric.startswith(RECALL_PREFIX) and len(metric) > len(RECALL_PREFIX):
            value = metric[len(RECALL_PREFIX) :]
            return Metric(metric, True, f"share of rows of class {value} given it")
        return None

    def target(self, values: pd.Series, column: str) -> pd.Series:
        import pandas as pd

        if pd.api.types.is_bool_dtype(values):
            return values.astype("int64")
        if pd.api.types.is_numeric_dtype(values):
            fractional = values[values != values.round()]
            if len(fractional):
                raise DataError(
                    f"the multiclass target {column!r} holds {len(fractional)} non-integer number(s), e.g. "
                    f"{_quote(fractional.unique())}; classes are integers or strings (declare task: regression "
                    "for a numeric target)"
                )
            return values.astype("int64")
        kinds = {type(value).__name__ for value in values}
        if kinds != {"str"}:
            raise DataError(
                f"the multiclass target {column!r} mixes value types {sorted(kinds)}; classes are all integers "
                "or all strings"
            )
        return values.astype(object)

    def _check_classes(self, classes: list[Any] | None, where: str) -> None:
        if classes is None:
            raise TaskMismatchError(
                f"{where}, which has no classes_: a multiclass model names its classes (is it fitted?)"
            )
        if len(classes) < 2:
            raise TaskMismatchError(
                f"{where}, which knows {len(classes)} class: multiclass needs two or more"
            )

    def predict(self, model: Any, inputs: pd.DataFrame, threshold: float = 0.5) -> Predictions:
        import numpy as np

        probabilities = np.asarray(model.predict_proba(inputs), dtype="float64")
        classes = tuple(plain_value(value) for value in model.classes_)
        label = np.asarray(model.classes_)[probabilities.argmax(axis=1)]
        return Predictions("multiclass", label, probabilities, classes)

    def evaluate(self, labels: Any, predictions: Predictions) -> dict[str, float]:
        import numpy as np
        from sklearn import metrics

        classes = list(required(predictions.classes, "a multiclass prediction's classes"))
        labels = np.asarray(labels)
        unseen = sorted({plain_value(value) for value in labels} - set(classes), key=str)
        if unseen:
            raise DataError(
                f"the labels hold class(es) {_quote(unseen)} that the model was not trained on "
                f"(it knows {_quote(classes)})"
            )
        probabilities = np.clip(required(predictions.probabilities, "class probabilities"), 1e-15, 1.0)
        probabilities = probabilities / probabilities.sum(axis=1, keepdims=True)
        recall = metrics.recall_score(
            labels, predictions.label, labels=classes, average=None, zero_division=np.nan
        )
        values = {
            "accuracy": float(metrics.accuracy_score(labels, predictions.label)),
            # A class with no row and no decision has no F1: left out of the average (zero_division=nan), not
            # counted as 0, which would pull a small interval's figure down for a class it never saw.
            "f1_macro": float(
                metrics.f1_score(
                    labels, predictions.label, labels=classes, average="macro", zero_division=np.nan
                )
            ),
            "f1_weighted": float(
                metrics.f1_score(
                    labels, predictions.label, labels=classes, average="weighted", zero_division=np.nan
                )
            ),
            "log_loss": float(metrics.log_loss(labels, probabilities, labels=classes)),
            "rows": float(len(labels)),
        }
        for value, class_recall in zip(classes, recall, strict=True):
            values[recall_metric(value)] = float(class_recall)
        return values


class RegressionTask(Task):
    """A numeric target; the predicted value is the decision."""

    name: ClassVar[TaskType] = "regression"
    descriptive = frozenset({"rows", "mean_target", "mean_prediction"})

    def metrics(self, classes: Sequence[Any] | None = None) -> dict[str, Metric]:
        return {
            metric.name: metric
            for metric in (
                Metric("rmse", False, "root mean squared error"),
                Metric("mae", False, "mean absolute error"),
                Metric("r2", True, "coefficient of determination"),
                Metric("mape", False, "mean absolute percentage error (undefined when a target is 0)"),
            )
        }

    def target(self, values: pd.Series, column: str) -> pd.Series:
        import pandas as pd

        if pd.api.types.is_bool_dtype(values):
            raise DataError(f"the regression target {column!r} holds true/false values; declare task: binary")
        numbers = pd.to_numeric(values, errors="coerce")
        text = values[numbers.isna()]
        if len(text):
            raise DataError(
                f"the regression target {column!r} holds {len(text)} non-numeric value(s), e.g. "
                f"{_quote(text.unique())}"
            )
        infinite = numbers[~numbers.map(math.isfinite)]
        if len(infinite):
            raise DataError(f"the regression target {column!r} holds {len(infinite)} infinite value(s)")
        return numbers.astype("float64")

    def check_estimator(self, estimator: Any, where: str) -> None:
        if _is_classifier(estimator):
            raise TaskMismatchError(
                f"{where}: {type(_last_step(estimator)).__name__} is a classifier but the model spec declares "
                "task 'regression'; use a regressor or declare task: binary or multiclass"
            )

    def check_model(self, model: Any, where: str) -> None:
        kind = type(_last_step(model)).__name__
        if _is_classifier(model) or getattr(model, "classes_", None) is not None:
            raise TaskMismatchError(
                f"{where} {kind}, a classifier, but the model spec declares task 'regression' "
                "(use a regressor, or declare task: binary or multiclass)"
            )
        if not hasattr(model, "predict"):
            raise TaskMismatchError(f"{where} {kind}, which has no predict: a regression model needs one")

    def predict(self, model: Any, inputs: pd.DataFrame, threshold: float = 0.5) -> Predictions:
        import numpy as np

        return Predictions("regression", np.asarray(model.predict(inputs), dtype="float64").reshape(-1))

    def evaluate(self, labels: Any, predictions: Predictions) -> dict[str, float]:
        import numpy as np
        from sklearn import metrics

        labels = np.asarray(labels, dtype="float64")
        predicted = np.asarray(predictions.label, dtype="float64")
        if not np.isfinite(predicted).all():
            raise DataError(f"{int((~np.isfinite(predicted)).sum())} prediction(s) are NaN or infinite")
        defined = len(labels) > 1 and float(np.var(labels)) > 0
        return {
            "rmse": float(np.sqrt(metrics.mean_squared_error(labels, predicted))),
            "mae": float(metrics.mean_absolute_error(labels, predicted)),
            "r2": float(metrics.r2_score(labels, predicted)) if defined else float("nan"),
            "mape": (
                float(metrics.mean_absolute_percentage_error(labels, predicted))
                if (labels != 0).all()
                else float("nan")
            ),
            "rows": float(len(labels)),
            "mean_target": float(labels.mean()),
            "mean_prediction": float(predicted.mean()),
        }


def classification_metrics(
    labels: Any, probabilities: Any, threshold: float = 0.5, predicted: Any = None
) -> dict[str, float]:
    """A binary model's ROC-AUC, log loss, Brier score, accuracy, precision, recall and F1 at ``threshold``.

    :param predicted: the 0/1 decisions already made (batch scoring's ``prediction`` column), when they must be
        judged as they were made; default ``probabilities >= threshold``.
    """
    import numpy as np
    from sklearn import metrics

    labels = np.asarray(labels, dtype="int64")
    probabilities = np.clip(np.asarray(probabilities, dtype="float64"), 1e-15, 1 - 1e-15)
    if predicted is None:
        predicted = (probabilities >= threshold).astype("int64")
    else:
        predicted = np.asarray(predicted, dtype="int64")
    two_classes = len(np.unique(labels)) == 2
    return {
        "roc_auc": float(metrics.roc_auc_score(labels, probabilities)) if two_classes else float("nan"),
        "log_loss": float(metrics.log_loss(labels, probabilities, labels=[0, 1])),
        "brier_score": float(metrics.brier_score_loss(labels, probabilities)),
        "accuracy": float(metrics.accuracy_score(labels, predicted)),
        "precision": float(metrics.precision_score(labels, predicted, zero_division=0)),
        "recall": float(metrics.recall_score(labels, predicted, zero_division=0)),
        "f1": float(metrics.f1_score(labels, predicted, zero_division=0)),
        "positive_rate": float(labels.mean()),
        "rows": float(len(labels)),
    }


def plain_value(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (``np.int64(2)`` -> ``2``, ``np.str_("a")`` -> ``"a"``), so that
    classes compare and serialise as they were written."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def _last_step(model: Any) -> Any:
    """The estimator at the end of a pipeline (what its errors should name), or the model itself."""
    steps = getattr(model, "steps", None)
    return steps[-1][1] if steps else model


TASKS: dict[str, Task] = {task.name: task for task in (BinaryTask(), MulticlassTask(), RegressionTask())}


def get_task(name: str, origin: str = "model spec") -> Task:
    """The task named ``name``, or :class:`DataError` naming the supported ones."""
    if name not in TASKS:
        raise DataError(
            f"{origin}: task must be one of {list(TASK_TYPES)}, got {str(name)[:QUOTED_LENGTH]!r}"
        )
    return TASKS[name]


def infer_task(model: Any) -> Task:
    """The task a fitted model does, from the model alone (for a consumer without the model spec): a classifier
    of classes 0 and 1 is binary, another classifier multiclass, anything else with ``predict`` regression."""
    classes = getattr(model, "classes_", None)
    if classes is not None and hasattr(model, "predict_proba"):
        plain = {plain_value(value) for value in classes}
        return TASKS["binary"] if len(plain) == 2 and plain == {0, 1} else TASKS["multiclass"]
    return TASKS["regression"]


def lower_is_better(metric: str) -> bool:
    """Whether a lower value of ``metric`` is better, whichever task measures it (a metric no task measures,
    e.g. a custom one, counts as higher-is-better)."""
    for task in TASKS.values():
        known = task.metrics().get(metric) or task._per_class_metric(metric)
        if known is not None:
            return not known.higher_is_better
    return False
