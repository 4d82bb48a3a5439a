"""Reading data sources as versions: local files, S3 prefixes (through the S3Hook), GCS and Azure prefixes
(through their storage connection), Delta tables, DVC files.

Blocking I/O; the trigger runs it in a thread, the sensor and operators call it directly.
"""

from __future__ import annotations

from typing import Any

from mlops_ops.core.errors import DataError
from mlops_ops.core.versions import (
    DataVersion,
    delta_version,
    detect_kind,
    dvc_version,
    local_files_fingerprint,
    local_version,
    object_files_fingerprint,
    object_store_version,
    s3_version,
    split_s3_uri,
)


def list_s3_objects(uri: str, aws_conn_id: str | None) -> list[dict[str, Any]]:
    """
    Every object under ``s3://bucket/prefix``, as ``list_objects_v2`` ``Contents`` dicts.

    :param uri: ``s3://bucket/prefix`` to list.
    :param aws_conn_id: Airflow AWS connection id (``None``: boto3's default credential chain).
    :return: dicts with ``Key``, ``ETag``, ``Size``.
    """
    from mlops_ops.core.optional import import_optional

    s3_module = import_optional("airflow.providers.amazon.aws.hooks.s3", "aws")
    bucket, prefix = split_s3_uri(uri)
    client = s3_module.S3Hook(aws_conn_id=aws_conn_id).get_conn()
    objects: list[dict[str, Any]] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        objects.extend(page.get("Contents", []))
    return objects


def find_data_version(
    source: str, kind: str = "auto", storage_conn_id: str | None = None
) -> DataVersion | None:
    """
    The current version of ``source`` (blocking I/O), or ``None`` when it holds no data yet.

    ``kind="auto"`` is resolved on every call, so a folder that later becomes a Delta table is read as one.

    :param source: local path/glob/folder, ``s3://bucket/prefix``, ``gs://bucket/prefix``,
        ``abfs://container/prefix``, Delta table path/URI or ``.dvc`` file.
    :param kind: ``"auto"``, ``"local"``, ``"s3"``, ``"gs"``, ``"abfs"``, ``"delta"`` or ``"dvc"``.
    :param storage_conn_id: the Airflow connection of an object-store source (``aws`` for S3 sources and Delta
        tables on S3, ``google_cloud_platform`` for ``gs://``, ``wasb`` for ``abfs://``).
    """
    resolved = detect_kind(source) if kind == "auto" else kind
    if resolved == "local":
        return local_version(source)
    if resolved == "s3":
        return s3_version(list_s3_objects(source, storage_conn_id), source)
    if resolved in ("gs", "abfs"):
        from mlops_ops.hooks.object_storage import object_store_for

        return object_store_version(source, object_store_for(source, storage_conn_id))
    if resolved == "delta":
        from mlops_ops.hooks.object_storage import delta_storage_options

        return delta_version(source, delta_storage_options(source, storage_conn_id))
    if resolved == "dvc":
        return dvc_version(source)
    raise ValueError(f"Unknown data source kind {kind!r} for {source!r}")


def verify_unchanged(data_version: dict[str, Any], storage_conn_id: str | None) -> None:
    """Check that the files of ``data_version`` still hold the content it was fingerprinted from.

    Between the sensor and a task that reads the files, a month may be re-landed: training on it would record
    lineage that names data it did not see. Local files and objects are checked (S3 by ETag and VersionId, no
    download; GCS and Azure by content, cached on size and modification time); Delta versions are immutable,
    and DVC versions are checked by the md5 in the ``.dvc`` file, so both are taken as they are.

    :raises DataError: naming the data version and what differs.
    """
    kind, fingerprint = data_version.get("kind"), data_version.get("fingerprint")
    files = list(data_version.get("files") or [])
    if kind == "local":
        root = (data_version.get("details") or {}).get("root")
        current = local_files_fingerprint(files, root) if root else None
    elif kind == "s3":
        wanted = set(files)
        objects = list_s3_objects(str(data_version["source"]), storage_conn_id)
        bucket = split_s3_uri(str(data_version["source"]))[0]
        listed = [item for item in objects if f"s3://{bucket}/{item['Key']}" in wanted]
        if len(listed) != len(wanted):
            raise DataError(f"data version {fingerprint}: {len(wanted) - len(listed)} of its files are gone")
        current_version = s3_version(listed, str(data_version["source"]))
        current = current_version.fingerprint if current_version else None
    elif kind in ("gs", "abfs"):
        from mlops_ops.hooks.object_storage import object_store_for

        root = str((data_version.get("details") or {}).get("root") or data_version["source"])
        current = object_files_fingerprint(files, root, object_store_for(files or [root], storage_conn_id))
    else:
        return
    if current is not None and current != fingerprint:
        raise DataError(
            f"the files of data version {fingerprint} changed since it was found (now {current}): "
            "re-run the sensor to pick up the new version"
        )
