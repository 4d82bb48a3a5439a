"""The backup's signed manifest, checked in a staging folder before a restore touches anything (no MLflow here:
:func:`verified_backup` never opens the target)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from mlops_ops.core import registry_backup, storage
from mlops_ops.core.registry_backup import FORMAT, MANIFEST, BackupError, verified_backup
from mlops_ops.core.signing import BACKUP_MANIFEST, REGISTRATION, SigningKey, VerificationKeys

KEY = SigningKey.generate()
KEYS = VerificationKeys.from_texts([KEY.public_text])
MODEL_BYTES = b"model bytes"


def _payload(**changes) -> dict:
    files = {"model.skops": {"sha256": f"sha256:{hashlib.sha256(MODEL_BYTES).hexdigest()}", "bytes": 11}}
    version = {
        "version": "1",
        "description": "",
        "tags": {},
        "run_id": None,
        "artifact_sha256": "",
        "files": files,
    }
    payload = {
        "kind": BACKUP_MANIFEST,
        "format": FORMAT,
        "created_at": "2026-12-05T00:00:00+00:00",
        "source_tracking_uri": "sqlite:///x.db",
        "models": [
            {
                "name": "m",
                "description": "",
                "tags": {},
                "aliases": {},
                "alias_log": {},
                "versions": [version],
            }
        ],
        "runs": {},
    }
    payload.update(changes)
    return payload


def _backup(folder: Path, payload: dict, key: SigningKey = KEY) -> Path:
    model = folder / "versions" / "m" / "1" / "model.skops"
    model.parent.mkdir(parents=True)
    model.write_bytes(MODEL_BYTES)
    for version in (v for m in payload["models"] for v in m["versions"]):
        version["artifact_sha256"] = version["artifact_sha256"] or storage.directory_sha256(model.parent)
    (folder / MANIFEST).write_bytes(registry_backup._manifest_bytes(key.sign(payload)))
    return folder


def test_a_signed_backup_is_staged_with_exactly_its_listed_files(tmp_path):
    backup = _backup(tmp_path / "backup", _payload())
    with verified_backup(str(backup), KEYS) as verified:
        staged = sorted(
            p.relative_to(verified.folder).as_posix() for p in verified.folder.rglob("*") if p.is_file()
        )
        assert staged == ["versions/m/1/model.skops"]
        assert verified.key_id == KEY.key_id and verified.manifest["format"] == FORMAT
        staging = verified.folder
    assert not staging.exists()  # the staging folder goes with the ``with``


@pytest.mark.parametrize(
    "payload, words",
    [
        (_payload(format="mlops-ops-registry-backup/1"), "has format 'mlops-ops-registry-backup/1'"),
        (_payload(kind=REGISTRATION), "is a 'mlops.registration/v1', not a mlops.backup-manifest/v1"),
    ],
)
def test_a_signed_manifest_of_another_kind_or_format_is_refused(tmp_path, payload, words):
    backup = _backup(tmp_path / "backup", payload)
    with pytest.raises(BackupError, match="refused|format") as raised, verified_backup(str(backup), KEYS):
        pass
    assert words in str(raised.value)


@pytest.mark.parametrize(
    "name, files, words",
    [
        ("../m", None, "model name '../m' is refused"),
        ("m", {"../../outside": None}, "is not a plain relative path"),
        ("m", {"/etc/passwd": None}, "is not a plain relative path"),
        ("m", {"a\\..\\b": None}, "is not a plain relative path"),
    ],
)
def test_even_a_signed_manifest_cannot_name_a_path_outside_staging(tmp_path, name, files, words):
    payload = _payload()
    model = payload["models"][0]
    model["name"] = name
    if files:
        digest = {"sha256": "sha256:" + "0" * 64, "bytes": 1}
        model["versions"][0]["files"] = {path: digest for path in files}
    backup = _backup(tmp_path / "backup", payload)
    with pytest.raises(BackupError) as raised, verified_backup(str(backup), KEYS):
        pass
    assert words in str(raised.value)
    assert not (tmp_path / "outside").exists()


def test_a_file_longer_than_the_manifest_says_is_refused_unread_past_its_size(tmp_path):
    backup = _backup(tmp_path / "backup", _payload())
    (backup / "versions" / "m" / "1" / "model.skops").write_bytes(MODEL_BYTES + b"x" * 10_000_000)
    with (
        pytest.raises(BackupError, match="has more than the 11 bytes the signed manifest recorded") as raised,
        verified_backup(str(backup), KEYS),
    ):
        pass
    assert "the backup is damaged or was altered; nothing was restored" in str(raised.value)


def test_the_manifest_keeps_no_credentials_of_the_source(tmp_path):
    assert registry_backup.without_credentials("postgresql://mlflow:s3cret@db:5432/mlflow") == (
        "postgresql://db:5432/mlflow"
    )
    assert registry_backup.without_credentials("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"
    manifest = json.loads(_backup(tmp_path / "backup", _payload()).joinpath(MANIFEST).read_text())
    assert set(manifest) == {"key_id", "payload", "signature"}
