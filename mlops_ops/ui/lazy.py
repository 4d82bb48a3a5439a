"""An ASGI app built on its first request, for Airflow plugins.

Airflow imports every plugin in every process, each task's included, but only its API server serves a plugin's
FastAPI app: building the app (and importing FastAPI and the app's dependencies) waits until it is called.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class LazyAsgiApp:
    """An ASGI app that builds the real one with ``factory`` on its first call.

    :param factory: returns the ASGI app (a FastAPI app).
    """

    def __init__(self, factory: Callable[[], Any]) -> None:
        self.factory = factory
        self._app: Any = None

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if self._app is None:
            self._app = self.factory()
        await self._app(scope, receive, send)
