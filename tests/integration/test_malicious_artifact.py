"""A malicious pickle planted in a real MLflow registry version never reaches ``champion``.

The version claims every credential a promotion looks at (gate passed, force with a reason), so only the
artifact scan stands between it and the alias. The pickle calls ``os.system`` on load; it is never loaded.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest

from mlops_ops.operators.promotion import PromoteOperator, PromotionRefused, RollbackOperator
from tests.unit.operators.support import make_ti

pytestmark = pytest.mark.integration
CONN = "mlflow_malicious"


class _Payload:
    def __init__(self, sentinel: str) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


@pytest.fixture
def registry(tmp_path, monkeypatch):
    """Model ``m``: v1 a clean cloudpickled scikit-learn model (champion), v2 the planted pickle."""
    import mlflow
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("AIRFLOW_CONN_" + CONN.upper(), json.dumps({"conn_type": "mlflow", "host": uri}))
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("e", artifact_location=(tmp_path / "artifacts").as_uri())
    client.create_registered_model("m")
    mlflow.set_tracking_uri(uri)

    features = np.arange(40, dtype=float).reshape(20, 2)
    with mlflow.start_run(experiment_id=experiment):
        clean = mlflow.sklearn.log_model(
            LogisticRegression().fit(features, np.arange(20) % 2),
            name="model",
            serialization_format="cloudpickle",
            pip_requirements=["scikit-learn"],
        )
    client.create_model_version("m", source=clean.model_uri, tags={"mlops.gate.passed": "true"})

    # v2: the same MLmodel, with model.pkl replaced by the payload, logged as a run's artifacts.
    planted = Path(mlflow.artifacts.download_artifacts(clean.model_uri, dst_path=str(tmp_path / "planted")))
    assert (planted / "model.pkl").is_file()
    (planted / "model.pkl").write_bytes(pickle.dumps(_Payload(str(tmp_path / "pwned"))))
    run = client.create_run(experiment)
    client.log_artifacts(run.info.run_id, str(planted), "model")
    client.create_model_version(
        "m",
        source=f"{run.info.artifact_uri}/model",
        run_id=run.info.run_id,
        tags={"mlops.gate.passed": "true"},
    )
    client.set_registered_model_alias("m", "champion", "1")
    return client


def _state(client):
    model = client.get_registered_model("m")
    versions = {v.version: dict(v.tags) for v in client.search_model_versions("name = 'm'")}
    return dict(model.aliases), dict(model.tags), versions


@pytest.mark.parametrize("force", [False, True], ids=["promotion", "forced promotion"])
def test_a_planted_pickle_never_becomes_champion(registry, tmp_path, force):
    before = _state(registry)
    with pytest.raises(PromotionRefused) as refused:
        PromoteOperator(
            task_id="promote",
            model_name="m",
            version="2",
            expected_version="1",
            actor="mallory",
            reason="looks fine",
            force=force,
            model_card=False,
            mlflow_conn_id=CONN,
        ).execute(context={"ti": make_ti("manual__promote", "promote")})
    message = str(refused.value)
    assert "v2 refused" in message and "nothing was changed" in message
    assert "model.pkl: CRITICAL" in message and "'system' from module 'posix'" in message
    assert _state(registry) == before  # champion still v1, no history, no version tag
    assert not (tmp_path / "pwned").exists()


def test_a_rollback_onto_the_planted_pickle_is_refused(registry, tmp_path):
    before = _state(registry)
    with pytest.raises(PromotionRefused, match=r"model\.pkl: CRITICAL"):
        RollbackOperator(
            task_id="rollback",
            model_name="m",
            reason="v1 misbehaves",
            target_version="2",
            mlflow_conn_id=CONN,
        ).execute(context={"ti": make_ti("manual__rollback", "rollback")})
    assert _state(registry) == before and not (tmp_path / "pwned").exists()


def test_a_clean_cloudpickled_model_is_promoted(registry):
    """The scan refuses what is unsafe, not every pickle: a clean cloudpickled model moves the alias."""
    registry.delete_registered_model_alias("m", "champion")
    result = PromoteOperator(
        task_id="promote",
        model_name="m",
        version="1",
        expected_version=None,
        actor="ana",
        model_card=False,
        mlflow_conn_id=CONN,
    ).execute(context={"ti": make_ti("manual__promote", "promote")})
    assert result["to_version"] == "1"
    assert {a: str(v) for a, v in registry.get_registered_model("m").aliases.items()} == {"champion": "1"}
