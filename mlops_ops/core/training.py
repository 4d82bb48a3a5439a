"""Training and evaluation of a model from a :class:`ModelSpec`, deterministic for a given seed, for any of the
spec's task types (:mod:`mlops_ops.core.tasks`)."""

from __future__ import annotations

import hashlib
import inspect
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops_ops.core.errors import DataError
from mlops_ops.core.modelspec import ModelSpec, load_callable
from mlops_ops.core.tasks import TASKS, Predictions, classification_metrics

if TYPE_CHECKING:
    import pandas as pd

#: Metrics where a lower value is better, of every task; the others are higher-is-better.
LOWER_IS_BETTER = frozenset(
    metric.name
    for task in TASKS.values()
    for metric in task.metrics().values()
    if not metric.higher_is_better
)

__all__ = ["LOWER_IS_BETTER", "PreparedData", "classification_metrics", "evaluate", "fit", "predict", "split"]


@dataclass(frozen=True)
class PreparedData:
    """Rows ready to train on, split in time, with the counts a reviewer wants to see."""

    train: pd.DataFrame
    evaluation: pd.DataFrame
    split_time: str | None
    rows_in: int
    rows_unlabelled: int

    def summary(self) -> dict[str, Any]:
        """JSON-safe counts of the split."""
        return {
            "rows_in": self.rows_in,
            "rows_unlabelled": self.rows_unlabelled,
            "rows_train": len(self.train),
            "rows_evaluation": len(self.evaluation),
            "split_time": self.split_time,
        }


def check_columns(frame: pd.DataFrame, spec: ModelSpec, *, with_target: bool) -> None:
    """Raise :class:`DataError` naming every column the spec needs that ``frame`` lacks."""
    needed = spec.features + ([spec.target] if with_target else [])
    missing = [column for column in needed if column not in frame.columns]
    if missing:
        raise DataError(f"missing column(s) {missing} needed by model {spec.name!r}")


def prepare(raw: pd.DataFrame, spec: ModelSpec) -> pd.DataFrame:
    """Apply the spec's ``prepare`` function (if any) and check the needed columns exist.

    :raises DataError: when a column is missing, also when ``prepare`` fails looking up a raw column.
    """
    if not spec.prepare:
        frame = raw
    else:
        try:
            frame = load_callable(spec.prepare)(raw)
        except KeyError as err:
            # pandas' KeyError for a missing column says only "'carrier'": name the function and the data.
            raise DataError(f"{spec.prepare} needs column {err} that the data lacks") from err
    check_columns(frame, spec, with_target=False)
    return frame


def split(frame: pd.DataFrame, spec: ModelSpec) -> PreparedData:
    """Drop unlabelled rows, then hold out the latest ``holdout.fraction`` of the time range.

    Splitting on time, not at random, measures what serving does: predict the future from the past.
    Without a time column the last rows (in file order) are held out.
    """
    check_columns(frame, spec, with_target=True)
    labelled = frame[frame[spec.target].notna()]
    unlabelled = len(frame) - len(labelled)
    if labelled.empty:
        raise DataError(f"no labelled rows: every value of {spec.target!r} is missing")
    # Checked here, before anything is trained; converted where it is fitted and scored (the held-out rows are
    # saved for the gate as they came).
    spec.prediction_task.target(labelled[spec.target], spec.target)
    fraction = float(spec.holdout.get("fraction", 0.2))
    time_column = spec.holdout.get("time_column")
    if time_column:
        if time_column not in labelled:
            raise DataError(f"holdout time column {time_column!r} is missing")
        ordered = labelled.sort_values(time_column, kind="stable")
        split_time = ordered[time_column].quantile(1 - fraction, interpolation="nearest")
        train = ordered[ordered[time_column] < split_time]
        evaluation = ordered[ordered[time_column] >= split_time]
        split_label = str(split_time)
    else:
        cut = int(round(len(labelled) * (1 - fraction)))
        train, evaluation, split_label = labelled.iloc[:cut], labelled.iloc[cut:], None
    if train.empty or evaluation.empty:
        raise DataError(
            f"the time split leaves {len(train)} training and {len(evaluation)} evaluation rows: "
            "the data version covers too short a period"
        )
    for name, part in (("training", train), ("evaluation", evaluation)):
        if part[spec.target].nunique() < 2:
            what = "value" if spec.task == "regression" else "class"
            raise DataError(f"the {name} rows hold a single {what} of {spec.target!r}: cannot train or score")
    if spec.task == "multiclass":
        unseen = sorted(set(evaluation[spec.target]) - set(train[spec.target]), key=str)
        if unseen:
            raise DataError(
                f"the evaluation rows hold class(es) {[str(value)[:40] for value in unseen[:5]]} of "
                f"{spec.target!r} that no training row has: the model could not predict them"
            )
    return PreparedData(
        train=train.reset_index(drop=True),
        evaluation=evaluation.reset_index(drop=True),
        split_time=split_label,
        rows_in=len(frame),
        rows_unlabelled=unlabelled,
    )


