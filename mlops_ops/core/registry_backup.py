"""Back up an MLflow model registry to a storage URI, and restore it into an empty MLflow.

A backup is a folder (local or ``s3://``)::

    manifest.json                     the signed index: models, versions, aliases, tags, source runs, the
                                      signed alias log of each alias, and every file's size and sha256;
                                      written last
    versions/<model>/<version>/...    each version's model artifact, as the registry serves it
    runs/<run_id>/...                 each source run's artifacts (gate decision, model card, ...)

``manifest.json`` is a signed envelope (:mod:`mlops_ops.core.signing`, kind ``mlops.backup-manifest/v1``),
indented JSON that people can read::

    {"key_id": "<16 hex>", "payload": {"kind": ..., "format": "mlops-ops-registry-backup/2", ...},
     "signature": "<base64>"}

It is signed with the deployment's signing key, the one that signs registrations, so whoever can write to the
backup store cannot swap a model in a backup and have it restored: the registration signatures would still
hold for the restored versions, and the artifacts they name would be the attacker's.

The manifest is written after everything else, so a folder without one is an interrupted export and is never
restored. A restore first copies the files the manifest lists, and only those, into a private staging folder,
and checks the manifest's signature, its exact bytes, every file's size and sha256, and that the backup holds
no file the manifest does not list. Only then does it look at the target MLflow (which must hold no registered
model and no run, so two registries are never mixed) and write anything there.

Version numbers are kept: aliases, the promotion history (``mlops.history.*`` model tags) and the signed
registrations (``mlops.signature``, restored unchanged) name versions by number. A backup of a registry where
versions were deleted restores the gap as deleted versions. Runs get new ids in the target; version tags naming
a source run (``mlops.training_run_id``) are rewritten to the new id, and each restored run and version keeps
the old id in ``mlops.restore.source_run_id``.

The signed alias log (:mod:`mlops_ops.core.alias_log`) lives outside MLflow, so a backup carries the records
of every alias it backs up (each one a signed envelope, verified on export and again on restore), and a restore
appends them to the target's alias log only where that log holds no record of the alias yet: it never rewrites
or extends a log that is already there.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from mlops_ops.core import lineage, storage
from mlops_ops.core.alias_log import AliasLogConflict, AliasLogError, AliasLogStore, history
from mlops_ops.core.errors import MlopsError, ModelIntegrityError
from mlops_ops.core.model_artifacts import check_model_reference
from mlops_ops.core.signing import BACKUP_MANIFEST, SignatureError, SigningKey, VerificationKeys

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from mlops_ops.core.storage import ObjectStore

FORMAT = "mlops-ops-registry-backup/2"
MANIFEST = "manifest.json"
SOURCE_RUN_TAG = lineage.PREFIX + "restore.source_run_id"
#: Experiment holding the artifacts of versions that had no source run.
ORPHAN_EXPERIMENT = "mlops-registry-restore"
#: A manifest larger than this is refused unread (a registry's index is a few megabytes at most).
MANIFEST_MAX_BYTES = 64 * 1024 * 1024

_RUN_ID = re.compile(r"[A-Za-z0-9_\-]{1,64}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


class BackupError(MlopsError, RuntimeError):
    """The backup cannot be written or restored; the message names the problem. Nothing was half-written."""


@dataclass(frozen=True)
class BackupSummary:
    """What an export or an import covered.

    :param uri: the backup's storage URI.
    :param models: registered model names.
    :param versions: model versions, all models together.
    :param runs: source runs.
    :param aliases: ``{"model@alias": version}``.
    :param key_id: the id of the key that signed the manifest.
    :param alias_records: signed alias-log records carried in the backup (export) or appended to the target's
        alias log (import).
    :param notes: one line per alias whose log was not carried or not restored, and why.
    """

    uri: str
    models: tuple[str, ...]
    versions: int
    runs: int
    aliases: dict[str, str]
    key_id: str = ""
    alias_records: int = 0
    notes: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line for the command line (the notes are separate lines)."""
        aliases = ", ".join(f"{key} -> v{version}" for key, version in sorted(self.aliases.items())) or "none"
        return (
            f"{len(self.models)} model(s) ({', '.join(self.models) or '-'}), {self.versions} version(s), "
            f"{self.runs} run(s); aliases: {aliases}; {self.alias_records} signed alias-log record(s); "
            f"manifest signed by key {self.key_id or '-'}"
        )


