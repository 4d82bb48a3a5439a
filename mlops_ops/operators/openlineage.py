"""OpenLineage facets of the lifecycle operators: the data a training read, the model versions it produced.

Used only where ``apache-airflow-providers-openlineage`` is installed: its listener calls each operator's
``get_openlineage_facets_on_complete`` after a successful task, in the task's process; without the provider
nothing here is imported. Operators read what they did from their own result (XCom ``return_value``), so a retry
that returned an earlier result reports the same lineage.
"""

from __future__ import annotations

from typing import Any

from mlops_ops.core.lineage import dataset_identity


def task_result(task_instance: Any) -> dict[str, Any]:
    """The task's own result, as it pushed it to XCom (empty when it pushed none)."""
    value = task_instance.xcom_pull(task_ids=task_instance.task_id, key="return_value")
    return value if isinstance(value, dict) else {}


def operator_lineage(inputs: list[tuple[str, str]], outputs: list[tuple[str, str]]) -> Any:
    """An ``OperatorLineage`` of ``(namespace, name)`` input and output datasets.

    :return: the provider's ``OperatorLineage``; ``None`` when the OpenLineage provider is not installed.
    """
    try:
        from airflow.providers.common.compat.openlineage.facet import Dataset
        from airflow.providers.openlineage.extractors import OperatorLineage
    except ImportError:
        return None
    return OperatorLineage(
        inputs=[Dataset(namespace=namespace, name=name) for namespace, name in inputs],
        outputs=[Dataset(namespace=namespace, name=name) for namespace, name in outputs],
    )


def files_read(files: list[str]) -> list[tuple[str, str]]:
    """The datasets of the files a task read."""
    return [dataset_identity(path) for path in files]
