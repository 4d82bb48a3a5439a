"""``mlops-ops registry export`` / ``import``: a real registry survives a round trip through a signed backup, and
a backup altered in any way is refused before anything is created.

The source registry is made by the operators themselves (train, gate, register, promote with a model card,
a second promotion, a rollback), so it holds what production holds: aliases, a three-move history, lineage
tags, model cards, signed registrations and a signed alias log. It is exported to a local folder and to S3
(moto's server), and each backup is restored into an empty MLflow on a host that holds only the public key,
where the champion is pinned and loaded through the trusted loader and predicts exactly what it did before.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from contextlib import nullcontext
from pathlib import Path

import pytest

from mlops_ops import cli
from mlops_ops.core import alias_log, lineage, promotion, registry_backup, storage
from mlops_ops.core.modelspec import ModelSpec
from mlops_ops.core.signing import SigningKey, VerificationKeys
from mlops_ops.hooks.registry_backup import export_registry, import_registry
from mlops_ops.hooks.trust import ALIAS_LOG_FILE, VERIFICATION_KEYS_FILE, TrustHook, embedded_signing_key
from tests.flights_spec import flights_spec
from tests.moto_s3 import moto_s3
from tests.trust_support import isolated_trust
from tests.unit.operators.support import CONN_ID, make_ti, train_and_gate

pytestmark = pytest.mark.integration
MODEL = "flight_delay"
ALIASES = ("champion", "challenger")


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
        isolated_trust(patch, root / "trust")  # this registry's own key and alias log
        trainings = []
        for number, revision in enumerate(("a" * 40, "b" * 40), start=1):
            # Two code revisions, so the second training is a new version rather than a reuse of the first.
            patch.setenv("MLOPS_CODE_REVISION", revision)
            training, decision = train_and_gate(root, f"manual__v{number}", flights_spec())
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
        log = {alias: TrustHook().alias_log.read(MODEL, alias) for alias in ALIASES}
    key = embedded_signing_key(root / "trust", create=False)
    return {"root": root, "trainings": trainings, "trust": root / "trust", "key": key, "log": log}


def _verifying_host(folder: Path, *public_keys: str) -> Path:
    """A trust folder that holds only public keys (a restore host, before it signs anything) and no alias log."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / VERIFICATION_KEYS_FILE).write_text("".join(f"{key}\n" for key in public_keys))
    return folder


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
    """The champion of ``conn_id``, pinned and loaded the way every consumer does (signed registration, signed
    alias log, digest, scan), on held-out flights."""
    import tempfile

    from mlops_ops.core import training
    from mlops_ops.hooks.mlflow import MlflowHook

    hook, trust = MlflowHook(mlflow_conn_id=conn_id), TrustHook()
    pinned = trust.pin(hook, MODEL, alias="champion")
    frame = storage.read_parquet([evaluation_uri])
    with tempfile.TemporaryDirectory() as folder:
        trusted, _ = trust.load(hook, pinned, folder)
    return pinned.version, training.positive_probability(
        trusted.model, training.features_frame(frame, ModelSpec.from_dict(flights_spec()))
    )


