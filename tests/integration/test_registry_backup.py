"""``mlops-ops registry export`` / ``import``: a real registry survives a round trip through a backup.

The source registry is made by the operators themselves (train, gate, register, promote with a model card,
a second promotion, a rollback), so it holds what production holds: aliases, a three-move history, lineage
tags, model cards. It is exported to a local folder and to S3 (moto's server), and each backup is restored into
an empty MLflow, where the champion loads, passes its sha256 check and predicts exactly what it did before.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path

import pytest

from mlops_ops import cli
from mlops_ops.core import lineage, promotion, registry_backup, storage
from mlops_ops.core.modelspec import ModelSpec
from tests.moto_s3 import moto_s3
from tests.unit.operators.support import CONN_ID, flights_spec, make_ti, train_and_gate

pytestmark = pytest.mark.integration
MODEL = "flight_delay"


def _connection(monkeypatch, conn_id: str, folder: Path) -> None:
    connection = {
        "conn_type": "mlflow",
        "host": f"sqlite:///{folder}/mlflow.db",
        "extra": {"artifact_root": (folder / "artifacts").as_uri()},
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))


def _client(folder: Path):
    import mlflow

    uri = f"sqlite:///{folder}/mlflow.db"
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> dict:
    """A registry built by the operators: v1 and v2 trained, both promoted in turn, then rolled back to v1."""
    from include.flights.data import flights
    from mlops_ops.operators.promotion import PromoteOperator, RollbackOperator
    from mlops_ops.operators.registry import RegisterOperator

    root = tmp_path_factory.mktemp("registry-source")
    for month in (1, 2):
        path = root / "data" / f"month=2013-{month:02d}" / "part-0.parquet"
        path.parent.mkdir(parents=True)
        flights(month).head(3000).to_parquet(path, index=False)
    with pytest.MonkeyPatch.context() as patch:
        _connection(patch, CONN_ID, root)
        trainings = []
        for number, revision in enumerate(("a" * 40, "b" * 40), start=1):
            # Two code revisions, so the second training is a new version rather than a reuse of the first.
            patch.setenv("MLOPS_CODE_REVISION", revision)
            training, decision = train_and_gate(root, f"manual__v{number}")
            trainings.append(training)
            RegisterOperator(
                task_id="register", training=training, decision=decision, mlflow_conn_id=CONN_ID
            ).execute(context={"ti": make_ti(f"manual__v{number}", "register")})
            PromoteOperator(
                task_id="promote",
                model_name=MODEL,
                version=str(number),
                expected_version=str(number - 1) if number > 1 else None,
                actor="ana",
                reason=f"promotion {number}",
                mlflow_conn_id=CONN_ID,
            ).execute(context={"ti": make_ti(f"manual__promote{number}", "promote")})
        RollbackOperator(
            task_id="rollback", model_name=MODEL, reason="v2 misbehaves", actor="bo", mlflow_conn_id=CONN_ID
        ).execute(context={"ti": make_ti("manual__rollback", "rollback")})
    return {"root": root, "trainings": trainings}


def _snapshot(client) -> dict:
    model = client.get_registered_model(MODEL)
    versions = {}
    for version in client.search_model_versions(f"name = '{MODEL}'"):
        tags = dict(version.tags)
        # Restored runs have new ids: the version names its new training run and keeps the old one.
        old_run = tags.pop(registry_backup.SOURCE_RUN_TAG, None)
        if old_run:
            assert tags[lineage.TRAINING_RUN] == client.get_run(version.run_id).info.run_id
            tags[lineage.TRAINING_RUN] = old_run
        run = client.get_run(version.run_id).data
        versions[version.version] = {
            "tags": tags,
            "description": version.description,
            "params": run.params,
            "metrics": run.metrics,
        }
    return {
        "aliases": {alias: str(number) for alias, number in model.aliases.items()},
        "tags": dict(model.tags),
        "versions": versions,
    }


def _predictions(conn_id: str, evaluation_uri: str):
    """The champion of ``conn_id``, downloaded, sha256-verified and loaded, on held-out flights."""
    import tempfile

    from mlops_ops.core import training
    from mlops_ops.core.model_artifacts import load_verified
    from mlops_ops.hooks.mlflow import MlflowHook

    hook = MlflowHook(mlflow_conn_id=conn_id)
    pinned = hook.pin_version(MODEL, alias="champion")
    frame = storage.read_parquet([evaluation_uri])
    with tempfile.TemporaryDirectory() as folder:
        model = load_verified(hook.download_model(pinned, folder), pinned)
    return pinned.version, training.positive_probability(
        model, training.features_frame(frame, ModelSpec.from_dict(flights_spec()))
    )


@pytest.mark.parametrize("where", ["local", "s3"])
def test_round_trip_keeps_champion_history_lineage_and_predictions(
    source, tmp_path, monkeypatch, where, capsys
):
    import numpy as np

    _connection(monkeypatch, CONN_ID, source["root"])
    target = tmp_path / "restored"
    _connection(monkeypatch, "mlflow_restored", target)
    with moto_s3(monkeypatch, "backups") if where == "s3" else nullcontext():
        uri = "s3://backups/registry/2026-11-26" if where == "s3" else str(tmp_path / "backup")
        assert cli.main(["registry", "export", uri, "--mlflow-conn-id", CONN_ID]) == 0
        assert "1 model(s) (flight_delay), 2 version(s), 2 run(s)" in capsys.readouterr().out
        assert cli.main(["registry", "import", uri, "--mlflow-conn-id", "mlflow_restored"]) == 0
        assert (
            "aliases: flight_delay@challenger -> v2, flight_delay@champion -> v1" in capsys.readouterr().out
        )

        before, after = _snapshot(_client(source["root"])), _snapshot(_client(target))
        assert after == before
        assert after["aliases"] == {"champion": "1", "challenger": "2"}
        moves = promotion.history(after["tags"], "champion")
        assert [(m.from_version, m.to_version, m.kind) for m in moves] == [
            (None, "1", "promotion"),
            ("1", "2", "promotion"),
            ("2", "1", "rollback"),
        ]
        evaluation_uri = source["trainings"][0]["evaluation_uri"]
        version, restored = _predictions("mlflow_restored", evaluation_uri)
        _, original = _predictions(CONN_ID, evaluation_uri)
        assert version == "1" and len(restored) > 1000
        assert np.array_equal(restored, original)

        # A second restore into the now-filled MLflow is refused, and changes nothing.
        assert cli.main(["registry", "import", uri, "--mlflow-conn-id", "mlflow_restored"]) == 1
        assert "already has registered model(s) ['flight_delay']" in capsys.readouterr().err
        assert _snapshot(_client(target)) == after
        # So is an export into a folder that already holds a backup.
        assert cli.main(["registry", "export", uri, "--mlflow-conn-id", CONN_ID]) == 1
        assert "is not empty" in capsys.readouterr().err


def test_an_interrupted_or_damaged_backup_is_never_restored(source, tmp_path, monkeypatch):
    _connection(monkeypatch, CONN_ID, source["root"])
    backup = tmp_path / "backup"
    registry_backup.export_registry(_client(source["root"]), str(backup))
    target = tmp_path / "restored"
    target.mkdir()

    manifest = (backup / registry_backup.MANIFEST).read_bytes()
    (backup / registry_backup.MANIFEST).unlink()  # the export died before its last write
    with pytest.raises(registry_backup.BackupError, match="holds no manifest.json"):
        registry_backup.import_registry(_client(target), str(backup), (target / "artifacts").as_uri())
    (backup / registry_backup.MANIFEST).write_bytes(manifest)

    model_file = next((backup / "versions" / MODEL / "1").rglob("model.skops"))
    model_file.write_bytes(model_file.read_bytes() + b"tampered")
    with pytest.raises(registry_backup.BackupError, match="the backup is damaged; nothing was restored"):
        registry_backup.import_registry(_client(target), str(backup), (target / "artifacts").as_uri())
    assert _client(target).search_registered_models() == []
    assert _client(target).search_runs([e.experiment_id for e in _client(target).search_experiments()]) == []


def test_version_numbers_survive_a_deleted_version(tmp_path):
    """v1 was deleted in the source: the restore keeps v2 as v2 (aliases and history name versions by number)."""
    source, target = tmp_path / "source", tmp_path / "target"
    source.mkdir()
    target.mkdir()
    client = _client(source)
    client.create_registered_model("m", tags={"owner": "ana"})
    for number in (1, 2):
        folder = tmp_path / f"model{number}"
        folder.mkdir()
        (folder / "MLmodel").write_text(f"flavors: {{}}\nversion: {number}\n")
        client.create_model_version("m", source=folder.as_uri(), tags={"n": str(number)})
    client.delete_model_version("m", "1")
    client.set_registered_model_alias("m", "champion", "2")

    registry_backup.export_registry(client, str(tmp_path / "backup"))
    restored = _client(target)
    summary = registry_backup.import_registry(
        restored, str(tmp_path / "backup"), (target / "artifacts").as_uri()
    )

    assert summary.aliases == {"m@champion": "2"}
    assert [(str(v.version), v.tags["n"]) for v in restored.search_model_versions("name = 'm'")] == [
        ("2", "2")
    ]
    assert str(restored.get_registered_model("m").aliases["champion"]) == "2"
    assert restored.get_registered_model("m").tags == {"owner": "ana"}