@dataclass(frozen=True)
class VerifiedBackup:
    """A backup copied into a staging folder and checked whole (:func:`verified_backup`).

    :param uri: where it was read from.
    :param folder: the staging folder holding ``versions/`` and ``runs/``, exactly the files the manifest lists.
    :param manifest: the verified manifest payload.
    :param key_id: the id of the key that signed it.
    :param alias_logs: ``{(model, alias): [envelope, ...]}``, each log verified as a chain.
    :param notes: one line per carried alias log that does not verify here (it is not restored).
    """

    uri: str
    folder: Path
    manifest: dict[str, Any]
    key_id: str
    alias_logs: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


# --- export -------------------------------------------------------------------------------------------------


def export_registry(
    client: MlflowClient,
    uri: str,
    signing_key: SigningKey,
    object_store: ObjectStore | None = None,
    *,
    alias_log: AliasLogStore | None = None,
    verification_keys: VerificationKeys | None = None,
) -> BackupSummary:
    """Write every registered model of ``client``'s registry, with artifacts and source runs, to ``uri``.

    :param client: the MLflow client of the registry to back up.
    :param uri: an empty (or missing) local folder or ``s3://`` prefix.
    :param signing_key: the deployment's signing key; it signs the manifest.
    :param object_store: how to reach an object-store URI (:func:`~mlops_ops.hooks.object_storage.object_store_for`).
    :param alias_log: the deployment's signed alias log; the records of every backed-up alias are carried in
        the manifest. ``None``: none are.
    :param verification_keys: the keys the alias log's records are checked against before they are carried
        (default: the public half of ``signing_key``); an alias whose log does not verify is left out, with a
        note in the summary.
    :raises BackupError: when ``uri`` already holds files, a model name could escape a folder, or a version's
        artifact does not match the sha256 recorded when it was trained (a corrupt model is not backed up as
        if it were good).
    """
    if _has_files(uri, object_store):
        raise BackupError(f"{uri} is not empty: a backup is written into an empty folder or prefix only")
    keys = verification_keys or VerificationKeys.from_texts([signing_key.public_text])
    models: list[dict[str, Any]] = []
    run_ids: set[str] = set()
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="mlops-backup-") as staging:
        root = Path(staging)
        for registered in _all_registered_models(client):
            _check_name(registered.name)
            versions = []
            for version in sorted(
                client.search_model_versions(f"name = '{_quoted(registered.name)}'"),
                key=lambda v: int(v.version),
            ):
                folder = root / "versions" / registered.name / str(version.version)
                _download_version(client, registered.name, str(version.version), folder)
                digest = storage.directory_sha256(folder)
                recorded = (version.tags or {}).get(lineage.ARTIFACT_SHA256)
                if recorded and recorded != digest:
                    raise BackupError(
                        f"{registered.name} v{version.version}: its artifact has sha256 {digest}, but {recorded} "
                        "was recorded at training; it is corrupt and was not backed up (nothing was written)"
                    )
                if version.run_id:
                    run_ids.add(version.run_id)
                versions.append(
                    {
                        "version": str(version.version),
                        "description": version.description or "",
                        "tags": dict(version.tags or {}),
                        "run_id": version.run_id or None,
                        "artifact_sha256": digest,
                        "files": _file_digests(folder),
                    }
                )
            aliases = {alias: str(number) for alias, number in (registered.aliases or {}).items()}
            carried, model_notes = _carried_alias_logs(alias_log, keys, registered.name, sorted(aliases))
            notes.extend(model_notes)
            models.append(
                {
                    "name": registered.name,
                    "description": registered.description or "",
                    "tags": dict(registered.tags or {}),
                    "aliases": aliases,
                    "alias_log": carried,
                    "versions": versions,
                }
            )
        for run_id in run_ids:
            if not _RUN_ID.fullmatch(run_id):
                raise BackupError(f"run id {run_id[:70]!r} cannot name a backup folder; nothing was written")
        runs = {run_id: _export_run(client, run_id, root / "runs" / run_id) for run_id in sorted(run_ids)}
        payload = {
            "kind": BACKUP_MANIFEST,
            "format": FORMAT,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "source_tracking_uri": _without_credentials(client.tracking_uri),
            "models": models,
            "runs": runs,
        }
        envelope = signing_key.sign(payload)
        _publish(root, uri, object_store, _manifest_bytes(envelope))
    return _summary(uri, payload, signing_key.key_id, tuple(notes))


