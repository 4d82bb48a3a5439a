"""Run the project's DAGs with ``dag.test()`` and read their task states, for the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DAGS = Path(__file__).resolve().parents[2] / "dags"


def run_dag(dag_id: str, **kwargs):
    """One ``dag.test()`` run of ``dag_id`` on a freshly parsed DAG (``dag.test`` keeps a run's conf in the
    DAG's params, so a parsed DAG is never reused)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    return bag.dags[dag_id].test(**kwargs)


def task_states(run) -> dict[str, str]:
    """``{"task_id[map_index]": state}`` of every task instance of ``run``."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(TaskInstance).filter_by(dag_id=run.dag_id, run_id=run.run_id).all()
        return {f"{ti.task_id}[{ti.map_index}]": str(ti.state) for ti in rows}


@contextmanager
def champion_world(
    home: Path,
    *,
    reason: str,
    train_through_month: int = 2,
    land_through_month: int | None = None,
    shards: int = 2,
) -> Iterator[dict]:
    """A data root and MLflow registry of their own under ``home``, with a champion made by the real DAGs.

    ``ingest_flights`` lands 2013 through ``train_through_month``, ``retrain`` (forced) trains on it, ``promote``
    (policy auto) makes it ``champion``; then ``ingest_flights`` lands through ``land_through_month`` when given.
    The environment (data root, tracking URI, artifact root, promotion policy, ``batch_score`` shards) stays set
    while the context is open.

    :return: (yields) ``{"home", "champion" (its version), "predictions" (the predictions root)}``.
    """
    import pytest

    overrides = {
        "MLOPS_DATA_ROOT": str(home / "data"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{home}/mlflow.db",
        "MLOPS_ARTIFACT_ROOT": (home / "artifacts").as_uri(),
        "AIRFLOW_VAR_MLOPS_PROMOTION_POLICY": "auto",
        "MLOPS_BATCH_SCORE_SHARDS": str(shards),
        # A signing key and alias log of its own, like its registry.
        "MLOPS_TRUST_HOME": str(home / "trust"),
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in overrides.items():
            patch.setenv(key, value)
        ingest = run_dag("ingest_flights", run_conf={"through_month": train_through_month})
        assert str(ingest.state) == "success", task_states(ingest)
        retrain = run_dag("retrain", run_conf={"reason": reason, "force": True})
        assert str(retrain.state) == "success", task_states(retrain)
        promote = run_dag("promote")
        assert str(promote.state) == "success", task_states(promote)
        if land_through_month is not None:
            ingest = run_dag("ingest_flights", run_conf={"through_month": land_through_month})
            assert str(ingest.state) == "success", task_states(ingest)
        from mlops_ops.hooks.mlflow import MlflowHook

        champion = MlflowHook().get_aliases("flight_delay")["champion"]
        yield {"home": home, "champion": champion, "predictions": home / "data" / "predictions"}
