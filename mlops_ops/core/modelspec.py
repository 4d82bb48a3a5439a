"""The model specification: what to train, on which columns, how to hold out, with which seed."""

from __future__ import annotations

import importlib
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

from mlops_ops.core.config_files import refuse_unknown_fields
from mlops_ops.core.errors import DataError
from mlops_ops.core.tasks import Task, TaskType, get_task


def load_callable(reference: str) -> Callable[..., Any]:
    """Import ``"package.module:attribute"`` (or ``"package.module.attribute"``) and return the attribute.

    :raises ValueError: with the reference named, when it is malformed or cannot be imported.
    """
    module_name, sep, attribute = reference.partition(":")
    if not sep:
        module_name, sep, attribute = reference.rpartition(".")
    if not sep or not module_name or not attribute:
        raise ValueError(f"{reference!r} is not of the form 'package.module:function'")
    target: Any
    try:
        target = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"cannot import module {module_name!r} of {reference!r}: {err}") from err
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError as err:
            raise ValueError(f"{module_name!r} has no attribute {attribute!r} (from {reference!r})") from err
    return cast(Callable[..., Any], target)


#: The estimator a spec without ``estimator`` trains, per task.
DEFAULT_ESTIMATORS: dict[str, str] = {
    "binary": "sklearn.ensemble.HistGradientBoostingClassifier",
    "multiclass": "sklearn.ensemble.HistGradientBoostingClassifier",
    "regression": "sklearn.ensemble.HistGradientBoostingRegressor",
}


