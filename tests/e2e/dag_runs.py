"""Run the project's DAGs with ``dag.test()`` and read their task states, for the end-to-end tests."""

from __future__ import annotations

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
