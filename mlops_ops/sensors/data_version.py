"""Sensor that waits for a version of the training data that the current models were not trained on."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal, get_args

from airflow.sdk import BaseSensorOperator, PokeReturnValue, conf
from airflow.sdk.exceptions import AirflowFailException, AirflowSensorTimeout

from mlops_ops.core.errors import MlopsError
from mlops_ops.core.lineage import DATA_VERSION as DATA_VERSION_TAG
from mlops_ops.core.versions import DataVersion, is_new_version
from mlops_ops.operators.base import ObjectStorageBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlops_ops.hooks.mlflow import MlflowHook

SourceKind = Literal["auto", "local", "s3", "gs", "abfs", "delta", "dvc"]


class DataSourceError(MlopsError, RuntimeError):
    """The data source could not be read (as opposed to: it holds no new version yet)."""


class PinnedVersionUnavailable(MlopsError, AirflowFailException):
    """The source does not hold the pinned data version (its content changed since that version).

    Not retried: the content will not change back by itself. Raised from ``execute`` before any poke, so
    ``soft_fail`` (which only wraps pokes and deferral) does not turn it into a skip.
    """


class DataVersionSensor(ObjectStorageBaseOperator, BaseSensorOperator):
    """
    Wait until a data source holds a version (content fingerprint) not seen before.

    The source is looked at once; when its current version is new the sensor succeeds at once, otherwise it
    defers to :class:`~mlops_ops.triggers.data_version.DataVersionTrigger` (or pokes, when not deferrable).
    Versions to ignore are ``seen_fingerprints`` plus, when ``registered_model_name`` is set, the
    ``mlops.data_version`` tag of the model versions that ``skip_aliases`` point at: the sensor then waits
    for data newer than what the champion and the challenger were trained on.

    :param source: the data: a local file, folder or glob, ``s3://bucket/prefix``, ``gs://bucket/prefix``,
        ``abfs://container/prefix``, a Delta table path or URI, or a DVC ``.dvc`` file. (templated)
    :param kind: ``"auto"`` (``s3://``, ``gs://`` and ``abfs://`` by their scheme, ``*.dvc`` is DVC, a folder
        holding ``_delta_log`` is Delta, anything else local files), ``"local"``, ``"s3"``, ``"gs"``,
        ``"abfs"``, ``"delta"`` or ``"dvc"``.
    :param seen_fingerprints: fingerprints of versions to ignore; a list, or a JSON list / comma-separated
        string when rendered from a template. (templated)
    :param registered_model_name: MLflow registered model whose aliased versions' data versions are ignored.
        (templated)
    :param skip_aliases: aliases of ``registered_model_name`` whose training data counts as seen.
    :param accept_seen: accept any existing version, seen or not (a forced retrain); a bool or a
        ``"true"``/``"false"`` string rendered from a template. (templated)
    :param pinned_fingerprint: when set, the one data version to use (``"sha256:..."``): the source is looked
        at once and must hold exactly that version, seen or not; otherwise the task fails with both
        fingerprints, never waiting and never falling back to another version. Empty: not pinned. (templated)
    :param mlflow_conn_id: Airflow connection id of the MLflow server.
    :param storage_conn_id: the connection of an object-store source (``aws`` for S3 and Delta tables on S3,
        ``google_cloud_platform`` for GCS, ``wasb`` for Azure; see
        :class:`~mlops_ops.operators.base.ObjectStorageBaseOperator`).
    :param deferrable: wait in the triggerer instead of holding a worker slot.
    :return: (XCom) the version found, ``{"fingerprint": "sha256:...", "source": ..., "kind": ...,
        "files": [paths or URIs], "size_bytes": int, "details": {...}}``.
    """

    template_fields: Sequence[str] = (
        "source",
        "seen_fingerprints",
        "registered_model_name",
        "accept_seen",
        "pinned_fingerprint",
    )
    ui_color = "#e6f2ff"

    def __init__(
        self,
        *,
        source: str,
        kind: SourceKind = "auto",
        seen_fingerprints: list[str] | str | None = None,
        registered_model_name: str | None = None,
        skip_aliases: Sequence[str] = ("champion", "challenger"),
        accept_seen: bool | str = False,
        pinned_fingerprint: str | None = None,
        mlflow_conn_id: str = "mlflow_default",
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if kind not in get_args(SourceKind):
            raise ValueError(f"kind must be one of {get_args(SourceKind)}, got {kind!r}")
        self.source = source
        self.kind = kind
        self.seen_fingerprints = seen_fingerprints
        self.registered_model_name = registered_model_name
        self.skip_aliases = skip_aliases
        self.accept_seen = accept_seen
        self.pinned_fingerprint = pinned_fingerprint
        self.mlflow_conn_id = mlflow_conn_id
        self.deferrable = deferrable

    @cached_property
    def hook(self) -> MlflowHook:
        """The MLflow hook used to read the aliased versions' data versions."""
        from mlops_ops.hooks.mlflow import MlflowHook

        return MlflowHook(mlflow_conn_id=self.mlflow_conn_id)

    @cached_property
    def seen(self) -> frozenset[str]:
        """Fingerprints to ignore: ``seen_fingerprints`` and the data versions of the aliased models."""
        if _as_bool(self.accept_seen):
            return frozenset()
        seen = set(_as_list(self.seen_fingerprints))
        if self.registered_model_name:
            for alias in self.skip_aliases:
                model_version = self.hook.get_version_by_alias(self.registered_model_name, alias)
                fingerprint = (getattr(model_version, "tags", None) or {}).get(DATA_VERSION_TAG)
                if fingerprint:
                    self.log.info(
                        "%s@%s was trained on data version %s", self.registered_model_name, alias, fingerprint
                    )
                    seen.add(fingerprint)
        return frozenset(seen)

    def _new_version(self) -> DataVersion | None:
        from mlops_ops.hooks.data_sources import find_data_version

        version = find_data_version(self.source, self.kind, self.storage_conn_id)
        if version is None:
            self.log.info("No data at %s yet", self.source)
            return None
        self.log.info(
            "Data version of %s: %s (%s, %d files, %d bytes)",
            self.source,
            version.fingerprint,
            version.kind,
            len(version.files),
            version.size_bytes,
        )
        if not is_new_version(version, self.seen):
            self.log.info("Data version %s was already seen; waiting for a new one", version.fingerprint)
            return None
        return version

    def poke(self, context: Context) -> PokeReturnValue:
        """Look at the source once; done when its version is new."""
        version = self._new_version()
        return PokeReturnValue(is_done=version is not None, xcom_value=version.to_dict() if version else None)

    def _pinned_version(self, pinned: str) -> dict[str, Any]:
        from mlops_ops.hooks.data_sources import find_data_version

        version = find_data_version(self.source, self.kind, self.storage_conn_id)
        found = version.fingerprint if version is not None else "no data"
        if version is None or found != pinned:
            raise PinnedVersionUnavailable(
                f"data version {pinned} is pinned, but {self.source} holds {found}: its content changed since "
                "that version (re-land those files, or trigger without a pinned data version)"
            )
        self.log.info("Pinned data version %s found at %s", pinned, self.source)
        return version.to_dict()

    def execute(self, context: Context) -> dict[str, Any] | None:
        """Look once, then defer (or poke) until a new version appears; return that version.

        With ``pinned_fingerprint``, return that version at once or fail.
        """
        pinned = str(self.pinned_fingerprint or "").strip()
        if pinned and pinned != "None":
            return self._pinned_version(pinned)
        version = self._new_version()
        if version is not None:
            return version.to_dict()
        if not self.deferrable:
            return super().execute(context)
        from mlops_ops.triggers.data_version import DataVersionTrigger

        self.defer(
            trigger=DataVersionTrigger(
                source=self.source,
                kind=self.kind,
                seen_fingerprints=sorted(self.seen),
                storage_conn_id=self.storage_conn_id,
                poke_interval=self.poke_interval,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger fired: fail on a missing or non-success event, else return its version."""
        if not event:
            raise DataSourceError(f"DataVersionTrigger for {self.source!r} fired without an event")
        status = event.get("status")
        if status == "success" and event.get("version"):
            version = event["version"]
            self.log.info("New data version of %s: %s", self.source, version.get("fingerprint"))
            return version
        message = event.get("message") or f"DataVersionTrigger for {self.source!r} returned {event!r}"
        if status == "timeout":
            raise AirflowSensorTimeout(message)
        # Not an AirflowException: soft_fail turns those into a skip, and a broken source (access denied,
        # a malformed .dvc file) must fail the run, not pass for "no new data". Retries still apply.
        raise DataSourceError(message)


def _as_bool(value: bool | str | None) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _as_list(value: Sequence[str] | str | None) -> list[str]:
    # A Jinja template renders to a string unless the DAG renders native objects.
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return [str(item) for item in json.loads(text) if item]
        return [
            item.strip() for item in text.replace("\n", ",").split(",") if item.strip() and item != "None"
        ]
    return [str(item) for item in value if item]
