"""Trigger that waits, in the triggerer, for a data source to hold a version not seen before."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from mlops_ops.core.versions import is_new_version
from mlops_ops.hooks.data_sources import find_data_version

_UNSET: Any = object()


class DataVersionTrigger(BaseTrigger):
    """
    Fires once when ``source`` holds a data version whose fingerprint is not in ``seen_fingerprints``.

    Events: ``{"status": "success", "version": DataVersion.to_dict()}``,
    ``{"status": "error", "message": ..., "source": ...}`` when reading the source fails, and
    ``{"status": "timeout", "message": ..., "source": ...}`` after ``timeout_seconds``.

    :param source: local path/glob/folder, ``s3://``, ``gs://`` or ``abfs://`` prefix, Delta table path/URI or
        ``.dvc`` file.
    :param kind: ``"auto"``, ``"local"``, ``"s3"``, ``"gs"``, ``"abfs"``, ``"delta"`` or ``"dvc"``.
    :param seen_fingerprints: fingerprints of versions to ignore.
    :param storage_conn_id: the Airflow connection of an object-store source.
    :param aws_conn_id: its former name, still read from triggers serialized before the rename.
    :param poke_interval: seconds between two looks at the source.
    :param timeout_seconds: give up with a ``timeout`` event after this many seconds (``None``: never;
        a deferring sensor relies on its deferral timeout instead).
    """

    def __init__(
        self,
        source: str,
        kind: str = "auto",
        seen_fingerprints: list[str] | None = None,
        storage_conn_id: str | None = "aws_default",
        poke_interval: float = 60.0,
        timeout_seconds: float | None = None,
        aws_conn_id: Any = _UNSET,
    ) -> None:
        super().__init__()
        self.source = source
        self.kind = kind
        self.seen_fingerprints = list(seen_fingerprints or [])
        self.storage_conn_id = storage_conn_id if aws_conn_id is _UNSET else aws_conn_id
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
                "storage_conn_id": self.storage_conn_id,
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
                version = await asyncio.to_thread(
                    find_data_version, self.source, self.kind, self.storage_conn_id
                )
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
            if version is not None and is_new_version(version, seen):
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
