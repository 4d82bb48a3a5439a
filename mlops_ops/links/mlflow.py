"""Operator extra links: from a task to its MLflow run, its model version, or a URL it recorded (a report).

Airflow 3 resolves a task's links once, when the task finishes, in the task's own process (the task runner calls
``get_link`` and stores each URL in XCom under ``xcom_key``); the UI then reads that XCom. So these links read the
task's XCom and the MLflow connection there, and the UI never talks to MLflow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

#: The XCom key a task pushes a report's URL under, read by the default :class:`XComUrlLink`.
REPORT_URL_KEY = "report_url"


def _xcom(ti_key: TaskInstanceKey, key: str) -> Any:
    # The task runner's XCom (the configured backend), resolved where links are resolved: in the task's process.
    from airflow.sdk.execution_time.xcom import XCom

    return XCom.get_value(ti_key=ti_key, key=key)


def _result(ti_key: TaskInstanceKey) -> dict[str, Any]:
    value = _xcom(ti_key, "return_value")
    return value if isinstance(value, dict) else {}


def _hook(operator: BaseOperator):
    from mlops_ops.hooks.mlflow import MlflowHook

    return MlflowHook(mlflow_conn_id=getattr(operator, "mlflow_conn_id", MlflowHook.default_conn_name))


class MlflowRunLink(BaseOperatorLink):
    """Link to the MLflow run named by ``run_id`` in the task's result (training, gate, registration).

    Empty when the task returned no run id, or when no MLflow UI URL is known (see ``MlflowHook.ui_url``).
    """

    name = "MLflow run"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        run_id = _result(ti_key).get("run_id")
        return (_hook(operator).run_url(str(run_id)) or "") if run_id else ""


class MlflowModelVersionLink(BaseOperatorLink):
    """Link to the registered model version named by ``model_name`` and ``version`` (or ``to_version``, an
    alias move's target) in the task's result.

    Empty when the task returned no version, or without an MLflow UI URL.
    """

    name = "MLflow model version"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        result = _result(ti_key)
        version = result.get("version") or result.get("to_version")
        if not (result.get("model_name") and version):
            return ""
        return _hook(operator).model_version_url(str(result["model_name"]), str(version)) or ""


class XComUrlLink(BaseOperatorLink):
    """A link to whatever URL the task pushed to XCom under ``key``, e.g. a drift report.

    A task adopts it with ``operator_extra_links = (XComUrlLink("Drift report", "report_url"),)`` and
    ``context["ti"].xcom_push(key="report_url", value=url)`` in ``execute``. Only ``http(s)://`` URLs are
    linked: anything else (a local path, a ``file://`` URL) would be a dead or unsafe link in a browser.

    :param name: the button's label in the task's page.
    :param key: the XCom key holding the URL.
    """

    def __init__(self, name: str = "Report", key: str = REPORT_URL_KEY) -> None:
        self._name = name
        self.key = key

    @property
    def name(self) -> str:
        return self._name

    @property
    def xcom_key(self) -> str:
        # One stored link per key: two XComUrlLinks on one operator must not overwrite each other.
        return f"_link_XComUrlLink_{self.key}"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        url = _xcom(ti_key, self.key)
        return url if isinstance(url, str) and url.startswith(("http://", "https://")) else ""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, XComUrlLink) and (self.name, self.key) == (other.name, other.key)

    # BaseOperatorLink (attrs) declares no hash; links are kept in sets by Airflow's serialisation.
    def __hash__(self) -> int:  # type: ignore[override]
        return hash((type(self), self._name, self.key))
