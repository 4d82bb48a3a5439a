"""A real registry for the stream scorer's tests: a second team's binary model (no feature store, requests built
from its signature) logged to an MLflow SQLite registry, signed and moved to ``champion`` as RegisterOperator and
PromoteOperator do, under an isolated trust folder; and unique Redis stream names, deleted afterwards."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mlops_dev.logged_models import sqlite_registry
from mlops_dev.shop_model import FEATURES, MODEL, log_shop_model
from mlops_ops.hooks.trust import TRUST_HOME_ENV
from tests.trust_support import record_alias, sign_version

MLFLOW_CONN_ID = "mlflow_stream"


def event_data(frame: pd.DataFrame, index: int) -> dict[str, Any]:
    """One row as a producer sends it in an event's ``data``."""
    row = frame.iloc[index]
    return {name: (row[name] if isinstance(row[name], str) else float(row[name])) for name in FEATURES}


@dataclass
class StreamRegistry:
    """The registry, its versions and what a scorer process needs in its environment."""

    folder: Path
    uri: str
    client: Any
    experiment: str
    models: dict[str, Any] = field(default_factory=dict)

    @property
    def environment(self) -> dict[str, str]:
        return {
            TRUST_HOME_ENV: str(self.folder / "trust"),
            f"AIRFLOW_CONN_{MLFLOW_CONN_ID.upper()}": json.dumps({"conn_type": "mlflow", "host": self.uri}),
        }

    def register(self, max_iter: int, seed: int = 0, *, promote: bool = True, tamper: bool = False) -> str:
        """Train, log, register and sign a version (``tamper``: signed over another artifact's digest); move
        ``champion`` to it when ``promote``."""
        model, logged = log_shop_model(self.experiment, max_iter, seed)
        version = logged.version
        sign_version(self.client, MODEL, version, digest="sha256:" + "0" * 64 if tamper else None)
        self.models[version] = model
        if promote:
            self.promote(version)
        return version

    def promote(self, version: str) -> None:
        record_alias(MODEL, "champion", version)
        self.client.set_registered_model_alias(MODEL, "champion", version)

    def probability(self, version: str, data: dict[str, Any]) -> float:
        """What ``version`` predicts for one event's data (the model's own predict_proba)."""
        frame = pd.DataFrame([data])[FEATURES]
        return float(self.models[version].predict_proba(frame)[0, 1])


def build_registry(folder: Path) -> StreamRegistry:
    """An empty registry in ``folder``; the caller sets ``$MLOPS_TRUST_HOME`` (see ``environment``) first."""
    uri, client, experiment = sqlite_registry(folder, "stream")
    return StreamRegistry(folder, uri, client, experiment)


@contextmanager
def registered_champion(folder: Path) -> Iterator[StreamRegistry]:
    """A registry in ``folder`` with a signed champion, its connection and trust folder in the environment for
    the ``with`` block (what a module fixture of the scorer's tests yields)."""
    import pytest

    registry = build_registry(folder)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in registry.environment.items():
            patch.setenv(name, value)
        patch.setenv("MLOPS_PROFILE", "embedded")
        registry.register(max_iter=15)
        yield registry


def stream_names() -> dict[str, str]:
    """Unique input, output and dead-letter stream names (one hash tag, as Redis Cluster needs)."""
    tag = uuid.uuid4().hex[:10]
    return {
        "stream": f"{{test-{tag}}}:events",
        "output": f"{{test-{tag}}}:predictions",
        "dead_letter": f"{{test-{tag}}}:dead",
    }


def scorer_command(
    names: dict[str, str], group: str, consumer: str, *extra: str, port: int = 6379
) -> list[str]:
    """``mlops-ops stream`` for the test model (as a process, via ``python -m mlops_ops.cli``)."""
    import sys

    return [
        sys.executable,
        "-m",
        "mlops_ops.cli",
        "stream",
        "--model",
        MODEL,
        "--mlflow-conn-id",
        MLFLOW_CONN_ID,
        "--source",
        f"redis://127.0.0.1:{port}/0",
        "--stream",
        names["stream"],
        "--group",
        group,
        "--consumer",
        consumer,
        "--output",
        names["output"],
        "--dead-letter",
        names["dead_letter"],
        "--poll-seconds",
        "1",
        *extra,
    ]


def process_environment(registry: StreamRegistry) -> dict[str, str]:
    return {**os.environ, **registry.environment, "MLOPS_PROFILE": "embedded"}