@dataclass(frozen=True)
class ModelSpec:
    """How a model is trained: estimator, features, target, holdout and seed.

    :param name: the registered model name, e.g. ``"churn"``.
    :param target: the label column (rows where it is missing are not trained on): 0/1 for ``binary``, classes
        (integers or strings) for ``multiclass``, numbers for ``regression``.
    :param categorical_features: categorical input columns.
    :param numerical_features: numerical input columns.
    :param task: what the model predicts, ``"binary"`` (default), ``"multiclass"`` or ``"regression"``
        (:mod:`mlops_ops.core.tasks`); the estimator is checked against it before training.
    :param estimator: import path of a scikit-learn API estimator of the task, e.g.
        ``"xgboost.XGBRegressor"``; default scikit-learn's histogram gradient boosting of the task
        (:data:`DEFAULT_ESTIMATORS`).
    :param params: keyword arguments of the estimator.
    :param prepare: optional ``"module:function"`` turning raw landed rows into features and target.
    :param holdout: ``{"time_column": ..., "fraction": ...}``: the latest fraction of the time range is held out.
    :param seed: random seed; the same data, params and seed give the same model.
    :param description: free text for the registry.
    :param feature_store: the Feast feature service the model reads, or ``None`` (no feature store):
        ``{"feature_service": name, "timestamp_column": column the features must be known at,
        "entity_keys": optional "module:function" adding the join keys to raw rows}``. Training reads a
        point-in-time training set of it, batch scoring joins it per chunk, ``prepare`` then sees its columns.
    :param bounds: accepted values of numeric input columns, ``{column: [min, max]}``, both ends inclusive and
        either one ``null`` for no limit on that side. A column is a raw input column (what ``prepare`` takes
        and a prediction request sends, e.g. ``distance``) or a feature. The prediction API refuses a request
        whose field is out of its column's bounds (422). Held as ``{column: (min, max)}``.
    """

    name: str
    target: str
    categorical_features: tuple[str, ...]
    numerical_features: tuple[str, ...]
    task: TaskType = "binary"
    estimator: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    prepare: str | None = None
    holdout: dict[str, Any] = field(default_factory=lambda: {"time_column": None, "fraction": 0.2})
    seed: int = 0
    description: str = ""
    feature_store: dict[str, Any] | None = None
    bounds: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.estimator:
            # A frozen dataclass sets a derived default this way; the task decides which estimator it is.
            object.__setattr__(self, "estimator", DEFAULT_ESTIMATORS[self.task])

    @property
    def prediction_task(self) -> Task:
        """The rules of the spec's ``task``: its target, estimator check, predictions and metrics."""
        return get_task(self.task)

    @property
    def features(self) -> list[str]:
        """All input columns, categorical first, in the order the model sees them."""
        return [*self.categorical_features, *self.numerical_features]

    @classmethod
    def from_dict(cls, values: dict[str, Any], origin: str = "model spec") -> ModelSpec:
        """Build from a mapping (a parsed YAML file), naming ``origin`` and the field in any error."""
        refuse_unknown_fields(cls, values, origin)
        for required in ("name", "target", "categorical_features", "numerical_features"):
            if required not in values:
                raise DataError(f"{origin}: missing required field {required!r}")
        feature_store = values.get("feature_store") or None
        if feature_store is not None:
            feature_store = _check_feature_store(feature_store, origin)
        get_task(values.get("task", "binary"), origin)
        fraction = float((values.get("holdout") or {}).get("fraction", 0.2))
        if not 0 < fraction < 1:
            raise DataError(f"{origin}: holdout.fraction must be between 0 and 1, got {fraction}")
        return cls(
            **{
                **values,
                "categorical_features": tuple(values["categorical_features"] or ()),
                "numerical_features": tuple(values["numerical_features"] or ()),
                "params": dict(values.get("params") or {}),
                "holdout": {"time_column": None, "fraction": 0.2, **(values.get("holdout") or {})},
                "seed": int(values.get("seed", 0)),
                "feature_store": feature_store,
                "bounds": _check_bounds(values.get("bounds"), origin),
            }
        )

    @classmethod
    def load(cls, source: str | Path | dict[str, Any] | ModelSpec) -> ModelSpec:
        """A spec from a YAML/JSON file path, a mapping, or a spec (returned as is)."""
        if isinstance(source, ModelSpec):
            return source
        if isinstance(source, dict):
            return cls.from_dict(source)
        import yaml

        path = Path(source)
        try:
            values = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as err:
            raise DataError(f"{path}: cannot read the model spec: {err}") from err
        if not isinstance(values, dict):
            raise DataError(f"{path}: a model spec must be a mapping")
        return cls.from_dict(values, origin=str(path))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form of the spec."""
        values = asdict(self)
        values["categorical_features"] = list(self.categorical_features)
        values["numerical_features"] = list(self.numerical_features)
        if not self.bounds:
            # Left out when empty, so that a spec without bounds keeps the form (and the training key, which
            # hashes this form) it had before bounds existed.
            del values["bounds"]
        if self.task == "binary":
            del values["task"]  # likewise: a binary spec keeps the form it had before tasks existed
        form: dict[str, Any] = json.loads(json.dumps(values, default=str))
        return form


FEATURE_STORE_FIELDS = ("feature_service", "timestamp_column", "entity_keys")


def _check_feature_store(values: Any, origin: str) -> dict[str, Any]:
    """The ``feature_store`` section with its defaults, or :class:`DataError` naming what is wrong."""
    if not isinstance(values, dict):
        raise DataError(f"{origin}: feature_store must be a mapping with {list(FEATURE_STORE_FIELDS)}")
    unknown = sorted(set(values) - set(FEATURE_STORE_FIELDS))
    if unknown:
        raise DataError(
            f"{origin}: unknown feature_store field(s) {unknown}; expected some of {list(FEATURE_STORE_FIELDS)}"
        )
    if not isinstance(values.get("feature_service"), str) or not values["feature_service"]:
        raise DataError(f"{origin}: feature_store.feature_service must name a Feast feature service")
    return {"timestamp_column": "event_timestamp", "entity_keys": None, **values}


def _check_bounds(values: Any, origin: str) -> dict[str, tuple[float | None, float | None]]:
    """The ``bounds`` section as ``{column: (min, max)}``, or :class:`DataError` naming the column and why."""
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise DataError(
            f"{origin}: bounds must be a mapping of column to [min, max], got {type(values).__name__}"
        )
    bounds = {}
    for column, pair in values.items():
        where = f"{origin}: bounds.{column}"
        if not isinstance(column, str) or not column:
            raise DataError(f"{origin}: bounds: {column!r} is not a column name")
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise DataError(f"{where} must be [min, max] (null for no limit on that side), got {pair!r}")
        ends: list[float | None] = []
        for end in pair:
            # YAML reads yes/no/true as a bool, which Python counts as an int: refused, not taken as 1 or 0.
            if end is not None and (isinstance(end, bool) or not isinstance(end, int | float)):
                raise DataError(f"{where}: {end!r} is not a number")
            if end is not None and not math.isfinite(end):
                raise DataError(f"{where}: {end!r} is not finite (use null for no limit)")
            ends.append(end)
        low, high = ends
        if low is None and high is None:
            raise DataError(f"{where}: [null, null] limits nothing; give a min, a max or both")
        if low is not None and high is not None and low > high:
            raise DataError(f"{where}: min {low} is greater than max {high}")
        bounds[column] = (low, high)
    return bounds
