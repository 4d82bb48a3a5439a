"""TrainOperator against a real local MLflow (SQLite + file artifacts) on the synthetic visits of
tests/unit/synthetic.py."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pandas as pd
import pytest
import sklearn
from airflow.sdk.exceptions import AirflowFailException

from mlops_ops.core import lineage
from mlops_ops.operators.training import RESULT_TAG, TrainingFailed, TrainOperator
from tests.unit import synthetic
from tests.unit.operators.support import CONN_ID, make_ti

DATA_VERSION = "sha256:visits-2024-01-02-sample"
RUN_1 = "manual__2026-11-26T14:00:00+00:00"
RUN_2 = "scheduled__2026-11-27T00:00:00+00:00"


def train_operator(root: Path, files: list[str], **kwargs: Any) -> TrainOperator:
    arguments = {
        "task_id": "train",
        "model_spec": synthetic.spec(),
        "data_version": {"fingerprint": DATA_VERSION, "files": files},
        "evaluation_root": str(root / "eval"),
        "mlflow_conn_id": CONN_ID,
        "trigger_reason": "new data version",
        **kwargs,
    }
    return TrainOperator(**arguments)


@pytest.fixture(scope="module")
def trained(root, files) -> dict[str, Any]:
    return train_operator(root, files).execute(context={"ti": make_ti(RUN_1)})


def runs_of(client, experiment_id: str, airflow_run_id: str | None = None) -> list[Any]:
    from mlflow.entities import ViewType

    condition = f"tags.`{lineage.RUN_ID}` = '{airflow_run_id}'" if airflow_run_id else ""
    return client.search_runs([experiment_id], filter_string=condition, run_view_type=ViewType.ALL)


# --- the result and what MLflow holds ------------------------------------------------------------------


def test_result_is_json_safe_and_names_the_run_model_and_evidence(trained, root, client):
    assert json.loads(json.dumps(trained, allow_nan=False)) == trained
    run = client.get_run(trained["run_id"])
    assert run.info.status == "FINISHED"
    assert run.info.experiment_id == trained["experiment_id"]
    assert trained["model_name"] == synthetic.MODEL
    assert trained["model_uri"].startswith("models:/")
    assert trained["data_version"] == DATA_VERSION
    assert trained["seed"] == 42
    assert trained["device"] == "cpu"
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", trained["artifact_sha256"])
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", trained["training_key"])
    assert trained["metrics"]["roc_auc"] > 0.55  # the small model still learns something
    assert trained["split"]["rows_in"] == 6000
    assert trained["split"]["rows_unlabelled"] > 0  # visits whose outcome is unknown have no label


def test_held_out_rows_are_saved_where_the_result_says(trained, root):
    evaluation_uri = Path(trained["evaluation_uri"])

    assert evaluation_uri.is_file()
    assert evaluation_uri.parent == root / "eval" / synthetic.MODEL
    held_out = pd.read_parquet(evaluation_uri)
    assert len(held_out) == trained["split"]["rows_evaluation"] == trained["metrics"]["rows"]
    assert str(held_out[synthetic.TIME_COLUMN].min()) == trained["split"]["split_time"]
    assert held_out[synthetic.TARGET].notna().all()


def test_run_carries_lineage_tags_params_and_metrics(trained, client, files):
    run = client.get_run(trained["run_id"])
    tags, params = run.data.tags, run.data.params

    assert tags[lineage.DATA_VERSION] == DATA_VERSION
    assert json.loads(tags[lineage.DATA_FILES]) == files
    assert tags[lineage.CODE_REVISION] == "0123456789abcdef0123456789abcdef01234567"
    assert tags[lineage.SEED] == "42"
    assert tags[lineage.TRAINING_KEY] == trained["training_key"]
    assert tags[lineage.ARTIFACT_SHA256] == trained["artifact_sha256"]
    assert tags[lineage.TRIGGER_REASON] == "new data version"
    assert tags[lineage.DEVICE] == "cpu"
    assert json.loads(tags[lineage.MODEL_SPEC])["params"] == {"max_iter": 20}
    assert {
        key: tags[key] for key in (lineage.DAG_ID, lineage.RUN_ID, lineage.TASK_ID, lineage.TRY_NUMBER)
    } == {
        lineage.DAG_ID: "retrain",
        lineage.RUN_ID: RUN_1,
        lineage.TASK_ID: "train",
        lineage.TRY_NUMBER: "1",
    }
    assert tags["mlops.library.scikit-learn"] == sklearn.__version__
    assert json.loads(tags[RESULT_TAG]) == trained
    assert params["param.max_iter"] == "20"
    assert params["seed"] == "42"
    assert params["estimator"] == "sklearn.ensemble.HistGradientBoostingClassifier"
    assert params["holdout_time_column"] == synthetic.TIME_COLUMN
    assert params["features"].split(",") == [*synthetic.CATEGORICAL, *synthetic.NUMERICAL]
    assert run.data.metrics["holdout_roc_auc"] == pytest.approx(trained["metrics"]["roc_auc"])
    assert run.data.metrics["rows_unlabelled"] == trained["split"]["rows_unlabelled"]


def test_logged_model_takes_raw_feature_columns_and_scores_the_held_out_rows(trained):
    import mlflow

    from mlops_ops.core import training
    from mlops_ops.core.modelspec import ModelSpec

    spec = ModelSpec.from_dict(synthetic.spec())
    info = mlflow.models.get_model_info(trained["model_uri"])
    model = mlflow.sklearn.load_model(trained["model_uri"])
    held_out = pd.read_parquet(trained["evaluation_uri"])

    probabilities = training.positive_probability(model, training.features_frame(held_out, spec))

    assert info.signature.inputs.input_names() == spec.features
    assert training.classification_metrics(held_out[synthetic.TARGET], probabilities)[
        "roc_auc"
    ] == pytest.approx(trained["metrics"]["roc_auc"])


# --- retries -------------------------------------------------------------------------------------------


def test_a_retry_returns_the_finished_run_without_training_again(trained, root, files, client):
    before = len(runs_of(client, trained["experiment_id"]))

    again = train_operator(root, files).execute(context={"ti": make_ti(RUN_1, try_number=2)})

    assert again == trained
    assert len(runs_of(client, trained["experiment_id"])) == before
    assert len(runs_of(client, trained["experiment_id"], RUN_1)) == 1


def test_a_run_left_running_by_a_killed_try_is_marked_failed_and_training_starts_over(
    trained, root, files, client
):
    airflow_run = "manual__killed"
    ti = make_ti(airflow_run)
    stale = client.create_run(trained["experiment_id"], tags=lineage.airflow_tags_of(ti))

    result = train_operator(root, files).execute(context={"ti": make_ti(airflow_run, try_number=2)})

    assert client.get_run(stale.info.run_id).info.status == "FAILED"
    assert result["run_id"] != stale.info.run_id
    assert client.get_run(result["run_id"]).info.status == "FINISHED"


# --- reproducibility -----------------------------------------------------------------------------------


def test_same_data_and_seed_under_another_airflow_run_gives_the_same_model(trained, root, files, client):
    import mlflow

    from mlops_ops.core.modelspec import ModelSpec
    from mlops_ops.core.training import features_frame

    second = train_operator(root, files).execute(context={"ti": make_ti(RUN_2)})
    first_model = mlflow.sklearn.load_model(trained["model_uri"])
    second_model = mlflow.sklearn.load_model(second["model_uri"])
    inputs = features_frame(pd.read_parquet(trained["evaluation_uri"]), ModelSpec.from_dict(synthetic.spec()))

    assert second["run_id"] != trained["run_id"]
    assert second["training_key"] == trained["training_key"]
    assert second["metrics"] == trained["metrics"]
    assert np.array_equal(first_model.predict_proba(inputs), second_model.predict_proba(inputs))


def test_another_seed_gives_another_training_key(trained, root, files):
    other = train_operator(root, files, seed=7).execute(context={"ti": make_ti("manual__seed7")})

    assert other["seed"] == 7
    assert other["training_key"] != trained["training_key"]


# --- failures ------------------------------------------------------------------------------------------


def test_training_failed_is_not_retried():
    assert issubclass(TrainingFailed, AirflowFailException)


def test_an_empty_file_list_fails_naming_the_data_version(root):
    operator = train_operator(root, [])

    with pytest.raises(TrainingFailed, match=f"data version {DATA_VERSION} lists no files"):
        operator.execute(context={"ti": make_ti("manual__empty")})


def test_a_raw_column_missing_from_the_data_fails_naming_it(root, files, tmp_path):
    broken = tmp_path / "part-0.parquet"
    pd.read_parquet(files[0]).drop(columns=["rooms"]).to_parquet(broken, index=False)
    spec = synthetic.spec(
        prepare=f"{synthetic.THIS_MODULE}:prepare_visits",
        numerical_features=[*synthetic.NUMERICAL, synthetic.PREPARED_FEATURE],
    )

    with pytest.raises(
        TrainingFailed, match="cannot train on data version .*prepare_visits needs column 'rooms'"
    ):
        train_operator(root, [str(broken)], model_spec=spec).execute(
            context={"ti": make_ti("manual__no_rooms")}
        )


def test_a_feature_missing_without_a_prepare_function_fails_naming_it(root, tmp_path):
    raw = tmp_path / "raw.parquet"
    pd.read_parquet(sorted((root / "data").rglob("*.parquet"))[0]).drop(columns=["width"]).to_parquet(
        raw, index=False
    )
    spec = {**synthetic.spec(), "prepare": None}

    with pytest.raises(TrainingFailed, match=re.escape("missing column(s) ['width']")):
        train_operator(root, [str(raw)], model_spec=spec).execute(context={"ti": make_ti("manual__no_width")})


def test_rows_without_any_label_fail(root, files, tmp_path):
    unlabelled = tmp_path / "part-0.parquet"
    pd.read_parquet(files[0]).assign(bought=np.nan).to_parquet(unlabelled, index=False)

    with pytest.raises(TrainingFailed, match="no labelled rows"):
        train_operator(root, [str(unlabelled)]).execute(context={"ti": make_ti("manual__unlabelled")})


def test_a_missing_spec_file_fails(root, files):
    with pytest.raises(TrainingFailed, match="no_such_spec.yaml"):
        train_operator(root, files, model_spec="include/visits/no_such_spec.yaml").execute(
            context={"ti": make_ti("manual__nospec")}
        )


# --- GPU -----------------------------------------------------------------------------------------------


def test_gpu_sets_the_gpu_pool_and_queue():
    default = TrainOperator(task_id="t", model_spec="s.yaml", data_version={})
    on_gpu = TrainOperator(task_id="t", model_spec="s.yaml", data_version={}, gpu=True)
    on_queue = TrainOperator(task_id="t", model_spec="s.yaml", data_version={}, gpu=True, gpu_queue="gpu")
    own_pool = TrainOperator(task_id="t", model_spec="s.yaml", data_version={}, gpu=True, pool="a100")

    assert default.pool != "gpu" and default.queue != "gpu"
    assert on_gpu.pool == "gpu" and on_gpu.queue == default.queue
    assert on_queue.pool == "gpu" and on_queue.queue == "gpu"
    assert own_pool.pool == "a100"


@pytest.mark.parametrize(
    ("gpu", "device", "visible", "expected"),
    [
        (True, "auto", False, "cpu"),
        (True, "auto", True, "cuda"),
        (False, "auto", True, "cpu"),
        (False, "cuda:1", False, "cuda:1"),
    ],
)
def test_resolve_device(gpu, device, visible, expected):
    operator = TrainOperator(task_id="t", model_spec="s.yaml", data_version={}, gpu=gpu, device=device)

    with mock.patch("mlops_ops.operators.training._gpu_visible", return_value=visible):
        assert operator.resolve_device() == expected


def test_no_gpu_is_visible_when_cuda_visible_devices_hides_them(monkeypatch):
    from mlops_ops.operators.training import _gpu_visible

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")

    assert _gpu_visible() is False


def test_the_resolved_device_is_recorded(root, files, client):
    operator = train_operator(root, files, gpu=True)

    with mock.patch("mlops_ops.operators.training._gpu_visible", return_value=True):
        result = operator.execute(context={"ti": make_ti("manual__gpu")})

    assert result["device"] == "cuda"
    assert client.get_run(result["run_id"]).data.tags[lineage.DEVICE] == "cuda"


# --- mapped tasks, cleared tasks, and inputs that fail the same way on every try -------------------------


def test_mapped_instances_of_one_task_each_train_their_own_model(root, files, client):
    airflow_run = "manual__mapped"
    first, second = (
        train_operator(root, files, seed=seed).execute(context={"ti": make_ti(airflow_run, map_index=index)})
        for index, seed in ((0, 1), (1, 2))
    )
    assert first["run_id"] != second["run_id"]
    assert (first["seed"], second["seed"]) == (1, 2)
    assert client.get_run(first["run_id"]).data.tags[lineage.MAP_INDEX] == "0"


def test_a_cleared_task_with_other_inputs_trains_again(trained, root, files):
    again = train_operator(root, files, seed=7).execute(context={"ti": make_ti(RUN_1, try_number=2)})
    assert again["run_id"] != trained["run_id"]
    assert again["training_key"] != trained["training_key"]


def test_a_running_run_of_the_same_try_is_left_alone(trained, root, files, client):
    """Only an earlier try's RUNNING run is stale: one of this try belongs to a live process."""
    airflow_run = "manual__concurrent"
    live = client.create_run(
        trained["experiment_id"],
        tags=lineage.airflow_tags("retrain", airflow_run, "train", 1, -1),
    )
    train_operator(root, files).execute(context={"ti": make_ti(airflow_run, try_number=1)})
    assert client.get_run(live.info.run_id).info.status == "RUNNING"