def build_estimator(spec: ModelSpec, params: dict[str, Any], seed: int) -> Any:
    """A scikit-learn pipeline: categorical columns ordinal-encoded (unknown -> missing), then the estimator.

    Categories are encoded inside the pipeline, so the logged model takes the raw feature columns and scoring
    cannot drift from training.
    """
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    estimator_class = load_callable(spec.estimator)
    arguments = dict(params)
    accepted = inspect.signature(estimator_class).parameters
    if "random_state" in accepted:
        arguments.setdefault("random_state", seed)
    if "categorical_features" in accepted and spec.categorical_features:
        arguments.setdefault("categorical_features", list(range(len(spec.categorical_features))))
    encoder = OrdinalEncoder(
        handle_unknown="use_encoded_value",
        unknown_value=np.nan,
        encoded_missing_value=np.nan,
        dtype=np.float64,
    )
    preprocessing = ColumnTransformer(
        [("categorical", encoder, list(spec.categorical_features))],
        remainder="passthrough",
        verbose_feature_names_out=False,
    )
    model = estimator_class(**arguments)
    if spec.task == "multiclass" and not estimator_class.__module__.startswith("sklearn."):
        # Other libraries' wrappers may take only the labels 0..k-1 (XGBoost's): fitted on class indices, the
        # model still answers in the team's classes.
        from mlops_ops.core.estimators import EncodedLabelClassifier

        model = EncodedLabelClassifier(model)
    return Pipeline([("preprocessing", preprocessing), ("model", model)])


def features_frame(frame: pd.DataFrame, spec: ModelSpec, columns: list[str] | None = None) -> pd.DataFrame:
    """The model's input columns: categoricals as plain strings (object), the others as float64.

    Floats, not ints, in the logged signature: MLflow's schema check would reject a scoring row whose
    integer feature is missing, which a float column represents as NaN.

    :param columns: the input columns when they differ from the spec's features (an older model's signature).
    """
    columns = columns or spec.features
    missing = [column for column in columns if column not in frame]
    if missing:
        raise DataError(f"the rows lack column(s) {missing} that the model needs")
    inputs = frame[columns].copy()
    for column in columns:
        if column in spec.categorical_features:
            inputs[column] = inputs[column].astype(object).where(inputs[column].notna(), None)
        else:
            try:
                inputs[column] = inputs[column].astype("float64")
            except (TypeError, ValueError) as err:
                raise DataError(f"numerical feature {column!r} holds non-numeric values ({err})") from err
    return inputs


def fit(
    spec: ModelSpec,
    train: pd.DataFrame,
    *,
    params: dict[str, Any],
    seed: int,
    device: str = "cpu",
    training_function: str | None = None,
) -> Any:
    """Fit a model on ``train``.

    With ``training_function`` (``"module:function"``) the user's function trains: it is called as
    ``function(train_frame, spec=spec, params=params, seed=seed, device=device)``, where ``train_frame`` holds the
    prepared training rows (the spec's features and its target, already in the task's form: 0/1 integers,
    classes, or floats), and must return a fitted scikit-learn API model that takes the feature columns as a
    pandas frame (see :func:`features_frame`): ``predict_proba`` and ``classes_`` for a classification task,
    ``predict`` for regression. Otherwise the spec's estimator is fitted in :func:`build_estimator`'s pipeline.

    :raises TaskMismatchError: when the estimator, or what the training function returned, does not do the spec's
        task (a regressor for a classification spec, a classifier of other classes than 0/1 for ``binary``...).
    """
    task = spec.prediction_task
    target = task.target(train[spec.target], spec.target)
    if training_function:
        model = load_callable(training_function)(train, spec=spec, params=params, seed=seed, device=device)
        task.check_model(model, f"{training_function} returned")
        return model
    estimator = build_estimator(spec, params, seed)
    task.check_estimator(estimator, f"model {spec.name!r}")
    estimator.fit(features_frame(train, spec), target)
    task.check_model(estimator, f"model {spec.name!r} is")
    return estimator


def positive_probability(model: Any, inputs: pd.DataFrame) -> Any:
    """Probability of the positive class for each row (a binary model)."""
    return model.predict_proba(inputs)[:, 1]


def predict(model: Any, inputs: pd.DataFrame, spec: ModelSpec, threshold: float = 0.5) -> Predictions:
    """The model's predictions for ``inputs`` in the shape of the spec's task."""
    return spec.prediction_task.predict(model, inputs, threshold)


def evaluate(
    model: Any, frame: pd.DataFrame, spec: ModelSpec, input_columns: list[str] | None = None
) -> dict[str, float]:
    """The spec's task's metrics of ``model`` on the labelled rows of ``frame``
    (:meth:`~mlops_ops.core.tasks.Task.evaluate`).

    :param input_columns: the columns the model was trained on (from its signature), when they differ from
        the spec's current features; a champion trained on other columns is scored on its own inputs.
    """
    task = spec.prediction_task
    task.check_model(model, f"model {spec.name!r} is")
    labelled = frame[frame[spec.target].notna()]
    inputs = features_frame(labelled, spec, input_columns)
    return task.evaluate(task.target(labelled[spec.target], spec.target), task.predict(model, inputs))


def training_key(
    data_fingerprint: str,
    spec: ModelSpec,
    params: dict[str, Any],
    seed: int,
    code_revision: str,
    *,
    training_function: str | None = None,
    libraries: dict[str, str] | None = None,
    device: str = "cpu",
    feature_set: str | None = None,
) -> str:
    """Identity of a training: everything that decides the model it makes.

    The same key means the same model: same data, spec, params, seed, training function, code revision,
    library versions, device and, when the model reads a feature store, the training set's content.

    :param feature_set: the fingerprint of the point-in-time training set trained on, if any.
    """
    identity: dict[str, Any] = {"feature_set": feature_set} if feature_set else {}
    payload = json.dumps(
        {
            **identity,
            "data": data_fingerprint,
            "spec": spec.to_dict(),
            "params": params,
            "seed": seed,
            "code": code_revision,
            "training_function": training_function,
            "libraries": libraries or {},
            "device": device,
        },
        sort_keys=True,
        default=str,
    )
    return "sha256:" + hashlib.sha256(payload.encode()).hexdigest()
