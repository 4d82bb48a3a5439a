"""The reference examples beside flights, each a second team's project: its DAGs run end to end with real Airflow
(``dag.test``), real MLflow and the landed data, from landing to monitoring, with only the provider imported."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tests.e2e.dag_runs import task_states

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
LOCAL_BUNDLE = "airflow.dag_processing.bundles.local.LocalDagBundle"

pytestmark = pytest.mark.e2e


def run_example_dag(project: str, dag_id: str, **kwargs):
    """One ``dag.test()`` run of an example's DAG, parsed afresh from ``examples/<project>/dags``."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(EXAMPLES / project / "dags"))
    assert bag.import_errors == {}
    run = bag.dags[dag_id].test(**kwargs)
    assert str(run.state) == "success", task_states(run)
    return run


@pytest.fixture(scope="module")
def world(airflow_db, tmp_path_factory) -> Iterator[Path]:
    """A data root, MLflow registry and trust home of the module's own."""
    home = tmp_path_factory.mktemp("examples")
    overrides = {
        "MLOPS_DATA_ROOT": str(home / "data"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{home}/mlflow.db",
        "MLOPS_ARTIFACT_ROOT": (home / "artifacts").as_uri(),
        "MLOPS_TRUST_HOME": str(home / "trust"),
        # dag.test() runs a DAG of a configured bundle: each example is one, beside the project's dags/.
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(
            [
                {"name": "dags-folder", "classpath": LOCAL_BUNDLE, "kwargs": {}},
                *(
                    {
                        "name": f"example-{project.name}",
                        "classpath": LOCAL_BUNDLE,
                        "kwargs": {"path": str(project / "dags")},
                    }
                    for project in sorted(EXAMPLES.iterdir())
                    if (project / "dags").is_dir()
                ),
            ]
        ),
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in overrides.items():
            patch.setenv(key, value)
        # Config paths are relative to the project root (the DAG folder's parent), like a team's own project.
        patch.chdir(home)
        yield home


def _result(run, task_id: str):
    from mlops_dev.demo import task_result

    return task_result(run, task_id)


#: project, its DAG id prefix and landing folder, the metric its gate floors, the prediction columns it writes.
EXAMPLE_PROJECTS = [
    pytest.param(
        "wine_cultivar",
        "wine",
        "f1_macro",
        ["prediction", "probability_barbera", "probability_barolo", "probability_grignolino"],
        id="multiclass",
    ),
    pytest.param("diabetes_progression", "diabetes", "r2", ["prediction"], id="regression"),
]


@pytest.mark.parametrize(("project", "prefix", "gate_metric", "prediction_columns"), EXAMPLE_PROJECTS)
def test_an_example_project_runs_its_lifecycle(world, project, prefix, gate_metric, prediction_columns):
    """Land six days, retrain, promote, land the rest, score day 7 and monitor it once its labels are there."""
    from mlops_ops.hooks.mlflow import MlflowHook
    from mlops_ops.hooks.trust import TrustHook

    model = project
    run_example_dag(project, f"{prefix}_land", run_conf={"through_day": 6})
    retrain = run_example_dag(project, f"{prefix}_retrain")
    decision = _result(retrain, "evaluate_gate")
    assert decision["passed"] and gate_metric in decision["challenger_metrics"], decision
    registered = _result(retrain, "register")
    run_example_dag(project, f"{prefix}_promote")
    hook = MlflowHook()
    assert hook.get_aliases(model)["champion"] == registered["version"]

    run_example_dag(project, f"{prefix}_land", run_conf={"through_day": 8})
    day = "2024-05-07"
    scored = run_example_dag(project, f"{prefix}_batch_score", run_conf={"day": day})
    predictions = pd.read_parquet(_result(scored, "publish")["uri"]).sort_values(KEY[project])
    landed = pd.read_parquet(world / "data" / prefix / f"day={day}" / "part-0.parquet").sort_values(
        KEY[project]
    )
    assert len(predictions) == len(landed) > 0
    assert [
        c for c in predictions.columns if c.startswith(("prediction", "probability"))
    ] == prediction_columns

    # The champion as every consumer loads it predicts what was published.
    import tempfile

    from mlops_ops.core import training
    from mlops_ops.core.modelspec import ModelSpec

    spec = ModelSpec.load(EXAMPLES / project / "config" / "model_spec.yaml")
    trust = TrustHook()
    with tempfile.TemporaryDirectory() as folder:
        trusted, _ = trust.load(hook, trust.pin(hook, model, alias="champion"), folder)
    expected = training.predict(trusted.model, training.features_frame(landed, spec), spec).columns()
    for column, values in expected.items():
        if predictions[column].dtype.kind == "f":
            assert predictions[column].to_numpy() == pytest.approx(values)
        else:
            assert (predictions[column].to_numpy() == values).all()

    monitor = run_example_dag(project, f"{prefix}_monitor", run_conf={"day": day})
    performance = _result(monitor, "check_performance")
    assert performance["labelled_rows"] == len(landed)
    assert gate_metric in performance["metrics"], performance


KEY = {"wine_cultivar": "sample_id", "diabetes_progression": "patient_id"}
