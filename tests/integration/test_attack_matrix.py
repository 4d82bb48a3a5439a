"""An attacker with write access to a real MLflow registry (a server on 127.0.0.1, as the MLflow UI and
``MlflowClient`` reach it) tries to get code run or a model served; each attempt is refused by the component
that must refuse it, with a message naming the problem, and nothing downstream changes.

The legitimate state is made by the project's own operators: RegisterOperator signs v1, v2 (gate passed) and v3
(registered without a gate); PromoteOperator makes v1 then v2 champion. The attacker can write any tag, create
any version from any artifact, move any alias, and (one case) rewrite files in the artifact store; the
signing key and the alias log live outside the registry and are not theirs.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import tempfile
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

from mlops_ops.core import storage
from mlops_ops.core.errors import ModelIntegrityError
from mlops_ops.core.model_artifacts import SIGNATURE_TAG, Registration
from mlops_ops.core.signing import SigningKey
from mlops_ops.hooks.mlflow import MlflowHook
from mlops_ops.hooks.trust import TrustHook
from mlops_ops.operators.promotion import PromoteOperator, PromotionRefused, RollbackOperator
from mlops_ops.operators.registry import RegisterOperator
from mlops_ops.operators.scoring import BatchScoringFailed, PinModelVersionOperator
from tests.e2e.throwaway_services import MlflowServer, python_environment
from tests.trust_support import isolated_trust
from tests.unit.operators.support import make_ti
from tests.webhook_support import Receiver

pytestmark = pytest.mark.integration
CONN = "mlflow_attack"
MODEL = "victim"


class _Payload:
    def __init__(self, sentinel: str) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


def _train_and_log(client, experiment_id: str, c: float) -> dict:
    """A logged skops model and the training result TrainOperator would have pushed for it."""
    import mlflow
    import numpy as np
    import skops.io
    from sklearn.linear_model import LogisticRegression

    features = np.arange(40, dtype=float).reshape(20, 2)
    model = LogisticRegression(C=c).fit(features, np.arange(20) % 2)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            pip_requirements=["scikit-learn"],
            skops_trusted_types=skops.io.get_untrusted_types(data=skops.io.dumps(model)),
        )
    with tempfile.TemporaryDirectory() as folder:
        digest = storage.directory_sha256(
            mlflow.artifacts.download_artifacts(info.model_uri, dst_path=folder)
        )
    return {
        "run_id": run.info.run_id,
        "model_uri": info.model_uri,
        "model_name": MODEL,
        "artifact_sha256": digest,
        "data_version": f"sha256:data-{c}",
        "training_key": f"key-{c}",
        "code_revision": "unknown",
    }


def _register(training: dict, passed: bool | None, run: str) -> str:
    decision = {"passed": True, "run_id": training["run_id"], "checks": []} if passed else None
    return RegisterOperator(
        task_id="register",
        training=training,
        decision=decision,
        require_gate=passed is not None,
        mlflow_conn_id=CONN,
    ).execute(context={"ti": make_ti(run, "register")})["version"]


def _promote(version: str, expected: str | None, run: str, **options) -> dict:
    return PromoteOperator(
        task_id="promote",
        model_name=MODEL,
        version=version,
        expected_version=expected,
        actor=options.pop("actor", "ana"),
        reason=options.pop("reason", "better"),
        model_card=False,
        mlflow_conn_id=CONN,
        **options,
    ).execute(context={"ti": make_ti(run, "promote")})


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    import mlflow

    home = tmp_path_factory.mktemp("attack")
    server = MlflowServer(home / "mlflow", python_environment(home))
    server.start()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", json.dumps({"conn_type": "mlflow", "host": server.url}))
        patch.setenv("MLFLOW_TRACKING_URI", server.url)
        isolated_trust(patch, home / "trust")
        try:
            mlflow.set_tracking_uri(server.url)
            client = mlflow.MlflowClient(tracking_uri=server.url, registry_uri=server.url)
            experiment = client.create_experiment("attack")
            trainings = [_train_and_log(client, experiment, c) for c in (1.0, 2.0, 3.0)]
            versions = [
                _register(trainings[0], True, "manual__r1"),
                _register(trainings[1], True, "manual__r2"),
                _register(trainings[2], None, "manual__r3"),  # registered without a gate
            ]
            _promote(versions[0], None, "manual__p1")
            _promote(versions[1], versions[0], "manual__p2")
            yield SimpleNamespace(
                client=client,
                server=server,
                home=home,
                experiment=experiment,
                trainings=trainings,
                versions=versions,
            )
        finally:
            server.stop()


def logged_champion() -> str:
    return TrustHook().alias_history(MODEL, "champion")[-1].to_version


@pytest.fixture
def attack(registry, tmp_path):
    """Each attack starts from the legitimate state and is undone after (the alias set back as the log says)."""
    yield registry
    registry.client.set_registered_model_alias(MODEL, "champion", logged_champion())
    assert not (tmp_path / "pwned").exists(), "an attacker's payload ran"


def registry_state(client) -> tuple:
    model = client.get_registered_model(MODEL)
    return {a: str(v) for a, v in model.aliases.items()}, len(TrustHook().alias_history(MODEL, "champion"))


def planted_version(registry, tmp_path, tags: dict | None = None) -> str:
    """A version whose ``model.skops`` is a pickle that runs ``touch pwned``, with the digest tag the attacker
    computed and the gate tag set: every tag a registry writer can write."""
    import mlflow

    source = registry.client.get_model_version_download_uri(MODEL, registry.versions[1])
    folder = Path(
        mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(tmp_path / "planted"))
    )
    (folder / "model.skops").write_bytes(pickle.dumps(_Payload(str(tmp_path / "pwned"))))
    run = registry.client.create_run(registry.experiment)
    registry.client.log_artifacts(run.info.run_id, str(folder), "model")
    version = registry.client.create_model_version(
        MODEL,
        source=f"{run.info.artifact_uri}/model",
        run_id=run.info.run_id,
        tags={
            "mlops.gate.passed": "true",
            "mlops.artifact_sha256": storage.directory_sha256(folder),
            **(tags or {}),
        },
    )
    return str(version.version)


def pin_champion():
    return PinModelVersionOperator(task_id="pin", model_name=MODEL, mlflow_conn_id=CONN).execute(
        context={"ti": make_ti("scheduled__score", "pin")}
    )


def serving_slot():
    from mlops_ops.serving import ModelSlot
    from tests.serving_support import flights_config

    return ModelSlot(flights_config(model_name=MODEL, mlflow_conn_id=CONN, compile_trees=False))


# --- the champion alias moved outside the project ---------------------------------------------------------


@pytest.mark.parametrize("route", ["MlflowClient", "the MLflow UI's REST call"])
def test_a_champion_moved_to_a_planted_version_is_refused_by_scoring_and_serving(attack, tmp_path, route):
    slot = serving_slot()
    assert slot.refresh() and slot.current.pinned.version == logged_champion()
    planted = planted_version(attack, tmp_path)
    if route == "MlflowClient":
        attack.client.set_registered_model_alias(MODEL, "champion", planted)
    else:  # what the UI's "Promote model" / alias editor sends
        request = urllib.request.Request(
            f"{attack.server.url}/ajax-api/2.0/mlflow/registered-models/alias",
            data=json.dumps({"name": MODEL, "alias": "champion", "version": planted}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        urllib.request.urlopen(request, timeout=10).close()
    assert str(attack.client.get_model_version_by_alias(MODEL, "champion").version) == planted

    with pytest.raises(BatchScoringFailed, match=f"points at version {planted}, but the last signed move"):
        pin_champion()
    assert slot.refresh() is False
    assert "moved outside the project" in slot.last_error and slot.current.pinned.version == logged_champion()
    assert not (tmp_path / "pwned").exists()


def test_a_champion_moved_to_an_older_signed_version_is_refused_then_repaired_by_a_promotion(attack):
    older = attack.versions[0]
    attack.client.set_registered_model_alias(MODEL, "champion", older)
    with pytest.raises(BatchScoringFailed, match="moved outside the project"):
        pin_champion()
    champion = logged_champion()
    result = _promote(champion, None, "manual__repair", reason="repair")
    assert result["to_version"] == champion
    assert pin_champion()["version"] == champion


def test_the_api_alerts_once_when_the_alias_is_moved_and_once_when_it_is_repaired(attack, monkeypatch):
    from mlops_ops.serving import ModelSlot
    from tests.serving_support import flights_config

    with Receiver() as receiver:
        monkeypatch.setenv(
            "AIRFLOW_CONN_SERVING_ALERTS",
            json.dumps({"conn_type": "mlops_webhook", "host": receiver.url, "extra": {"timeout": 5}}),
        )
        slot = ModelSlot(
            flights_config(
                model_name=MODEL,
                mlflow_conn_id=CONN,
                compile_trees=False,
                alert_webhook_conn_id="serving_alerts",
            )
        )
        champion = logged_champion()
        assert slot.refresh() and receiver.payloads == []
        older = attack.versions[0]
        attack.client.set_registered_model_alias(MODEL, "champion", older)
        assert slot.refresh() is False and slot.refresh() is False  # every poll refuses; one alert
        assert slot.current.pinned.version == champion
        [alert] = receiver.payloads
        assert alert["text"].startswith(f"{MODEL}@champion: the prediction API refused")
        assert f"keeps serving v{champion}" in alert["text"]
        assert f"points at version {older}, but the last signed move" in alert["text"]

        _promote(champion, None, "manual__repair_alerted", reason="repair")
        assert slot.refresh() is False  # the same version: nothing to reload, the refusal is over
        assert slot.last_error is None
        assert receiver.payloads[1:] == [
            {"text": f"{MODEL}@champion: the prediction API accepts version {champion} again"}
        ]


# --- versions the project never signed ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["promotion", "forced promotion", "rollback"])
def test_a_planted_version_never_becomes_champion(attack, tmp_path, kind):
    planted = planted_version(attack, tmp_path)
    before = registry_state(attack.client)
    with pytest.raises(PromotionRefused, match=f"{MODEL} version {planted} is refused: it is not signed"):
        if kind == "rollback":
            RollbackOperator(
                task_id="rollback", model_name=MODEL, reason="x", target_version=planted, mlflow_conn_id=CONN
            ).execute(context={"ti": make_ti("manual__rb", "rollback")})
        else:
            _promote(
                planted, logged_champion(), "manual__evil", force=kind == "forced promotion", actor="mallory"
            )
    assert registry_state(attack.client) == before


def test_a_signature_copied_from_a_signed_version_is_refused(attack, tmp_path):
    signature = attack.client.get_model_version(MODEL, attack.versions[1]).tags[SIGNATURE_TAG]
    planted = planted_version(attack, tmp_path, {SIGNATURE_TAG: signature})
    with pytest.raises(PromotionRefused, match="copied from another version"):
        _promote(planted, logged_champion(), "manual__copy", force=True, actor="mallory")


def test_a_version_signed_with_the_attackers_own_key_is_refused(attack, tmp_path):
    planted = planted_version(attack, tmp_path)
    digest = attack.client.get_model_version(MODEL, planted).tags["mlops.artifact_sha256"]
    forged = Registration(MODEL, planted, digest, "run", "data", gate_passed=True).sign(SigningKey.generate())
    attack.client.set_model_version_tag(MODEL, planted, SIGNATURE_TAG, forged)
    with pytest.raises(PromotionRefused, match="which is not among the trusted keys"):
        _promote(planted, logged_champion(), "manual__forged", actor="mallory")


def test_a_forged_gate_tag_does_not_pass_the_gate(attack):
    ungated = attack.versions[2]
    attack.client.set_model_version_tag(MODEL, ungated, "mlops.gate.passed", "true")
    before = registry_state(attack.client)
    with pytest.raises(PromotionRefused, match="has not passed an evaluation gate"):
        _promote(ungated, logged_champion(), "manual__gate")
    assert registry_state(attack.client) == before


def test_forged_history_tags_do_not_steer_a_rollback(attack, tmp_path):
    """The registered-model history tags are a readable copy: a rollback follows the signed log."""
    planted = planted_version(attack, tmp_path)
    champion = logged_champion()
    forged = {
        "model_name": MODEL,
        "alias": "champion",
        "from_version": planted,
        "to_version": champion,
        "kind": "promotion",
        "actor": "ana",
        "reason": "",
        "at": "2026-01-01",
        "airflow_run": "",
        "sequence": 99,
    }
    attack.client.set_registered_model_tag(MODEL, "mlops.history.champion.000099", json.dumps(forged))
    result = RollbackOperator(
        task_id="rollback", model_name=MODEL, reason="drill", mlflow_conn_id=CONN
    ).execute(context={"ti": make_ti("manual__drill", "rollback")})
    assert result["from_version"] == champion and result["to_version"] != planted
    _promote(champion, result["to_version"], "manual__after_drill")  # back to where it was


# --- the artifact store and the log ------------------------------------------------------------------------


def test_an_artifact_rewritten_in_the_store_after_signing_is_refused_at_load(attack, tmp_path):
    """With write access to the artifact store too: a signed version's files changed in place."""
    ungated = attack.versions[2]
    location = attack.client.get_model_version_download_uri(MODEL, ungated)
    stored = attack.server.folder / "artifacts" / location.removeprefix("mlflow-artifacts:/") / "model.skops"
    original = stored.read_bytes()
    try:
        stored.write_bytes(original + b"\0")
        pinned = TrustHook().pin(MlflowHook(CONN), MODEL, version=ungated)
        with pytest.raises(ModelIntegrityError, match="was modified or corrupted"):
            TrustHook().load(MlflowHook(CONN), pinned, str(tmp_path / "download"))
        with pytest.raises(PromotionRefused, match="was modified or corrupted"):
            _promote(ungated, logged_champion(), "manual__swap", force=True, actor="oncall")
    finally:
        stored.write_bytes(original)


