"""The drift check's windows per task type: the prediction column is the binary probability or the regression
value (numerical), or the multiclass predicted class (categorical), on synthetic models trained by the core."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops_ops.core import drift_check, training
from mlops_ops.core.modelspec import ModelSpec
from mlops_ops.core.tasks import TaskMismatchError

PREDICTION = drift_check.PREDICTION_COLUMN


def _customers(rows: int, seed: int, fee_shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    plan = rng.choice(["basic", "plus", "pro"], rows)
    tenure = rng.integers(1, 60, rows).astype(float)
    fee = rng.uniform(10, 90, rows).round(2) + fee_shift
    score = fee / 30 + (plan == "pro") * 1.5 + rng.normal(0, 0.4, rows)
    return pd.DataFrame(
        {
            "plan": plan,
            "tenure": tenure,
            "fee": fee,
            "usage": np.select([score < 1.5, score < 2.5], ["low", "mid"], "high"),
            "spend": 3.0 * fee + 0.5 * tenure + rng.normal(0, 2, rows),
            "churned": (rng.random(rows) < 1 / (1 + np.exp(0.08 * tenure - 0.03 * fee))).astype(int),
        }
    )


def _spec(task: str, target: str) -> ModelSpec:
    return ModelSpec.from_dict(
        {
            "name": "usage",
            "task": task,
            "target": target,
            "categorical_features": ["plan"],
            "numerical_features": ["tenure", "fee"],
            "params": {"max_iter": 30},
            "seed": 5,
        }
    )


@pytest.fixture(scope="module")
def models() -> dict[str, tuple[ModelSpec, object]]:
    history = _customers(1500, seed=1)
    fitted = {}
    for task, target in (("binary", "churned"), ("multiclass", "usage"), ("regression", "spend")):
        spec = _spec(task, target)
        fitted[task] = spec, training.fit(spec, history, params=spec.params, seed=spec.seed)
    return fitted


def _window(spec, model, frame, name, chunk_rows=250):
    chunks = [frame.iloc[start : start + chunk_rows] for start in range(0, len(frame), chunk_rows)]
    # A sample larger than the window keeps every row, in order: its prediction column is what was counted.
    return drift_check.read_window(chunks, spec, name, model=model, sample_rows=len(frame) + 1)


def test_a_multiclass_window_counts_the_predicted_class_as_a_category(models):
    spec, model = models["multiclass"]
    assert drift_check.drift_columns(spec, with_prediction=True) == (["tenure", "fee"], ["plan", PREDICTION])
    frame = _customers(1000, seed=2)
    window = _window(spec, model, frame, "current")
    assert PREDICTION in window.summary.categorical and PREDICTION not in window.summary.numerical
    predicted = model.predict(training.features_frame(frame, spec))
    assert window.summary.categorical[PREDICTION].counts == pd.Series(predicted).value_counts().to_dict()
    assert window.sample.rows[PREDICTION].tolist() == predicted.tolist()

    # Fees moved up: more rows are predicted "high", and the prediction is tested as a category.
    reference = _window(spec, model, _customers(1000, seed=3), "reference")
    shifted = _window(spec, model, _customers(1000, seed=4, fee_shift=30.0), "current")
    result = drift_check.drift.compare(reference.summary, shifted.summary, prediction_column=PREDICTION)
    assert result.prediction is not None and result.prediction.column_type == "categorical"
    assert result.prediction.drifted
    assert [column.column for column in result.columns] == ["tenure", "fee", "plan"]  # not in the share


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        ("binary", lambda model, inputs: model.predict_proba(inputs)[:, 1]),
        ("regression", lambda model, inputs: model.predict(inputs)),
    ],
)
def test_a_binary_or_regression_window_counts_the_prediction_as_a_number(models, task, expected):
    spec, model = models[task]
    assert drift_check.drift_columns(spec, with_prediction=True) == (["tenure", "fee", PREDICTION], ["plan"])
    frame = _customers(600, seed=2)
    window = _window(spec, model, frame, "current")
    assert PREDICTION in window.summary.numerical and PREDICTION not in window.summary.categorical
    values = expected(model, training.features_frame(frame, spec))
    np.testing.assert_array_equal(window.sample.rows[PREDICTION].to_numpy(), values)
    result = drift_check.drift.compare(
        _window(spec, model, _customers(600, seed=3), "reference").summary,
        window.summary,
        prediction_column=PREDICTION,
    )
    assert result.prediction is not None and result.prediction.column_type == "numerical"


def test_without_a_model_the_prediction_is_not_a_column(models):
    spec, _ = models["multiclass"]
    assert drift_check.drift_columns(spec, with_prediction=False) == (["tenure", "fee"], ["plan"])
    window = drift_check.read_window([_customers(100, seed=2)], spec, "current")
    assert PREDICTION not in window.summary.columns


def test_a_model_of_another_task_than_the_spec_is_refused(models):
    spec, _ = models["multiclass"]
    _, regressor = models["regression"]
    with pytest.raises(TaskMismatchError, match="is not a classifier|has no predict_proba"):
        drift_check.read_window([_customers(100, seed=2)], spec, "current", model=regressor)


def test_the_report_lists_a_multiclass_prediction_as_categorical(models):
    pytest.importorskip("evidently")
    spec, model = models["multiclass"]
    numerical, categorical = drift_check.drift_columns(spec, with_prediction=True)
    reference = _window(spec, model, _customers(300, seed=3), "reference").sample.rows
    current = _window(spec, model, _customers(300, seed=4, fee_shift=30.0), "current").sample.rows
    page = drift_check.evidently_report_html(
        reference, current, numerical, categorical, drift_share=0.5, note="multiclass check"
    )
    assert "multiclass check" in page and PREDICTION in page


def _landed(folder, frame: pd.DataFrame, start: str) -> str:
    """``frame`` landed as Parquet with one row a minute from ``start`` (UTC) in ``event_time``."""
    folder.mkdir(parents=True, exist_ok=True)
    landed = frame.assign(event_time=pd.date_range(start, periods=len(frame), freq="1min", tz="UTC"))
    landed.to_parquet(folder / "part-0.parquet", index=False)
    return str(folder / "part-0.parquet")


def test_the_workflow_checks_an_interval_without_airflow_and_agrees_with_the_engine(models, tmp_path):
    from mlops_ops.core import drift, scoring
    from mlops_ops.core.contracts import DriftOutcome

    spec, model = models["regression"]
    reference = _customers(900, seed=11)
    current = _customers(600, seed=12, fee_shift=25.0)
    reference_file = _landed(tmp_path / "training", reference, "2024-01-01")
    source = _landed(tmp_path / "landed", current, "2024-03-01")
    interval = scoring.Interval.parse("2024-03-01", "2024-03-02")

    checked = drift_check.check_interval(
        spec,
        interval,
        source=source,
        time_column="event_time",
        reference_files=[reference_file],
        model=model,
        chunk_rows=128,
        sample_rows=50,
    )
    # The same verdicts as the engine on the whole frames, read apart from the workflow.
    with_prediction = {
        name: frame[list(spec.features)].assign(**{PREDICTION: model.predict(frame[list(spec.features)])})
        for name, frame in (("reference", reference), ("current", current))
    }
    expected = drift.detect_drift(
        with_prediction["reference"],
        with_prediction["current"],
        [*spec.numerical_features, PREDICTION],
        spec.categorical_features,
        prediction_column=PREDICTION,
    )
    assert checked.result.to_dict() == expected.to_dict()
    assert checked.result.dataset_drift and "fee" in expected.to_dict()["drifted_columns"]

    outcome = drift_check.drift_outcome(
        checked,
        model_name="usage",
        version="3",
        interval=interval,
        on_drift="request_retrain",
        airflow_run="d/r",
    )
    assert outcome.retrain_requested and outcome.reason.startswith(
        f"data drift on {interval.key} for usage v3"
    )
    spread = outcome.prediction_distribution
    predicted = with_prediction["current"][PREDICTION].to_numpy()
    assert spread["rows"] == 600 and spread["mean"] == pytest.approx(predicted.mean(), rel=1e-9)
    assert spread["p50"] == np.quantile(predicted, 0.5, method="inverted_cdf")

    saved, page = drift_check.write_evidence(
        checked, outcome, spec, interval, report_root=str(tmp_path / "reports"), report_sample_rows=0
    )
    assert page is None and saved.report_uri is None
    assert saved.result_uri.endswith(f"model=usage/interval={interval.key}/drift_v3.json")
    import json
    from pathlib import Path

    assert DriftOutcome.from_xcom(json.loads(Path(saved.result_uri).read_text()), "saved") == saved


def test_an_interval_without_rows_is_refused_naming_the_source(models, tmp_path):
    from mlops_ops.core import scoring
    from mlops_ops.core.errors import DataError

    spec, _ = models["binary"]
    reference_file = _landed(tmp_path / "training", _customers(100, seed=1), "2024-01-01")
    source = _landed(tmp_path / "landed", _customers(100, seed=2), "2024-03-01")
    empty_day = scoring.Interval.parse("2024-03-05", "2024-03-06")
    with pytest.raises(DataError, match=r"the current window has no rows in .* under .*landed"):
        drift_check.check_interval(
            spec, empty_day, source=source, time_column="event_time", reference_files=[reference_file]
        )


def test_a_drift_outcome_names_what_it_lacks():
    from mlops_ops.core.contracts import DriftOutcome
    from mlops_ops.core.errors import DataError

    with pytest.raises(DataError, match=r"drift lacks \['model_version', 'interval'.*DriftCheckOperator"):
        DriftOutcome.from_xcom({"model_name": "m", "share": 0.1}, "drift")
