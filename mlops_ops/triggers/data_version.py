"""Trigger that waits, in the triggerer, for a data source to hold a version not seen before."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from mlops_ops.core.versions import (
    DataVersion,
    delta_version,
    detect_kind,
    dvc_version,
    is_new_version,
    local_version,
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


def find_data_version(source: str, kind: str = "auto", aws_conn_id: str | None = None) -> DataVersion | None:
    """
    The current version of ``source`` (blocking I/O), or ``None`` when it holds no data yet.

    ``kind="auto"`` is resolved on every call, so a folder that later becomes a Delta table is read as one.

    :param source: local path/glob/folder, ``s3://bucket/prefix``, Delta table path/URI or ``.dvc`` file.
    :param kind: ``"auto"``, ``"local"``, ``"s3"``, ``"delta"`` or ``"dvc"``.
    :param aws_conn_id: Airflow AWS connection id for S3 sources and Delta tables on S3.
    """
    resolved = detect_kind(source) if kind == "auto" else kind
    if resolved == "local":
        return local_version(source)
    if resolved == "s3":
        return s3_version(list_s3_objects(source, aws_conn_id), source)
    if resolved == "delta":
        from mlops_ops.hooks.object_storage import delta_storage_options

        return delta_version(source, delta_storage_options(source, aws_conn_id))
    if resolved == "dvc":
        return dvc_version(source)
    raise ValueError(f"Unknown data source kind {kind!r} for {source!r}")


class DataVersionTrigger(BaseTrigger):
    """
    Fires once when ``source`` holds a data version whose fingerprint is not in ``seen_fingerprints``.

    Events: ``{"status": "success", "version": DataVersion.to_dict()}``,
    ``{"status": "error", "message": ..., "source": ...}`` when reading the source fails, and
    ``{"status": "timeout", "message": ..., "source": ...}`` after ``timeout_seconds``.

    :param source: local path/glob/folder, ``s3://bucket/prefix``, Delta table path/URI or ``.dvc`` file.
    :param kind: ``"auto"``, ``"local"``, ``"s3"``, ``"delta"`` or ``"dvc"``.
    :param seen_fingerprints: fingerprints of versions to ignore.
    :param aws_conn_id: Airflow AWS connection id for S3 sources.
    :param poke_interval: seconds between two looks at the source.
    :param timeout_seconds: give up with a ``timeout`` event after this many seconds (``None``: never;
        a deferring sensor relies on its deferral timeout instead).
    """

    def __init__(
        self,
        source: str,
        kind: str = "auto",
        seen_fingerprints: list[str] | None = None,
        aws_conn_id: str | None = "aws_default",
        poke_interval: float = 60.0,
        timeout_seconds: float | None = None,
    ) -> None:
        super().__init__()
        self.source = source
        self.kind = kind
        self.seen_fingerprints = list(seen_fingerprints or [])
        self.aws_conn_id = aws_conn_id
        self.poke_interval = poke_interval
        self.timeout_seconds = timeout_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Classpath and keyword arguments that rebuild this trigger in the triggerer."""
        return (
            "mlops_ops.triggers.data_version.DataVersionTrigger",
            {
                "source": self.source,
                "kind": self.kind,
                "seen_fingerprints": list(self.seen_fingerprints),
                "aws_conn_id": self.aws_conn_id,
                "poke_interval": self.poke_interval,
                "timeout_seconds": self.timeout_seconds,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Look at the source every ``poke_interval`` seconds until a new version appears."""
        started = time.monotonic()
        seen = set(self.seen_fingerprints)
        while True:
            try:
                version = await asyncio.to_thread(find_data_version, self.source, self.kind, self.aws_conn_id)
            except Exception as err:
                self.log.exception("Cannot read data source %s", self.source)
                yield TriggerEvent(
                    {
                        "status": "error",
                        "message": f"Cannot read data source {self.source!r}: {type(err).__name__}: {err}",
                        "source": self.source,
                    }
                )
                return
            if is_new_version(version, seen):
                assert version is not None
                self.log.info(
                    "New data version of %s: %s (%d files, %d bytes)",
                    self.source,
                    version.fingerprint,
                    len(version.files),
                    version.size_bytes,
                )
                yield TriggerEvent({"status": "success", "version": version.to_dict()})
                return
            if self.timeout_seconds is not None and time.monotonic() - started >= self.timeout_seconds:
                yield TriggerEvent(
                    {
                        "status": "timeout",
                        "message": f"No new data version of {self.source!r} within {self.timeout_seconds} s",
                        "source": self.source,
                    }
                )
                return
            self.log.debug(
                "No new data version of %s yet; next look in %s s", self.source, self.poke_interval
            )
            await asyncio.sleep(self.poke_interval)