def _carried_alias_logs(
    store: AliasLogStore | None, keys: VerificationKeys, model_name: str, aliases: list[str]
) -> tuple[dict[str, list[str]], list[str]]:
    """The verified alias-log records of each of ``aliases``, and a note for each alias whose log does not
    verify (left out: a backup must not carry records a restore would have to refuse)."""
    carried: dict[str, list[str]] = {}
    notes: list[str] = []
    if store is None:
        return carried, notes
    for alias in aliases:
        envelopes = store.read(model_name, alias)
        try:
            history(_CarriedAliasLog({alias: envelopes}, store.describe()), keys, model_name, alias)
        except AliasLogError as err:
            notes.append(f"{model_name}@{alias}: its alias log is not in the backup: {err}")
            continue
        if envelopes:
            carried[alias] = envelopes
    return carried, notes


def _export_run(client: MlflowClient, run_id: str, folder: Path) -> dict[str, Any]:
    run = client.get_run(run_id)
    folder.mkdir(parents=True)
    for item in client.list_artifacts(run_id):
        client.download_artifacts(run_id, item.path, str(folder))
    return {
        "experiment": client.get_experiment(run.info.experiment_id).name,
        "run_name": run.info.run_name,
        "status": run.info.status,
        "start_time": run.info.start_time,
        "end_time": run.info.end_time,
        "params": dict(run.data.params),
        "metrics": dict(run.data.metrics),
        "tags": dict(run.data.tags),
        "artifact_sha256": storage.directory_sha256(folder),
        "files": _file_digests(folder),
    }


def _file_digests(folder: Path) -> dict[str, dict[str, Any]]:
    """``{relative path: {"sha256", "bytes"}}`` of every file under ``folder``."""
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        files[path.relative_to(folder).as_posix()] = {
            "sha256": f"sha256:{digest.hexdigest()}",
            "bytes": path.stat().st_size,
        }
    return files


def _manifest_bytes(envelope: dict[str, Any]) -> bytes:
    """The one byte form of a signed manifest: a restore refuses any other, even one that parses the same."""
    return (
        json.dumps(envelope, indent=1, sort_keys=True, ensure_ascii=True, allow_nan=False) + "\n"
    ).encode()


def _publish(root: Path, uri: str, object_store: ObjectStore | None, manifest: bytes) -> None:
    """Copy the staged tree to ``uri``, then the manifest: a reader never takes a partial copy for a backup."""
    import pyarrow.fs as pafs

    filesystem, path = storage.resolve(uri, object_store)
    if not storage.is_remote(uri):
        Path(path).mkdir(parents=True, exist_ok=True)
    for part in ("versions", "runs"):
        if (root / part).exists():
            pafs.copy_files(
                str(root / part),
                f"{path}/{part}",
                source_filesystem=pafs.LocalFileSystem(),
                destination_filesystem=filesystem,
            )
    with filesystem.open_output_stream(f"{path}/{MANIFEST}") as handle:
        handle.write(manifest)


# --- import -------------------------------------------------------------------------------------------------


