"""Other teams' models (binary, multiclass, regression) through the core lifecycle, with no Airflow, no feature
store and no prepare function: train, score an interval in two shards, publish, then measure it once its labels
landed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops_ops.core import scoring, training
from mlops_ops.core.model_artifacts import ModelInput, PinnedModel
from mlops_ops.core.modelspec import ModelSpec
from mlops_ops.core.performance import BusinessCosts, DecayRule, measure_interval

SPEC = ModelSpec.from_dict(
    {
        "name": "churn",
        "target": "churned",
        "categorical_features": ["plan"],
        "numerical_features": ["tenure", "monthly_fee"],
        "params": {"max_iter": 50},
        "seed": 3,
    }
)
INTERVAL = scoring.Interval.parse("2024-03-01", "2024-03-02")


def _customers(rows: int, start: str, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 60, rows)
    plan = rng.choice(["basic", "plus", "pro"], rows)
    fee = rng.uniform(10, 90, rows).round(2)
    risk = 1 / (1 + np.exp(0.08 * tenure - 0.03 * fee - (plan == "basic") * 1.0))
    return pd.DataFrame(
        {
            "customer": np.arange(rows) + seed * 100_000,
            "event_time": pd.date_range(start, periods=rows, freq="1min", tz="UTC"),
            "plan": plan,
            "tenure": tenure.astype(float),
            "monthly_fee": fee,
            "churned": (rng.random(rows) < risk).astype(int),
        }
    )


def test_train_score_publish_and_measure_a_second_teams_model(tmp_path):
    history = _customers(3000, "2024-01-01", seed=1)
    model = training.fit(SPEC, history, params=SPEC.params, seed=SPEC.seed)
    held_out = training.evaluate(model, _customers(1000, "2024-02-01", seed=2), SPEC)
    assert held_out["roc_auc"] > 0.6  # the synthetic risk is learnable

    landed = tmp_path / "landed"
    landed.mkdir()
    day = _customers(1200, "2024-03-01", seed=3)
    # Two row groups, so two shards have work; the label is not there yet at scoring time.
    day.drop(columns=["churned"]).to_parquet(landed / "part-0.parquet", index=False, row_group_size=600)
    pinned = PinnedModel("churn", "1", "champion", "run", "source", "")
    config = scoring.ScoringConfig(
        features=[
            ModelInput("plan", "string"),
            ModelInput("tenure", "double"),
            ModelInput("monthly_fee", "double"),
        ],
        key_columns=["customer"],
        time_column="event_time",
    )
    staging = scoring.staging_folder(str(tmp_path / "out"), "churn", INTERVAL, "run-1")
    for index in range(2):
        scoring.score_shard(
            model=model,
            pinned=pinned,
            config=config,
            interval=INTERVAL,
            source_uri=str(landed),
            destination_uri=scoring.shard_uri(staging, index, 2),
            shard_index=index,
            shard_count=2,
        )
    partition = scoring.partition_uri(str(tmp_path / "out"), "churn", INTERVAL)
    published = scoring.publish(
        staging=staging, destination_uri=partition, pinned=pinned, interval=INTERVAL, shard_count=2
    )
    assert (published.status, published.rows) == ("published", 1200)
    scored = pd.read_parquet(partition).sort_values("customer")
    expected = model.predict_proba(day[SPEC.features])[:, 1]
    assert np.allclose(scored["probability"].to_numpy(), expected)  # the model's own probabilities

    labels = tmp_path / "labels"
    labels.mkdir()
    day[["customer", "event_time", "churned"]].to_parquet(labels / "part-0.parquet", index=False)
    outcome = measure_interval(
        predictions_uri=partition,
        labels_source=str(labels),
        interval=INTERVAL,
        model_name="churn",
        spec=SPEC,
        rule=DecayRule.from_dict({"max_drop": {"roc_auc": 0.2}}),
        costs=BusinessCosts(missed_positive=10.0, false_alarm=1.0),
        key_columns=["customer"],
        time_column="event_time",
        training_metrics_of=lambda version: {f"holdout_{name}": value for name, value in held_out.items()},
    )
    assert outcome.version == "1" and outcome.measured.labelled_rows == 1200
    assert outcome.verdict.status == "healthy"  # same population as training: no decay


def _orders(rows: int, start: str, seed: int) -> pd.DataFrame:
    """A third team's orders: basket size decides the segment (multiclass) and drives the spend (regression)."""
    rng = np.random.default_rng(seed)
    basket = rng.gamma(2.0, 20.0, rows)
    visits = rng.poisson(5, rows).astype(float)
    return pd.DataFrame(
        {
            "order": np.arange(rows) + seed * 100_000,
            "event_time": pd.date_range(start, periods=rows, freq="1min", tz="UTC"),
            "channel": rng.choice(["web", "store", "app"], rows),
            "basket": basket,
            "visits": visits,
            "segment": np.where(basket > 50, "premium", np.where(visits > 5, "loyal", "casual")),
            "spend": 3 * basket + 2 * visits + rng.normal(0, 5, rows),
        }
    )


