"""Back up an MLflow model registry to a storage URI, and restore it into an empty MLflow.

The MLflow side of :mod:`mlops_ops.core.registry_backup`: that module defines the backup's layout, signs its
manifest and checks a backup whole before anything is restored; the functions here read a registry through an
MLflow client into a backup, and write a checked backup into a registry. ``mlops-ops registry export|import``
runs them with the client of an ``mlflow`` connection (:class:`~mlops_ops.hooks.mlflow.MlflowHook`).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_ops.core import lineage, storage
from mlops_ops.core.registry_backup import (
    ORPHAN_EXPERIMENT,
    SOURCE_RUN_TAG,
    BackupError,
    BackupSummary,
    VerifiedBackup,
    carried_alias_logs,
    check_model_name,
    check_run_id,
    model_entry,
    publish_backup,
    quoted_model_name,
    require_empty_destination,
    restore_alias_logs,
    restored_summary,
    run_entry,
    verified_backup,
    version_entry,
)
from mlops_ops.core.signing import SigningKey, VerificationKeys

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from mlops_ops.core.alias_log import AliasLogStore
    from mlops_ops.core.storage import ObjectStore

__all__ = [
    "BackupError",
    "BackupSummary",
    "export_registry",
    "import_registry",
    "restore_backup",
    "verified_backup",
]


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
    :param uri: an empty (or missing) local folder or object-store prefix.
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
    require_empty_destination(uri, object_store)
    keys = verification_keys or VerificationKeys.from_texts([signing_key.public_text])
    models: list[dict[str, Any]] = []
    run_ids: set[str] = set()
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="mlops-backup-") as staging:
        root = Path(staging)
        for registered in _all_registered_models(client):
            check_model_name(registered.name)
            versions = []
            for version in sorted(
                client.search_model_versions(f"name = '{quoted_model_name(registered.name)}'"),
                key=lambda v: int(v.version),
            ):
                folder = root / "versions" / registered.name / str(version.version)
                _download_version(client, registered.name, str(version.version), folder)
                versions.append(
                    version_entry(
                        registered.name,
                        str(version.version),
                        folder,
                        tags=dict(version.tags or {}),
                        description=version.description or "",
                        run_id=version.run_id or None,
                    )
                )
                if version.run_id:
                    run_ids.add(version.run_id)
            aliases = {alias: str(number) for alias, number in (registered.aliases or {}).items()}
            carried, model_notes = carried_alias_logs(alias_log, keys, registered.name, sorted(aliases))
            notes.extend(model_notes)
            models.append(
                model_entry(
                    registered.name,
                    description=registered.description or "",
                    tags=dict(registered.tags or {}),
                    aliases=aliases,
                    versions=versions,
                    alias_log=carried,
                )
            )
        for run_id in run_ids:
            check_run_id(run_id)
        runs = {run_id: _export_run(client, run_id, root / "runs" / run_id) for run_id in sorted(run_ids)}
        return publish_backup(
            root,
            uri,
            signing_key,
            object_store,
            models=models,
            runs=runs,
            source_tracking_uri=client.tracking_uri,
            notes=tuple(notes),
        )


def _export_run(client: MlflowClient, run_id: str, folder: Path) -> dict[str, Any]:
    run = client.get_run(run_id)
    folder.mkdir(parents=True)
    for item in client.list_artifacts(run_id):
        client.download_artifacts(run_id, item.path, str(folder))
    return run_entry(
        folder,
        experiment=client.get_experiment(run.info.experiment_id).name,
        run_name=run.info.run_name,
        status=run.info.status,
        start_time=run.info.start_time,
        end_time=run.info.end_time,
        params=dict(run.data.params),
        metrics=dict(run.data.metrics),
        tags=dict(run.data.tags),
    )


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
    :param uri: the backup's folder or object-store prefix.
    :param artifact_root: where restored experiments keep their artifacts (``<root>/<experiment>``).
    :param verification_keys: the public keys a manifest may be signed with.
    :param object_store: how to reach an object-store URI (:func:`~mlops_ops.hooks.object_storage.object_store_for`).
    :param alias_log: the target's signed alias log (see :func:`restore_backup`).
    :raises BackupError: see :func:`verified_backup` and :func:`restore_backup`.
    """
    with verified_backup(uri, verification_keys, object_store) as backup:
        return restore_backup(client, backup, artifact_root, alias_log=alias_log)


def restore_backup(
    client: MlflowClient,
    backup: VerifiedBackup,
    artifact_root: str,
    *,
    alias_log: AliasLogStore | None = None,
) -> BackupSummary:
    """Write a :class:`~mlops_ops.core.registry_backup.VerifiedBackup` into the empty MLflow of ``client``, then
    its alias logs.

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
    written, notes = restore_alias_logs(backup, alias_log)
    return restored_summary(backup, written, notes)


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