def import_registry(
    client: MlflowClient,
    uri: str,
    artifact_root: str,
    verification_keys: VerificationKeys,
    object_store: ObjectStore | None = None,
    *,
    alias_log: AliasLogStore | None = None,
) -> BackupSummary:
    """Restore the backup at ``uri`` into the empty MLflow of ``client``: :func:`verified_backup`, then
    :func:`restore_backup`.

    :param client: the MLflow client of the target registry. Where even opening it creates something (a SQLite
        file), call the two steps yourself and open it inside the ``with``, as ``mlops-ops registry import``
        does.
    :param uri: the backup's folder or ``s3://`` prefix.
    :param artifact_root: where restored experiments keep their artifacts (``<root>/<experiment>``).
    :param verification_keys: the public keys a manifest may be signed with.
    :param object_store: how to reach an object-store URI (:func:`~mlops_ops.hooks.object_storage.object_store_for`).
    :param alias_log: the target's signed alias log (see :func:`restore_backup`).
    :raises BackupError: see :func:`verified_backup` and :func:`restore_backup`.
    """
    with verified_backup(uri, verification_keys, object_store) as backup:
        return restore_backup(client, backup, artifact_root, alias_log=alias_log)


@contextmanager
def verified_backup(
    uri: str, verification_keys: VerificationKeys, object_store: ObjectStore | None = None
) -> Iterator[VerifiedBackup]:
    """Copy the backup at ``uri`` into a private staging folder and check it whole; the folder is removed on exit.

    Nothing is written anywhere but the staging folder: not the target registry, not its artifact store,
    not the alias log.

    :param uri: the backup's folder or ``s3://`` prefix.
    :param verification_keys: the public keys a manifest may be signed with.
    :param object_store: how to reach an object-store URI (:func:`~mlops_ops.hooks.object_storage.object_store_for`).
    :raises BackupError: one line, when ``uri`` holds no complete backup; its manifest is unsigned, signed by a
        key not among ``verification_keys`` (named by its id), altered in any byte, or of another format; or
        a file is missing, altered, or not listed in the manifest.
    """
    with tempfile.TemporaryDirectory(prefix="mlops-restore-") as staging:
        yield _stage(uri, verification_keys, object_store, Path(staging))


def restore_backup(
    client: MlflowClient,
    backup: VerifiedBackup,
    artifact_root: str,
    *,
    alias_log: AliasLogStore | None = None,
) -> BackupSummary:
    """Write a :class:`VerifiedBackup` into the empty MLflow of ``client``, then its alias logs.

    :param client: the MLflow client of the target registry.
    :param backup: from :func:`verified_backup`, still inside its ``with``.
    :param artifact_root: where restored experiments keep their artifacts (``<root>/<experiment>``).
    :param alias_log: the target's signed alias log: each carried alias log is appended to it where it holds
        no record of that alias; where it does, it is left as it is, with a note. ``None``: not restored.
    :raises BackupError: when the target MLflow is not empty (before anything is written), or it does not
        serve a restored version as it was backed up.
    """
    manifest, root = backup.manifest, backup.folder
    _require_empty(client)
    new_run_ids = {
        old: _restore_run(client, old, run, root / "runs" / old, artifact_root)
        for old, run in manifest["runs"].items()
    }
    for model in manifest["models"]:
        client.create_registered_model(model["name"], tags=model["tags"], description=model["description"])
        for version in model["versions"]:
            _restore_version(client, model["name"], version, new_run_ids, root, artifact_root)
        for alias, number in model["aliases"].items():
            client.set_registered_model_alias(model["name"], alias, number)
        # The registry serves each version as it was backed up: checked after the fact, from the target.
        for version in model["versions"]:
            with tempfile.TemporaryDirectory() as check:
                restored = Path(check, "model")
                _download_version(client, model["name"], version["version"], restored)
                if storage.directory_sha256(restored) != version["artifact_sha256"]:
                    raise BackupError(f"{model['name']} v{version['version']}: restored artifact differs")
    # After the registry, so a restore that failed there leaves the alias log as it was.
    written, notes = _restore_alias_logs(backup, alias_log)
    return replace(
        _summary(backup.uri, manifest, backup.key_id, (*backup.notes, *notes)), alias_records=written
    )