@pytest.mark.parametrize("where", ["local", "s3"])
def test_round_trip_keeps_champion_history_lineage_signatures_and_predictions(
    source, tmp_path, monkeypatch, where, capsys
):
    import numpy as np

    _connection(monkeypatch, CONN_ID, source["root"])
    target = tmp_path / "restored"
    _connection(monkeypatch, "mlflow_restored", target)
    key_id = source["key"].key_id
    records = sum(len(envelopes) for envelopes in source["log"].values())
    assert records >= 4  # two promotions and a rollback of champion, a registration of challenger at least
    with moto_s3(monkeypatch, "backups") if where == "s3" else nullcontext():
        uri = "s3://backups/registry/2026-11-26" if where == "s3" else str(tmp_path / "backup")
        isolated_trust(monkeypatch, source["trust"])
        assert cli.main(["registry", "export", uri, "--mlflow-conn-id", CONN_ID]) == 0
        out = capsys.readouterr().out
        assert "1 model(s) (flight_delay), 2 version(s), 2 run(s)" in out
        assert f"{records} signed alias-log record(s); manifest signed by key {key_id}" in out
        if where == "local":
            manifest = json.loads((tmp_path / "backup" / registry_backup.MANIFEST).read_text())
            assert manifest["key_id"] == key_id and manifest["payload"]["format"] == registry_backup.FORMAT
            assert manifest["payload"]["models"][0]["alias_log"] == source["log"]

        # The restore host trusts the source's public key and has no private key and no alias log yet.
        host = _verifying_host(tmp_path / "host-trust", source["key"].public_text)
        isolated_trust(monkeypatch, host)
        assert cli.main(["registry", "import", uri, "--mlflow-conn-id", "mlflow_restored"]) == 0
        out = capsys.readouterr().out
        assert "aliases: flight_delay@challenger -> v2, flight_delay@champion -> v1" in out
        assert f"{records} signed alias-log record(s); manifest signed by key {key_id}" in out
        assert not (host / "signing-key.pem").exists()  # a restore signs nothing
        assert {alias: TrustHook().alias_log.read(MODEL, alias) for alias in ALIASES} == source["log"]

        before, after = _snapshot(_client(source["root"])), _snapshot(_client(target))
        assert after == before  # mlops.signature included: restored unchanged, same version numbers
        assert all("mlops.signature" in version["tags"] for version in after["versions"].values())
        assert after["aliases"] == {"champion": "1", "challenger": "2"}
        moves = promotion.history(after["tags"], "champion")
        assert [(m.from_version, m.to_version, m.kind) for m in moves] == [
            (None, "1", "promotion"),
            ("1", "2", "promotion"),
            ("2", "1", "rollback"),
        ]
        evaluation_uri = source["trainings"][0]["evaluation_uri"]
        version, restored = _predictions("mlflow_restored", evaluation_uri)
        isolated_trust(monkeypatch, source["trust"])
        _, original = _predictions(CONN_ID, evaluation_uri)
        assert version == "1" and len(restored) > 1000
        assert np.array_equal(restored, original)

        # A second restore into the now-filled MLflow is refused, and changes nothing.
        isolated_trust(monkeypatch, host)
        assert cli.main(["registry", "import", uri, "--mlflow-conn-id", "mlflow_restored"]) == 1
        assert "already has registered model(s) ['flight_delay']" in capsys.readouterr().err
        assert _snapshot(_client(target)) == after
        assert {alias: TrustHook().alias_log.read(MODEL, alias) for alias in ALIASES} == source["log"]
        # So is an export into a folder that already holds a backup.
        isolated_trust(monkeypatch, source["trust"])
        assert cli.main(["registry", "export", uri, "--mlflow-conn-id", CONN_ID]) == 1
        assert "is not empty" in capsys.readouterr().err


# --- tampered backups ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def backup(source, tmp_path_factory) -> Path:
    """A clean backup of ``source``, signed with its key; tests alter copies of it."""
    folder = tmp_path_factory.mktemp("signed-backup") / "backup"
    with pytest.MonkeyPatch.context() as patch:
        isolated_trust(patch, source["trust"])
        trust = TrustHook()
        export_registry(
            _client(source["root"]),
            str(folder),
            trust.signing_key(),
            alias_log=trust.alias_log,
            verification_keys=trust.verification_keys,
        )
    return folder


def _manifest(folder: Path) -> dict:
    return json.loads((folder / registry_backup.MANIFEST).read_text())