@pytest.mark.parametrize(
    ("task", "target", "rule", "costs", "headline", "columns"),
    [
        (
            "multiclass",
            "segment",
            {"max_drop": {"f1_macro": 0.2}},
            {"misclassification": 1.0, "matrix": {"premium": {"casual": 5.0}}},
            "f1_macro",
            ["prediction", "probability_casual", "probability_loyal", "probability_premium"],
        ),
        (
            "regression",
            "spend",
            {"max_drop": {"rmse": 10.0}},
            {"under_prediction": 2.0, "over_prediction": 1.0},
            "rmse",
            ["prediction"],
        ),
    ],
)
def test_a_multiclass_or_regression_model_through_the_core_lifecycle(
    tmp_path, task, target, rule, costs, headline, columns
):
    spec = ModelSpec.from_dict(
        {
            "name": "orders",
            "task": task,
            "target": target,
            "categorical_features": ["channel"],
            "numerical_features": ["basket", "visits"],
            "params": {"max_iter": 40},
        }
    )
    model = training.fit(spec, _orders(3000, "2024-01-01", seed=1), params=spec.params, seed=0)
    held_out = training.evaluate(model, _orders(1000, "2024-02-01", seed=2), spec)

    landed = tmp_path / "landed"
    landed.mkdir()
    day = _orders(1200, "2024-03-01", seed=3)
    day.drop(columns=["segment", "spend"]).to_parquet(
        landed / "part-0.parquet", index=False, row_group_size=600
    )
    pinned = PinnedModel("orders", "1", "champion", "run", "source", "")
    config = scoring.ScoringConfig(
        features=[
            ModelInput("channel", "string"),
            ModelInput("basket", "double"),
            ModelInput("visits", "double"),
        ],
        key_columns=["order"],
        time_column="event_time",
        task=task,
    )
    staging = scoring.staging_folder(str(tmp_path / "out"), "orders", INTERVAL, "run-1")
    for index in range(2):
        scoring.score_shard(
            model=model,
            pinned=pinned,
            config=config,
            interval=INTERVAL,
            source_uri=str(landed),
            destination_uri=scoring.shard_uri(staging, index, 2),
            shard_index=index,
            shard_count=2,
        )
    partition = scoring.partition_uri(str(tmp_path / "out"), "orders", INTERVAL)
    published = scoring.publish(
        staging=staging, destination_uri=partition, pinned=pinned, interval=INTERVAL, shard_count=2
    )
    assert (published.status, published.rows, published.task) == ("published", 1200, task)
    scored = pd.read_parquet(partition).sort_values("order")
    assert [c for c in scored.columns if c.startswith(("prediction", "probability"))] == columns
    expected = training.predict(model, training.features_frame(day, spec), spec).columns()
    for column in columns:
        if scored[column].dtype.kind == "f":
            assert np.allclose(scored[column].to_numpy(), expected[column])
        else:
            assert (scored[column].to_numpy() == expected[column]).all()

    labels = tmp_path / "labels"
    labels.mkdir()
    day[["order", "event_time", target]].to_parquet(labels / "part-0.parquet", index=False)
    outcome = measure_interval(
        predictions_uri=partition,
        labels_source=str(labels),
        interval=INTERVAL,
        model_name="orders",
        spec=spec,
        rule=DecayRule.from_dict(rule),
        costs=BusinessCosts.from_dict(costs),
        key_columns=["order"],
        time_column="event_time",
        training_metrics_of=lambda version: {f"holdout_{name}": value for name, value in held_out.items()},
    )
    assert outcome.measured.labelled_rows == 1200 and outcome.measured.task == task
    assert outcome.measured.metrics[headline] == pytest.approx(held_out[headline], rel=0.25)
    assert outcome.measured.business_cost.total > 0
    assert outcome.verdict.status == "healthy"