@pytest.mark.parametrize(
    "change, words",
    [
        ({"estimator_params": {"no_such_param": 1}}, "no_such_param"),
        (
            {"model_spec": {**synthetic.spec(), "numerical_features": ["store_name_typo"]}},
            "store_name_typo",
        ),
        ({"model_spec": {**synthetic.spec(), "numerical_features": ["colour"]}}, "colour"),
        ({"seed": "not-a-number"}, "not-a-number"),
        ({"training_function": "tests.unit.operators.no_such_module:train"}, "no_such_module"),
        (
            {
                "model_spec": {
                    **synthetic.spec(),
                    "task": "regression",
                    "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
                }
            },
            "HistGradientBoostingClassifier is a classifier but the model spec declares task 'regression'",
        ),
        ({"model_spec": {**synthetic.spec(), "task": "ranking"}}, "task must be one of"),
    ],
    ids=[
        "unknown estimator param",
        "missing feature",
        "non-numeric feature",
        "bad seed",
        "missing function",
        "estimator of another task",
        "unknown task",
    ],
)
def test_bad_input_fails_without_retry_naming_the_problem(root, files, change, words):
    with pytest.raises(AirflowFailException, match=re.escape(words)):
        train_operator(root, files, **change).execute(context={"ti": make_ti("manual__bad")})


