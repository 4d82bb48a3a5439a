"""The "Models" view of the Airflow UI: a small FastAPI app served by Airflow's API server (registered by the
wheel's ``airflow.plugins`` entry point, :mod:`mlops_ops.ui.plugin`).

It reads the registry through :class:`~mlops_ops.hooks.mlflow.MlflowHook` (connection ``mlflow_default``; the
embedded MLflow only in the embedded profile) and answers only requests that carry an Airflow session: the UI's
JWT cookie (the view is embedded in the Airflow UI as an iframe on the same origin) or an ``Authorization: Bearer``
token, checked by Airflow's own auth manager, which must also allow the user the ``PLUGINS`` view.

The plugin wraps :func:`create_app` in :class:`~mlops_ops.ui.lazy.LazyAsgiApp`, so this module (and FastAPI) is
imported only by the API server, on the view's first request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse

#: The scripts the view serves itself (the page needs nothing beyond the Airflow host): Apache ECharts, copied
#: into the package by ``make ui-assets`` (npm, pinned by ``frontend/package-lock.json``), and the view's own.
SCRIPTS = {
    "echarts.min.js": Path(__file__).parent / "static" / "echarts.min.js",
    "models_view.js": Path(__file__).parent / "scripts" / "models_view.js",
}


async def airflow_user(request: Request) -> Any:
    """The Airflow user of the request's session token (the UI's cookie, or a bearer token).

    :raises HTTPException: 401 without a valid token, 403 when the user may not see plugin views.
    """
    # Imported here: Airflow's security module costs seconds to import, and only a request needs it.
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import resolve_user_from_token

    header = request.headers.get("authorization", "")
    token = header[7:] if header.lower().startswith("bearer ") else request.cookies.get(COOKIE_NAME_JWT_TOKEN)
    user = await resolve_user_from_token(token)
    if not get_auth_manager().is_authorized_view(access_view=AccessView.PLUGINS, user=user):
        raise HTTPException(status_code=403, detail="not allowed to see plugin views")
    return user


def create_app(
    mlflow_conn_id: str = "mlflow_default",
    trust_conn_id: str = "mlops_trust_default",
    storage_conn_id: str | None = "aws_default",
):
    """The FastAPI app: ``GET /`` the HTML page of every model (a drift sparkline each), ``GET /api/models`` the
    same as JSON, ``GET /model/<name>`` one model's page of charts, ``GET /api/models/<name>/charts`` its figures
    as JSON, ``GET /static/<script>`` the pages' scripts.

    :param mlflow_conn_id: Airflow connection id of the MLflow registry.
    :param trust_conn_id: Airflow connection id of the deployment's trust rules: the alias history shown is
        the signed alias log, and an alias the log does not name is marked.
    :param storage_conn_id: the connection of the drift report root when it is in an object store (the
        heat map's drifted-column counts, new categories and Airflow-run links are read from its result files).
    """

    def overviews():
        from mlops_ops.hooks.mlflow import MlflowHook
        from mlops_ops.hooks.trust import TrustHook

        hook = MlflowHook(mlflow_conn_id=mlflow_conn_id)
        return hook, hook.model_overviews(trust=TrustHook(trust_conn_id=trust_conn_id))

    def overview_page() -> str:
        from mlops_ops.core.model_overview import render_page
        from mlops_ops.ui.model_data import sparklines

        hook, models = overviews()
        return render_page(
            models,
            hook.registry_uri,
            sparklines=sparklines(hook, [model.name for model in models]),
            scripts=("static/echarts.min.js", "static/models_view.js"),
        )

    def charts(name: str) -> dict[str, Any]:
        from mlops_ops.hooks.mlflow import MlflowHook
        from mlops_ops.hooks.trust import TrustHook
        from mlops_ops.ui.model_data import gather

        return gather(
            MlflowHook(mlflow_conn_id=mlflow_conn_id),
            name,
            TrustHook(trust_conn_id=trust_conn_id),
            storage_conn_id=storage_conn_id,
        )

    app = FastAPI(title="mlops-ops models", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/", response_class=HTMLResponse, dependencies=[Depends(airflow_user)])
    async def page() -> str:
        return await run_in_threadpool(overview_page)

    @app.get("/model/{name}", response_class=HTMLResponse, dependencies=[Depends(airflow_user)])
    async def model_page(name: str) -> str:
        from mlops_ops.ui.model_page import render_model_page

        try:
            data = await run_in_threadpool(charts, name)
        except LookupError as err:
            raise HTTPException(status_code=404, detail="no registered model of that name") from err
        return render_model_page(data, "../static")

    @app.get("/api/models/{name}/charts", dependencies=[Depends(airflow_user)])
    async def model_charts(name: str) -> dict[str, Any]:
        try:
            return await run_in_threadpool(charts, name)
        except LookupError as err:
            raise HTTPException(status_code=404, detail="no registered model of that name") from err

    @app.get("/static/{file}", dependencies=[Depends(airflow_user)])
    async def script(file: str) -> FileResponse:
        path = SCRIPTS.get(file)
        if path is None or not path.is_file():
            raise HTTPException(
                status_code=404, detail="no such script (make ui-assets builds echarts.min.js)"
            )
        return FileResponse(
            path, media_type="text/javascript", headers={"Cache-Control": "private, max-age=3600"}
        )

    @app.get("/api/models", dependencies=[Depends(airflow_user)])
    async def models() -> list[dict[str, Any]]:
        _, found = await run_in_threadpool(overviews)
        return [model.to_dict() for model in found]

    return app