def _stage(uri: str, keys: VerificationKeys, object_store: ObjectStore | None, root: Path) -> VerifiedBackup:
    import pyarrow.fs as pafs

    filesystem, path = storage.resolve(uri, object_store)
    where = f"{uri.rstrip('/')}/{MANIFEST}"
    info = filesystem.get_file_info(f"{path}/{MANIFEST}")
    if info.type != pafs.FileType.File:
        raise BackupError(
            f"{uri} holds no {MANIFEST}: it is not a backup, or its export was interrupted before it completed"
        )
    if info.size is not None and info.size > MANIFEST_MAX_BYTES:
        raise BackupError(f"{where} is {info.size} bytes, more than a manifest can be; nothing was restored")
    with filesystem.open_input_stream(f"{path}/{MANIFEST}") as handle:
        raw = handle.read(MANIFEST_MAX_BYTES + 1)
    manifest, key_id = _verified_manifest(raw, where, keys)
    expected = _expected_files(manifest, where)
    _refuse_unlisted_files(filesystem, path, set(expected), uri)
    for relative, (digest, size) in expected.items():
        _copy_checked(filesystem, f"{path}/{relative}", root / relative, digest, size, uri, relative)
    for model in manifest["models"]:
        for version in model["versions"]:
            folder = root / "versions" / model["name"] / version["version"]
            _check_digest(
                folder, version["artifact_sha256"], f"versions/{model['name']}/{version['version']}", uri
            )
    for run_id, run in manifest["runs"].items():
        _check_digest(root / "runs" / run_id, run["artifact_sha256"], f"runs/{run_id}", uri)
    alias_logs, notes = _verified_alias_logs(manifest, keys, where)
    return VerifiedBackup(uri, root, manifest, key_id, alias_logs, tuple(notes))


def _verified_manifest(raw: bytes, where: str, keys: VerificationKeys) -> tuple[dict[str, Any], str]:
    """The payload of the signed manifest ``raw`` and the id of its key, or one line saying why not."""
    try:
        envelope = json.loads(raw)
    except ValueError as err:
        raise BackupError(f"{where} is not valid JSON ({err}); nothing was restored") from None
    if isinstance(envelope, dict) and "payload" not in envelope and "signature" not in envelope:
        raise BackupError(
            f"{where} is not signed (a bare manifest of format {str(envelope.get('format'))[:60]!r}): a restore "
            "takes only a manifest signed by a trusted key; nothing was restored"
        )
    try:
        payload = keys.verify(envelope, BACKUP_MANIFEST)
    except SignatureError as err:
        raise BackupError(f"{where} is refused: {err}; nothing was restored") from None
    key_id = str(envelope["key_id"])
    # The signature covers the payload's canonical form, so whitespace could change and still verify: the file
    # must be exactly what the export wrote, so that any changed byte is refused.
    if raw != _manifest_bytes(envelope):
        raise BackupError(
            f"{where} is refused: its signature by key {key_id} verifies, but the file is not byte for byte the "
            "manifest that was signed (it was edited); nothing was restored"
        )
    if payload.get("format") != FORMAT:
        raise BackupError(
            f"{where} has format {str(payload.get('format'))[:60]!r}; this restore reads {FORMAT!r}"
        )
    return payload, key_id


def _expected_files(manifest: dict[str, Any], where: str) -> dict[str, tuple[str, int]]:
    """``{path in the backup: (sha256, bytes)}`` of every file the manifest lists, each path checked first.

    The manifest is signed, so this guards against a bug or a compromised signing host rather than a backup
    store writer: no listed path may leave the staging folder.
    """
    expected: dict[str, tuple[str, int]] = {}
    try:
        for model in manifest["models"]:
            _check_name(model["name"], where)
            for version in model["versions"]:
                number = version["version"]
                if not (isinstance(number, str) and number.isdigit() and len(number) <= 12):
                    raise BackupError(
                        f"{where}: version {str(number)[:20]!r} of {model['name']} is not a number"
                    )
                prefix = f"versions/{model['name']}/{number}"
                expected.update(_listed(prefix, version["files"], where))
        for run_id, run in manifest["runs"].items():
            if not (isinstance(run_id, str) and _RUN_ID.fullmatch(run_id)):
                raise BackupError(f"{where}: run id {str(run_id)[:70]!r} is not a run id")
            expected.update(_listed(f"runs/{run_id}", run["files"], where))
    except (KeyError, TypeError, AttributeError) as err:
        raise BackupError(
            f"{where} is not a registry backup manifest ({type(err).__name__}: {err})"
        ) from None
    return expected