class MeanOfTwo:
    """A classifier that is not a scikit-learn estimator: logged with cloudpickle, not skops."""

    def __init__(self, first: Any, second: Any) -> None:
        self.first, self.second = first, second

    def predict_proba(self, rows: pd.DataFrame) -> np.ndarray:
        return (self.first.predict_proba(rows) + self.second.predict_proba(rows)) / 2


def train_mean_of_two(train: pd.DataFrame, *, spec: Any, params: dict, seed: int, device: str) -> MeanOfTwo:
    from mlops_ops.core import training

    models = [training.fit(spec, train, params=params, seed=seed + offset) for offset in (0, 1)]
    return MeanOfTwo(*models)


def test_a_training_function_model_is_logged_loaded_and_keyed_apart(trained, root, files):
    import mlflow

    reference = f"{__name__}:train_mean_of_two"
    result = train_operator(root, files, training_function=reference).execute(
        context={"ti": make_ti("manual__function")}
    )
    assert result["training_key"] != trained["training_key"], "another training function is another model"
    model = mlflow.sklearn.load_model(result["model_uri"])
    assert type(model).__name__ == "MeanOfTwo"
    evaluation = pd.read_parquet(result["evaluation_uri"])
    from mlops_ops.core import training
    from mlops_ops.core.modelspec import ModelSpec

    spec = ModelSpec.from_dict(synthetic.spec())
    assert training.evaluate(model, evaluation, spec)["roc_auc"] == pytest.approx(
        result["metrics"]["roc_auc"]
    )