def test_an_edited_alias_log_refuses_every_move_and_every_pin(attack):
    log = Path(TrustHook().alias_log.describe())
    original = log.read_text()
    lines = [json.loads(line) for line in original.splitlines()]
    envelope = json.loads(lines[-1]["envelope"])
    envelope["payload"]["actor"] = "someone else"
    lines[-1]["envelope"] = json.dumps(envelope)
    try:
        log.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
        with pytest.raises(BatchScoringFailed, match="does not match what was signed"):
            pin_champion()
        with pytest.raises(PromotionRefused, match="no move is made: alias log"):
            _promote(attack.versions[0], logged_champion_unchecked(original), "manual__log")
    finally:
        log.write_text(original)


def logged_champion_unchecked(text: str) -> str:
    last = [json.loads(line) for line in text.splitlines() if '"champion"' in line][-1]
    return json.loads(last["envelope"])["payload"]["to_version"]


def test_a_version_planted_under_this_training_runs_tag_is_not_adopted_or_signed(attack, tmp_path):
    training = _train_and_log(attack.client, attack.experiment, 4.0)
    planted = planted_version(attack, tmp_path, {"mlops.training_run_id": training["run_id"]})
    version = _register(training, True, "manual__r4")
    assert version != planted
    assert SIGNATURE_TAG not in attack.client.get_model_version(MODEL, planted).tags
    assert str(attack.client.get_model_version_by_alias(MODEL, "challenger").version) == version
    shutil.rmtree(tmp_path / "planted", ignore_errors=True)