def _listed(prefix: str, files: dict[str, Any], where: str) -> dict[str, tuple[str, int]]:
    listed = {}
    for relative, entry in files.items():
        parts = relative.split("/") if isinstance(relative, str) else []
        if (
            not parts
            or len(relative) > 1000
            or any(part in ("", ".", "..") for part in parts)
            or any(ord(char) < 32 or char in "\\\x7f" for char in relative)
        ):
            raise BackupError(
                f"{where}: file {str(relative)[:80]!r} under {prefix} is not a plain relative path"
            )
        digest, size = entry["sha256"], entry["bytes"]
        if not (isinstance(digest, str) and _DIGEST.fullmatch(digest)) or not (
            isinstance(size, int) and size >= 0
        ):
            raise BackupError(f"{where}: {prefix}/{relative[:80]} has no sha256 and size")
        listed[f"{prefix}/{relative}"] = (digest, size)
    return listed


def _refuse_unlisted_files(filesystem: Any, path: str, expected: set[str], uri: str) -> None:
    """Refuse a backup holding files its manifest does not list: it was changed after it was signed."""
    import pyarrow.fs as pafs

    found = set()
    for info in filesystem.get_file_info(pafs.FileSelector(path, recursive=True)):
        if info.type == pafs.FileType.File:
            found.add(info.path[len(path) :].lstrip("/"))
    missing = sorted(expected - found)
    if missing:
        raise BackupError(
            f"{uri} lacks {len(missing)} file(s) its signed manifest lists (e.g. {missing[0][:120]!r}): the "
            "backup is damaged; nothing was restored"
        )
    unlisted = sorted(found - expected - {MANIFEST})
    if unlisted:
        raise BackupError(
            f"{uri} holds {len(unlisted)} file(s) its signed manifest does not list (e.g. "
            f"{unlisted[0][:120]!r}): it was changed after it was signed; nothing was restored"
        )


def _copy_checked(
    filesystem: Any, source: str, target: Path, digest: str, size: int, uri: str, relative: str
) -> None:
    """Copy one listed file into staging, refusing it when its size or sha256 is not the manifest's."""
    damaged = f"{uri}: {relative[:160]}"
    target.parent.mkdir(parents=True, exist_ok=True)
    hasher, copied = hashlib.sha256(), 0
    try:
        with filesystem.open_input_stream(source) as handle, target.open("xb") as out:
            # Read no more than the manifest says the file holds, plus one byte to notice a longer one.
            while copied <= size:
                block = handle.read(min(1 << 20, size + 1 - copied))
                if not block:
                    break
                copied += len(block)
                hasher.update(block)
                out.write(block)
    except OSError as err:
        raise BackupError(
            f"{damaged} cannot be copied ({type(err).__name__}); nothing was restored"
        ) from None
    actual = f"sha256:{hasher.hexdigest()}"
    if copied > size:
        found = f"has more than the {size} bytes the signed manifest recorded"
    elif actual != digest or copied != size:
        found = f"has {copied} bytes, sha256 {actual}; the signed manifest recorded {size} bytes, {digest}"
    else:
        return
    raise BackupError(f"{damaged} {found}: the backup is damaged or was altered; nothing was restored")


def _check_digest(folder: Path, expected: str, name: str, uri: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)  # an artifact-less run has no folder in the backup
    actual = storage.directory_sha256(folder)
    if actual != expected:
        raise BackupError(
            f"{uri}: {name} has sha256 {actual}, the signed manifest recorded {expected}: the backup is "
            "damaged; nothing was restored"
        )


class _CarriedAliasLog:
    """The alias-log records a manifest carries, read like a store so that they verify like the live log."""

    def __init__(self, records: dict[str, list[str]], where: str) -> None:
        """:param records: ``{alias: [envelope, ...]}`` of one model.
        :param where: where they come from, for messages.
        """
        self.records, self.where = records, where

    def read(self, model_name: str, alias: str) -> list[str]:
        return list(self.records.get(alias, []))

    def describe(self) -> str:
        return self.where


