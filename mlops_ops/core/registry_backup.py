"""Back up an MLflow model registry to a storage URI, and restore it into an empty MLflow.

A backup is a folder (local or ``s3://``)::

    manifest.json                     models, versions, aliases, tags, source runs; written last
    versions/<model>/<version>/...    each version's model artifact, as the registry serves it
    runs/<run_id>/...                 each source run's artifacts (gate decision, model card, ...)

The manifest is written after everything else, so a folder without one is an interrupted export and is never
restored. A restore checks the whole backup first (manifest, every artifact against its recorded sha256) and
refuses a target MLflow that holds any registered model or experiment run, so it never mixes two registries.

Version numbers are kept: aliases and the promotion history (``mlops.history.*`` model tags) name versions by
number. A backup of a registry where versions were deleted restores the gap as deleted versions. Runs get new
ids in the target; version tags naming a source run (``mlops.training_run_id``) are rewritten to the new id,
and each restored run and version keeps the old id in ``mlops.restore.source_run_id``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_ops.core import lineage, storage

if TYPE_CHECKING:
    from mlflow import MlflowClient

FORMAT = "mlops-ops-registry-backup/1"
MANIFEST = "manifest.json"
SOURCE_RUN_TAG = lineage.PREFIX + "restore.source_run_id"
#: Experiment holding the artifacts of versions that had no source run.
ORPHAN_EXPERIMENT = "mlops-registry-restore"


class BackupError(RuntimeError):
    """The backup cannot be written or restored; the message names the problem. Nothing was half-written."""


@dataclass(frozen=True)
class BackupSummary:
    """What an export or an import covered.

    :param uri: the backup's storage URI.
    :param models: registered model names.
    :param versions: model versions, all models together.
    :param runs: source runs.
    :param aliases: ``{"model@alias": version}``.
    """

    uri: str
    models: tuple[str, ...]
    versions: int
    runs: int
    aliases: dict[str, str]

    def describe(self) -> str:
        """One line for the command line."""
        aliases = ", ".join(f"{key} -> v{version}" for key, version in sorted(self.aliases.items())) or "none"
        return (
            f"{len(self.models)} model(s) ({', '.join(self.models) or '-'}), {self.versions} version(s), "
            f"{self.runs} run(s); aliases: {aliases}"
        )


# --- export -------------------------------------------------------------------------------------------------


def export_registry(
    client: MlflowClient, uri: str, s3_options: dict[str, Any] | None = None
) -> BackupSummary:
    """Write every registered model of ``client``'s registry, with artifacts and source runs, to ``uri``.

    :param uri: an empty (or missing) local folder or ``s3://`` prefix.
    :param s3_options: ``pyarrow.fs.S3FileSystem`` options for an ``s3://`` URI.
    :raises BackupError: when ``uri`` already holds files, or a version's artifact does not match the sha256
        recorded when it was trained (a corrupt model is not backed up as if it were good).
    """
    if _has_files(uri, s3_options):
        raise BackupError(f"{uri} is not empty: a backup is written into an empty folder or prefix only")
    models: list[dict[str, Any]] = []
    run_ids: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="mlops-backup-") as staging:
        root = Path(staging)
        for registered in _all_registered_models(client):
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
                    }
                )
            models.append(
                {
                    "name": registered.name,
                    "description": registered.description or "",
                    "tags": dict(registered.tags or {}),
                    "aliases": {alias: str(number) for alias, number in (registered.aliases or {}).items()},
                    "versions": versions,
                }
            )
        runs = {run_id: _export_run(client, run_id, root / "runs" / run_id) for run_id in sorted(run_ids)}
        manifest = {
            "format": FORMAT,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "source_tracking_uri": client.tracking_uri,
            "models": models,
            "runs": runs,
        }
        _publish(root, uri, s3_options, manifest)
    return _summary(uri, manifest)


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
    }


def _publish(root: Path, uri: str, s3_options: dict[str, Any] | None, manifest: dict[str, Any]) -> None:
    """Copy the staged tree to ``uri``, then the manifest: a reader never takes a partial copy for a backup."""
    import pyarrow.fs as pafs

    filesystem, path = storage.resolve(uri, s3_options)
    if not storage.is_s3(uri):
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
        handle.write(json.dumps(manifest, indent=1, sort_keys=True).encode())


# --- import -------------------------------------------------------------------------------------------------


def import_registry(
    client: MlflowClient, uri: str, artifact_root: str, s3_options: dict[str, Any] | None = None
) -> BackupSummary:
    """Restore the backup at ``uri`` into the empty MLflow of ``client``.

    :param artifact_root: where restored experiments keep their artifacts (``<root>/<experiment>``).
    :raises BackupError: when ``uri`` holds no complete backup, an artifact in it does not match its sha256,
        or the target MLflow is not empty; in each case before anything is written to MLflow.
    """
    with tempfile.TemporaryDirectory(prefix="mlops-restore-") as staging:
        root = Path(staging)
        manifest = _fetch_backup(uri, s3_options, root)
        _require_empty(client)
        new_run_ids = {
            old: _restore_run(client, old, run, root / "runs" / old, artifact_root)
            for old, run in manifest["runs"].items()
        }
        for model in manifest["models"]:
            client.create_registered_model(
                model["name"], tags=model["tags"], description=model["description"]
            )
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
    return _summary(uri, manifest)


def _fetch_backup(uri: str, s3_options: dict[str, Any] | None, root: Path) -> dict[str, Any]:
    """Copy the backup at ``uri`` into ``root`` and check it whole; return its manifest."""
    import pyarrow.fs as pafs

    filesystem, path = storage.resolve(uri, s3_options)
    if filesystem.get_file_info(f"{path}/{MANIFEST}").type != pafs.FileType.File:
        raise BackupError(
            f"{uri} holds no {MANIFEST}: it is not a backup, or its export was interrupted before it completed"
        )
    with filesystem.open_input_stream(f"{path}/{MANIFEST}") as handle:
        try:
            manifest = json.loads(handle.read())
        except ValueError as err:
            raise BackupError(f"{uri}/{MANIFEST} is not valid JSON: {err}") from err
    if manifest.get("format") != FORMAT:
        raise BackupError(
            f"{uri}/{MANIFEST} has format {manifest.get('format')!r}; this restore reads {FORMAT!r}"
        )
    for part in ("versions", "runs"):
        if filesystem.get_file_info(f"{path}/{part}").type == pafs.FileType.Directory:
            pafs.copy_files(
                f"{path}/{part}",
                str(root / part),
                source_filesystem=filesystem,
                destination_filesystem=pafs.LocalFileSystem(),
            )
    for model in manifest["models"]:
        for version in model["versions"]:
            _check_digest(root / "versions" / model["name"] / version["version"], version["artifact_sha256"])
    for run_id, run in manifest["runs"].items():
        _check_digest(root / "runs" / run_id, run["artifact_sha256"])
    return manifest


def _check_digest(folder: Path, expected: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)  # an artifact-less run has no folder in the backup
    actual = storage.directory_sha256(folder)
    if actual != expected:
        raise BackupError(
            f"backup folder {folder.name} of {folder.parent.name} has sha256 {actual}, the manifest recorded "
            f"{expected}: the backup is damaged; nothing was restored"
        )


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
    new_id = created.info.run_id
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
    tags = dict(version["tags"])
    if old_run:
        tags[SOURCE_RUN_TAG] = old_run
        if tags.get(lineage.TRAINING_RUN) == old_run:
            tags[lineage.TRAINING_RUN] = run_id
    created = client.create_model_version(
        name, source=source, run_id=run_id, tags=tags, description=version["description"] or None
    )
    # Versions deleted in the source registry left gaps in the numbering: fill them with deleted versions, so
    # every number (and every alias and history entry naming it) means the same model as before.
    while int(created.version) < number:
        client.delete_model_version(name, created.version)
        created = client.create_model_version(
            name, source=source, run_id=run_id, tags=tags, description=version["description"] or None
        )
    if int(created.version) != number:
        raise BackupError(f"{name}: restoring v{number} created v{created.version}; the target is not empty")


# --- shared -------------------------------------------------------------------------------------------------


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
    models, token = [], None
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


def _has_files(uri: str, s3_options: dict[str, Any] | None) -> bool:
    import pyarrow.fs as pafs

    filesystem, path = storage.resolve(uri, s3_options)
    info = filesystem.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        return False
    if info.type == pafs.FileType.File:
        return True
    return bool(filesystem.get_file_info(pafs.FileSelector(path, recursive=False)))


def _summary(uri: str, manifest: dict[str, Any]) -> BackupSummary:
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
    )
