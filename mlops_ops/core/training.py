"""Training and evaluation of a classifier from a :class:`ModelSpec`, deterministic for a given seed."""

from __future__ import annotations

import hashlib
import inspect
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops_ops.core.errors import DataError
from mlops_ops.core.modelspec import ModelSpec, load_callable

if TYPE_CHECKING:
    import pandas as pd

#: Metrics where a lower value is better; every other metric is higher-is-better.
LOWER_IS_BETTER = frozenset({"log_loss", "brier_score"})


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
            raise DataError(f"the {name} rows hold a single class of {spec.target!r}: cannot train or score")
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
    return Pipeline([("preprocessing", preprocessing), ("model", estimator_class(**arguments))])


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

    With ``training_function`` (``"module:function"``) the user's function trains; it is called as
    ``function(train_frame, spec=spec, params=params, seed=seed, device=device)`` and must return a fitted
    object with ``predict_proba``. Otherwise the spec's estimator is fitted in :func:`build_estimator`'s pipeline.
    """
    if training_function:
        model = load_callable(training_function)(train, spec=spec, params=params, seed=seed, device=device)
        if not hasattr(model, "predict_proba"):
            raise TypeError(
                f"{training_function} returned {type(model).__name__}, which has no predict_proba"
            )
        return model
    estimator = build_estimator(spec, params, seed)
    estimator.fit(features_frame(train, spec), train[spec.target].astype("int64"))
    return estimator


def positive_probability(model: Any, inputs: pd.DataFrame) -> Any:
    """Probability of the positive class for each row."""
    return model.predict_proba(inputs)[:, 1]


def classification_metrics(
    labels: Any, probabilities: Any, threshold: float = 0.5, predicted: Any = None
) -> dict[str, float]:
    """ROC-AUC, log loss, Brier score, accuracy, precision, recall and F1 at ``threshold``.

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


def evaluate(
    model: Any, frame: pd.DataFrame, spec: ModelSpec, input_columns: list[str] | None = None
) -> dict[str, float]:
    """Metrics of ``model`` on the labelled rows of ``frame``.

    :param input_columns: the columns the model was trained on (from its signature), when they differ from
        the spec's current features; a champion trained on other columns is scored on its own inputs.
    """
    labelled = frame[frame[spec.target].notna()]
    inputs = features_frame(labelled, spec, input_columns)
    return classification_metrics(labelled[spec.target], positive_probability(model, inputs))


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