def _verified_alias_logs(
    manifest: dict[str, Any], keys: VerificationKeys, where: str
) -> tuple[dict[tuple[str, str], list[str]], list[str]]:
    logs, notes = {}, []
    for model in manifest["models"]:
        carried = model.get("alias_log") or {}
        if not isinstance(carried, dict) or not all(
            isinstance(envelopes, list) and all(isinstance(e, str) for e in envelopes)
            for envelopes in carried.values()
        ):
            raise BackupError(f"{where}: the alias log of {model['name']} is not a list of signed records")
        for alias, envelopes in sorted(carried.items()):
            try:
                history(_CarriedAliasLog(carried, f"carried in {where}"), keys, model["name"], alias)
            except AliasLogError as err:
                # The registry restores without it; the alias is refused by consumers until a promotion or a
                # rollback records a move again, as for any alias the log does not name.
                notes.append(f"{model['name']}@{alias}: its alias log is not restored: {err}")
                continue
            logs[(model["name"], alias)] = envelopes
    return logs, notes


def _restore_alias_logs(backup: VerifiedBackup, store: AliasLogStore | None) -> tuple[int, list[str]]:
    if store is None:
        if not backup.alias_logs:
            return 0, []
        return 0, [
            f"{len(backup.alias_logs)} alias log(s) in the backup were not restored (no alias log given)"
        ]
    written, notes = 0, []
    for (model_name, alias), envelopes in sorted(backup.alias_logs.items()):
        present = store.read(model_name, alias)
        if present:
            notes.append(
                f"{model_name}@{alias}: the alias log at {store.describe()} already holds {len(present)} "
                f"record(s) of it, kept as they are; the backup's {len(envelopes)} were not added"
            )
            continue
        try:
            for sequence, envelope in enumerate(envelopes, start=1):
                store.append(model_name, alias, sequence, envelope)
                written += 1
        except AliasLogConflict as err:
            notes.append(
                f"{model_name}@{alias}: {err} (appended by someone else meanwhile); the rest not added"
            )
    return written, notes


def _require_empty(client: MlflowClient) -> None:
    models = [model.name for model in _all_registered_models(client)]
    if models:
        raise BackupError(
            f"the target MLflow already has registered model(s) {models[:5]}: a restore goes into an empty "
            "MLflow only (nothing was changed)"
        )
    experiments = client.search_experiments()
    runs = client.search_runs([e.experiment_id for e in experiments], max_results=1) if experiments else []
    if runs:
        raise BackupError(
            f"the target MLflow already has runs (e.g. {runs[0].info.run_id}): a restore goes into an empty "
            "MLflow only (nothing was changed)"
        )


