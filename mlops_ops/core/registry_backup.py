"""The registry backup's format, its signed manifest, and the checks a backup passes before it is restored.

The MLflow side, reading a registry into a backup and writing a checked backup into an empty MLflow, is
:mod:`mlops_ops.hooks.registry_backup` (``mlops-ops registry export|import``); this module opens no client.

A backup is a folder (local or an object-store prefix)::

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


# --- export: what the hook's dump of a registry becomes -------------------------------------------------------


def require_empty_destination(uri: str, object_store: ObjectStore | None = None) -> None:
    """Refuse to write a backup where files are already: a backup is never mixed with another one.

    :raises BackupError: when ``uri`` holds any file.
    """
    import pyarrow.fs as pafs

    filesystem, path = storage.resolve(uri, object_store)
    info = filesystem.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        return
    if info.type == pafs.FileType.File or filesystem.get_file_info(pafs.FileSelector(path, recursive=False)):
        raise BackupError(f"{uri} is not empty: a backup is written into an empty folder or prefix only")


def version_entry(
    model_name: str, number: str, folder: Path, *, tags: dict[str, str], description: str, run_id: str | None
) -> dict[str, Any]:
    """The manifest entry of one model version whose artifact was downloaded into ``folder``.

    :raises BackupError: when the artifact does not match the sha256 recorded when it was trained (a corrupt
        model is not backed up as if it were good).
    """
    digest = storage.directory_sha256(folder)
    recorded = tags.get(lineage.ARTIFACT_SHA256)
    if recorded and recorded != digest:
        raise BackupError(
            f"{model_name} v{number}: its artifact has sha256 {digest}, but {recorded} was recorded at training; "
            "it is corrupt and was not backed up (nothing was written)"
        )
    return {
        "version": number,
        "description": description,
        "tags": dict(tags),
        "run_id": run_id,
        "artifact_sha256": digest,
        "files": _file_digests(folder),
    }


def model_entry(
    model_name: str,
    *,
    description: str,
    tags: dict[str, str],
    aliases: dict[str, str],
    versions: list[dict[str, Any]],
    alias_log: dict[str, list[str]],
) -> dict[str, Any]:
    """The manifest entry of one registered model: its versions (:func:`version_entry`) and carried alias log
    (:func:`carried_alias_logs`)."""
    return {
        "name": model_name,
        "description": description,
        "tags": dict(tags),
        "aliases": dict(aliases),
        "alias_log": alias_log,
        "versions": versions,
    }


def check_run_id(run_id: str) -> str:
    """``run_id``, refused when it could not name a folder of the backup.

    :raises BackupError: naming the run id, cut short.
    """
    if not _RUN_ID.fullmatch(run_id):
        raise BackupError(f"run id {run_id[:70]!r} cannot name a backup folder; nothing was written")
    return run_id


def run_entry(folder: Path, **facts: Any) -> dict[str, Any]:
    """The manifest entry of one source run whose artifacts were downloaded into ``folder``.

    :param facts: ``experiment``, ``run_name``, ``status``, ``start_time``, ``end_time``, ``params``,
        ``metrics``, ``tags``: what a restore recreates the run from.
    """
    return {**facts, "artifact_sha256": storage.directory_sha256(folder), "files": _file_digests(folder)}


def carried_alias_logs(
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


def publish_backup(
    root: Path,
    uri: str,
    signing_key: SigningKey,
    object_store: ObjectStore | None = None,
    *,
    models: list[dict[str, Any]],
    runs: dict[str, dict[str, Any]],
    source_tracking_uri: str,
    notes: tuple[str, ...] = (),
) -> BackupSummary:
    """Sign the manifest of the staged backup in ``root`` and copy it to ``uri``: the files, then the manifest.

    A reader never takes a partial copy for a backup: without its manifest a folder is not one.

    :param root: the staging folder holding ``versions/<model>/<version>/`` and ``runs/<run_id>/``.
    :param models: :func:`model_entry` of each registered model.
    :param runs: ``{run_id: run_entry(...)}`` of each source run.
    :param source_tracking_uri: the backed-up registry's tracking URI; any user or password is left out.
    :param notes: lines for the summary (an alias log not carried, and why).
    """
    import pyarrow.fs as pafs

    payload = {
        "kind": BACKUP_MANIFEST,
        "format": FORMAT,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source_tracking_uri": without_credentials(source_tracking_uri),
        "models": models,
        "runs": runs,
    }
    manifest = _manifest_bytes(signing_key.sign(payload))
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
    return _summary(uri, payload, signing_key.key_id, notes)


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


# --- import: a backup checked whole before the hook writes it into a registry ----------------------------------


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
            check_model_name(model["name"], where)
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


def restore_alias_logs(backup: VerifiedBackup, store: AliasLogStore | None) -> tuple[int, list[str]]:
    """Append each alias log ``backup`` carries to ``store`` where it holds no record of that alias yet.

    Called after the registry is restored, so a restore that failed there leaves the alias log as it was.

    :returns: how many records were appended, and a note for each alias log left out and why.
    """
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


# --- shared -------------------------------------------------------------------------------------------------


def check_model_name(name: str, where: str = "the registry") -> None:
    """Refuse a model name that could leave the backup's ``versions/`` folder."""
    try:
        check_model_reference(name)
    except ModelIntegrityError as err:
        raise BackupError(f"{where}: {err}; nothing was written") from None


def without_credentials(uri: str) -> str:
    """``uri`` without a user or password, which must not travel into a backup."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    return urlunsplit(parts._replace(netloc=host + (f":{parts.port}" if parts.port else "")))


def quoted_model_name(name: str) -> str:
    """``name`` for a quoted MLflow search filter, refused when it holds a quote (MLflow cannot match it)."""
    if "'" in name:
        raise BackupError(f"registered model name {name!r} holds a quote, which MLflow's search cannot match")
    return name


def restored_summary(backup: VerifiedBackup, alias_records: int, notes: list[str]) -> BackupSummary:
    """What a restore of ``backup`` covered: ``alias_records`` appended, ``notes`` beside the backup's own."""
    return replace(
        _summary(backup.uri, backup.manifest, backup.key_id, (*backup.notes, *notes)),
        alias_records=alias_records,
    )


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