def _write_manifest(folder: Path, manifest: dict) -> None:
    (folder / registry_backup.MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def _edit_bytes(folder: Path, old: bytes, new: bytes) -> None:
    path = folder / registry_backup.MANIFEST
    raw = path.read_bytes()
    assert raw.count(old) >= 1 and len(old) == len(new)
    path.write_bytes(raw.replace(old, new, 1))


def _swap_model(folder: Path) -> dict:
    """Put v2's model file in place of v1's and update the manifest's digests to match: the payload an
    attacker with write access to the backup store would restore as v1, whose signed registration holds."""
    target = next((folder / "versions" / MODEL / "1").rglob("model.skops"))
    replacement = next((folder / "versions" / MODEL / "2").rglob("model.skops")).read_bytes()
    target.write_bytes(replacement)
    envelope = _manifest(folder)
    version = envelope["payload"]["models"][0]["versions"][0]
    assert version["version"] == "1"
    relative = target.relative_to(folder / "versions" / MODEL / "1").as_posix()
    version["files"][relative] = {
        "sha256": f"sha256:{hashlib.sha256(replacement).hexdigest()}",
        "bytes": len(replacement),
    }
    version["artifact_sha256"] = storage.directory_sha256(folder / "versions" / MODEL / "1")
    return envelope


ATTACKER = SigningKey.generate()


def _unsigned(folder: Path) -> None:
    _write_manifest(folder, _manifest(folder)["payload"])


def _resigned(folder: Path) -> None:
    _write_manifest(folder, ATTACKER.sign(_manifest(folder)["payload"]))


def _signature_dropped(folder: Path) -> None:
    envelope = _manifest(folder)
    envelope.pop("signature")
    _write_manifest(folder, envelope)


def _first_digest_byte(folder: Path) -> None:
    path = folder / registry_backup.MANIFEST
    raw = bytearray(path.read_bytes())
    at = raw.index(b'"sha256:') + len(b'"sha256:')
    raw[at] = ord("0") if raw[at] != ord("0") else ord("1")
    path.write_bytes(bytes(raw))


def _swapped_unsigned(folder: Path) -> None:
    _write_manifest(folder, _swap_model(folder)["payload"])


def _swapped_signature_kept(folder: Path) -> None:
    _write_manifest(folder, _swap_model(folder))


def _swapped_resigned(folder: Path) -> None:
    _write_manifest(folder, ATTACKER.sign(_swap_model(folder)["payload"]))


def _swapped_manifest_untouched(folder: Path) -> None:
    _swap_model(folder)


def _file_added(folder: Path) -> None:
    (folder / "versions" / MODEL / "1" / "sitecustomize.py").write_text("import os\n")


def _file_removed(folder: Path) -> None:
    next(path for path in (folder / "runs").rglob("*") if path.is_file()).unlink()


def _manifest_removed(folder: Path) -> None:
    (folder / registry_backup.MANIFEST).unlink()


@pytest.mark.parametrize(
    "tamper, words",
    [
        (_first_digest_byte, "does not match what was signed"),
        (lambda f: _edit_bytes(f, b'"champion": "1"', b'"champion": "2"'), "does not match what was signed"),
        (
            lambda f: _edit_bytes(f, b'\n "payload"', b'\n\t"payload"'),
            "not byte for byte the manifest that was",
        ),
        (_unsigned, "is not signed (a bare manifest of format 'mlops-ops-registry-backup/2')"),
        (_signature_dropped, "lacks payload, key_id or signature"),
        (_resigned, f"signed by key '{ATTACKER.key_id}', which is not among the trusted keys"),
        (_swapped_unsigned, "is not signed"),
        (_swapped_signature_kept, "does not match what was signed"),
        (_swapped_resigned, f"signed by key '{ATTACKER.key_id}', which is not among the trusted keys"),
        (_swapped_manifest_untouched, "the backup is damaged or was altered"),
        (_file_added, "its signed manifest does not list (e.g. 'versions/flight_delay/1/sitecustomize.py')"),
        (_file_removed, "lacks 1 file(s) its signed manifest lists"),
        (_manifest_removed, "holds no manifest.json"),
    ],
    ids=[
        "manifest-digest-byte",
        "manifest-alias-byte",
        "manifest-whitespace-byte",
        "manifest-unsigned",
        "manifest-signature-dropped",
        "manifest-resigned-foreign-key",
        "file-swapped-digests-updated-unsigned",
        "file-swapped-digests-updated-signature-kept",
        "file-swapped-digests-updated-resigned",
        "file-swapped-manifest-untouched",
        "file-added",
        "file-removed",
        "manifest-removed",
    ],
)
def test_an_altered_backup_is_refused_and_nothing_is_created(
    source, backup, tmp_path, monkeypatch, capsys, tamper, words
):
    altered = tmp_path / "backup"
    shutil.copytree(backup, altered)
    tamper(altered)
    target = tmp_path / "restored"
    _connection(monkeypatch, "mlflow_restored", target)
    host = isolated_trust(monkeypatch, _verifying_host(tmp_path / "host-trust", source["key"].public_text))

    assert cli.main(["registry", "import", str(altered), "--mlflow-conn-id", "mlflow_restored"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert words in err
    assert ATTACKER.public_text not in err and source["key"].public_text not in err  # ids, never key material

    # Nothing was created: no registry database, no artifact, no alias log, no signing key...
    assert not target.exists()
    assert sorted(path.name for path in host.iterdir()) == [VERIFICATION_KEYS_FILE]
    # ...and the registry, opened now (which creates its empty database), holds no model, version or run.
    client = _client(target)
    assert client.search_registered_models() == []
    assert client.search_model_versions() == []
    assert client.search_runs([e.experiment_id for e in client.search_experiments()]) == []


def test_a_host_without_the_backups_key_refuses_it_naming_the_key(
    source, backup, tmp_path, monkeypatch, capsys
):
    target = tmp_path / "restored"
    _connection(monkeypatch, "mlflow_restored", target)
    other = SigningKey.generate()
    isolated_trust(monkeypatch, _verifying_host(tmp_path / "host-trust", other.public_text))
    assert cli.main(["registry", "import", str(backup), "--mlflow-conn-id", "mlflow_restored"]) == 1
    err = capsys.readouterr().err
    assert (
        f"signed by key '{source['key'].key_id}', which is not among the trusted keys ({other.key_id})" in err
    )
    isolated_trust(monkeypatch, tmp_path / "empty-trust")
    assert cli.main(["registry", "import", str(backup), "--mlflow-conn-id", "mlflow_restored"]) == 1
    assert "no verification key is configured on this host" in capsys.readouterr().err
    assert not target.exists() and not (tmp_path / "empty-trust").exists()


# --- small registries made by hand --------------------------------------------------------------------------


def _hand_made_registry(folder: Path, tmp_path: Path):
    """Model ``m`` with v1 deleted, v2 as champion (signed nowhere: the backup does not need it)."""
    folder.mkdir()
    client = _client(folder)
    client.create_registered_model("m", tags={"owner": "ana"})
    for number in (1, 2):
        model = tmp_path / f"model{number}"
        model.mkdir()
        (model / "MLmodel").write_text(f"flavors: {{}}\nversion: {number}\n")
        client.create_model_version("m", source=model.as_uri(), tags={"n": str(number)})
    client.delete_model_version("m", "1")
    client.set_registered_model_alias("m", "champion", "2")
    return client


def test_version_numbers_survive_a_deleted_version(tmp_path):
    """v1 was deleted in the source: the restore keeps v2 as v2 (aliases, history and signatures name versions
    by number)."""
    key = SigningKey.generate()
    client = _hand_made_registry(tmp_path / "source", tmp_path)
    export_registry(client, str(tmp_path / "backup"), key)
    target = tmp_path / "target"
    target.mkdir()
    restored = _client(target)
    summary = import_registry(
        restored,
        str(tmp_path / "backup"),
        (target / "artifacts").as_uri(),
        VerificationKeys.from_texts([key.public_text]),
    )

    assert summary.aliases == {"m@champion": "2"} and summary.key_id == key.key_id
    assert [(str(v.version), v.tags["n"]) for v in restored.search_model_versions("name = 'm'")] == [
        ("2", "2")
    ]
    assert str(restored.get_registered_model("m").aliases["champion"]) == "2"
    assert restored.get_registered_model("m").tags == {"owner": "ana"}


def _move(store, key, version: str) -> None:
    alias_log.append(
        store,
        key,
        VerificationKeys.from_texts([key.public_text]),
        model_name="m",
        alias="champion",
        to_version=version,
        move="promotion",
        actor="ana",
        reason="why",
        at="2026-12-05T00:00:00+00:00",
    )


def test_the_alias_log_is_carried_and_restored_only_where_the_target_log_has_no_record(tmp_path):
    key = SigningKey.generate()
    keys = VerificationKeys.from_texts([key.public_text])
    client = _hand_made_registry(tmp_path / "source", tmp_path)
    source_log = alias_log.open_store(str(tmp_path / "source-log.jsonl"))
    _move(source_log, key, "1")
    _move(source_log, key, "2")
    summary = export_registry(
        client, str(tmp_path / "backup"), key, alias_log=source_log, verification_keys=keys
    )
    assert summary.alias_records == 2 and summary.notes == ()

    def restore(name: str, log):
        target = tmp_path / name
        target.mkdir()
        return import_registry(
            _client(target), str(tmp_path / "backup"), (target / "artifacts").as_uri(), keys, alias_log=log
        )

    empty_log = alias_log.open_store(str(tmp_path / "empty" / ALIAS_LOG_FILE))
    summary = restore("into-empty", empty_log)
    assert summary.alias_records == 2 and summary.notes == ()
    assert empty_log.read("m", "champion") == source_log.read("m", "champion")
    assert [r.to_version for r in alias_log.history(empty_log, keys, "m", "champion")] == ["1", "2"]

    # A log that already records the alias is kept as it is: a restore never rewrites or extends it.
    kept_log = alias_log.open_store(str(tmp_path / "kept" / ALIAS_LOG_FILE))
    _move(kept_log, key, "5")
    before = kept_log.read("m", "champion")
    summary = restore("into-kept", kept_log)
    assert summary.alias_records == 0
    assert summary.notes == (
        f"m@champion: the alias log at {kept_log.describe()} already holds 1 record(s) of it, kept as they are; "
        "the backup's 2 were not added",
    )
    assert kept_log.read("m", "champion") == before


def test_an_alias_log_that_does_not_verify_is_left_out_of_the_backup_with_a_note(tmp_path):
    key = SigningKey.generate()
    keys = VerificationKeys.from_texts([key.public_text])
    client = _hand_made_registry(tmp_path / "source", tmp_path)
    log_path = tmp_path / "log.jsonl"
    store = alias_log.open_store(str(log_path))
    _move(store, key, "1")
    _move(store, key, "2")
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    envelope = json.loads(lines[1]["envelope"])
    envelope["payload"]["to_version"] = "1"  # someone rewrote the second move
    lines[1]["envelope"] = json.dumps(envelope, sort_keys=True)
    log_path.write_text("".join(json.dumps(line) + "\n" for line in lines))

    summary = export_registry(client, str(tmp_path / "backup"), key, alias_log=store, verification_keys=keys)
    assert summary.alias_records == 0
    assert len(summary.notes) == 1 and summary.notes[0].startswith(
        "m@champion: its alias log is not in the backup"
    )
    assert _manifest(tmp_path / "backup")["payload"]["models"][0]["alias_log"] == {}