def _experiment_id(client: MlflowClient, name: str, artifact_root: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    return client.create_experiment(name, artifact_location=f"{artifact_root.rstrip('/')}/{name}")


def _restore_run(
    client: MlflowClient, old_id: str, run: dict[str, Any], folder: Path, artifact_root: str
) -> str:
    from mlflow.entities import Metric, Param, RunTag

    experiment_id = _experiment_id(client, run["experiment"], artifact_root)
    created = client.create_run(experiment_id, start_time=run["start_time"], run_name=run["run_name"])
    new_id: str = created.info.run_id
    timestamp = run["start_time"] or 0
    client.log_batch(
        new_id,
        metrics=[Metric(key, float(value), timestamp, 0) for key, value in run["metrics"].items()],
        params=[Param(key, str(value)) for key, value in run["params"].items()],
        tags=[RunTag(key, str(value)) for key, value in {**run["tags"], SOURCE_RUN_TAG: old_id}.items()],
    )
    if any(folder.iterdir()):
        client.log_artifacts(new_id, str(folder))
    client.set_terminated(new_id, status=run["status"], end_time=run["end_time"])
    return new_id


def _restore_version(
    client: MlflowClient,
    name: str,
    version: dict[str, Any],
    new_run_ids: dict[str, str],
    root: Path,
    artifact_root: str,
) -> None:
    number = int(version["version"])
    old_run = version["run_id"]
    if old_run:
        run_id = new_run_ids[old_run]
    else:
        run_id = client.create_run(_experiment_id(client, ORPHAN_EXPERIMENT, artifact_root)).info.run_id
        client.set_terminated(run_id)
    artifact_path = f"registered/{name}/v{number}"
    client.log_artifacts(run_id, str(root / "versions" / name / str(number)), artifact_path)
    source = f"{client.get_run(run_id).info.artifact_uri}/{artifact_path}"
    # mlops.signature is restored as it was: it names the model, the version number and the artifact digest,
    # all kept, and not the run id, which changes.
    tags = dict(version["tags"])
    if old_run:
        tags[SOURCE_RUN_TAG] = old_run
        if tags.get(lineage.TRAINING_RUN) == old_run:
            tags[lineage.TRAINING_RUN] = run_id
    created = client.create_model_version(
        name, source=source, run_id=run_id, tags=tags, description=version["description"] or None
    )
    # Versions deleted in the source registry left gaps in the numbering: fill them with deleted versions, so
    # every number (and every alias, history entry and signed registration naming it) means the same model.
    while int(created.version) < number:
        client.delete_model_version(name, created.version)
        created = client.create_model_version(
            name, source=source, run_id=run_id, tags=tags, description=version["description"] or None
        )
    if int(created.version) != number:
        raise BackupError(f"{name}: restoring v{number} created v{created.version}; the target is not empty")


# --- shared -------------------------------------------------------------------------------------------------


def _check_name(name: str, where: str = "the registry") -> None:
    """Refuse a model name that could leave the backup's ``versions/`` folder."""
    try:
        check_model_reference(name)
    except ModelIntegrityError as err:
        raise BackupError(f"{where}: {err}; nothing was written") from None


def _without_credentials(uri: str) -> str:
    """``uri`` without a user or password, which must not travel into a backup."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    return urlunsplit(parts._replace(netloc=host + (f":{parts.port}" if parts.port else "")))


def _download_version(client: MlflowClient, name: str, version: str, folder: Path) -> None:
    """Copy the artifact the registry serves for ``name`` v``version`` into ``folder`` (created)."""
    import mlflow

    # The storage location from this client's registry, not a models:/ URI: MLflow resolves those with its
    # global registry URI whatever it is passed, and export and import talk to two registries.
    location = client.get_model_version_download_uri(name, version)
    with tempfile.TemporaryDirectory() as download:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=location, dst_path=download, tracking_uri=client.tracking_uri
        )
        shutil.copytree(local, folder)


def _all_registered_models(client: MlflowClient) -> list[Any]:
    models: list[Any] = []
    token = None
    while True:
        page = client.search_registered_models(max_results=1000, page_token=token)
        models.extend(page)
        token = page.token
        if not token:
            return sorted(models, key=lambda model: model.name)


def _quoted(name: str) -> str:
    if "'" in name:
        raise BackupError(f"registered model name {name!r} holds a quote, which MLflow's search cannot match")
    return name


def _has_files(uri: str, object_store: ObjectStore | None) -> bool:
    import pyarrow.fs as pafs

    filesystem, path = storage.resolve(uri, object_store)
    info = filesystem.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        return False
    if info.type == pafs.FileType.File:
        return True
    return bool(filesystem.get_file_info(pafs.FileSelector(path, recursive=False)))


def _summary(uri: str, manifest: dict[str, Any], key_id: str, notes: tuple[str, ...]) -> BackupSummary:
    return BackupSummary(
        uri=uri,
        models=tuple(model["name"] for model in manifest["models"]),
        versions=sum(len(model["versions"]) for model in manifest["models"]),
        runs=len(manifest["runs"]),
        aliases={
            f"{model['name']}@{alias}": number
            for model in manifest["models"]
            for alias, number in model["aliases"].items()
        },
        key_id=key_id,
        alias_records=sum(
            len(records) for model in manifest["models"] for records in model["alias_log"].values()
        ),
        notes=notes,
    )