def test_a_requested_code_revision_other_than_the_workers_fails_without_training(root, files, monkeypatch):
    monkeypatch.setenv("MLOPS_CODE_REVISION", "0123456789abcdef0123456789abcdef01234567")
    operator = train_operator(root, files, expected_code_revision="fedcba9")
    with pytest.raises(
        TrainingFailed, match="the workers run code revision '0123456789abcdef.*not the requested 'fedcba9'"
    ):
        operator.execute(context={"ti": make_ti("manual__ci")})


@pytest.mark.parametrize(
    ("expected", "accepted"),
    [
        (None, True),
        ("", True),
        ("0123456", True),
        ("0123456789abcdef0123456789abcdef01234567", True),
        ("012345", False),
    ],
    ids=["none", "empty", "short sha", "full sha", "too short a prefix"],
)
def test_a_requested_code_revision_matches_the_full_id_or_a_prefix_of_seven(expected, accepted):
    operator = TrainOperator(task_id="train", model_spec={}, data_version={}, expected_code_revision=expected)
    running = "0123456789abcdef0123456789abcdef01234567"
    if accepted:
        operator._check_code_revision(running)
    else:
        with pytest.raises(TrainingFailed, match="not the requested"):
            operator._check_code_revision(running)


def test_a_requested_code_revision_that_is_no_revision_id_is_refused_without_echoing_it():
    operator = TrainOperator(
        task_id="train", model_spec={}, data_version={}, expected_code_revision="x; rm -rf /" * 9
    )
    with pytest.raises(TrainingFailed, match="must be a revision id") as raised:
        operator._check_code_revision("0123456")
    assert "rm -rf" not in str(raised.value)
