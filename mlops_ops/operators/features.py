"""Feature-store operators: materialize to the online store, build point-in-time training sets, check skew."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from mlops_ops.core.errors import DataError, MlopsError
from mlops_ops.hooks.feast import FeastHook
from mlops_ops.operators.base import ObjectStorageBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlops_ops.core.features import TrainingSetReport


class FeatureSkewDetected(MlopsError, AirflowFailException):
    """Online features differ from offline point-in-time features beyond the threshold; a retry would not help."""


class TrainingSetRefused(DataError, AirflowFailException):
    """The training set is unusable (bad entity frame, too many missing features); a retry would not help."""


class FeastMaterializeOperator(BaseOperator):
    """
    Materialize a Feast repository's feature views to the online store, incrementally, with an overlap window.

    Each run reads from the oldest last-materialized end of the views minus ``overlap`` (rows that arrived
    late, but at most ``overlap`` late, are picked up) up to ``end``; the first run reads everything up to
    ``end``. Idempotent: online rows are keyed by entity, so a retry or a re-run writes the same state, and a
    re-run of an old interval (``end`` before what is online) re-reads the latest window instead of rolling
    the online store back. The registry is refreshed from the repository's definitions first
    (``apply_definitions``), which is idempotent too.

    :param end: the last event time to materialize (datetime or ISO string); default the run's
        ``data_interval_end``, or now for a manual run without one.
    :param overlap: how far before the last materialized end to re-read, for late data.
    :param feature_views: the views to materialize; default all.
    :param apply_definitions: register the repository's definitions before materializing.
    :param feast_conn_id: Feast connection (repository folder, project, online store).
    :return: ``{"project", "online_store", "applied", "feature_views", "window": {"start", "end", "first_run",
        "clamped"}}``.
    """

    template_fields: Sequence[str] = ("end", "feature_views")
    ui_color = "#fdebd0"

    def __init__(
        self,
        *,
        end: datetime | str | None = None,
        overlap: timedelta = timedelta(hours=6),
        feature_views: Sequence[str] | None = None,
        apply_definitions: bool = True,
        feast_conn_id: str = FeastHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.end = end
        self.overlap = overlap
        self.feature_views = feature_views
        self.apply_definitions = apply_definitions
        self.feast_conn_id = feast_conn_id

    @cached_property
    def hook(self) -> FeastHook:
        """The Feast hook of ``feast_conn_id``."""
        return FeastHook(self.feast_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_ops.core.features import as_utc

        end = as_utc(self.end or context.get("data_interval_end") or datetime.now(UTC))
        applied = self.hook.apply() if self.apply_definitions else []
        views = list(self.feature_views) if self.feature_views else None
        with self.hook.unreachable_as(
            f"materializing {views or 'every feature view'} up to {end.isoformat()}"
        ):
            window = self.hook.materialize(end, self.overlap, views)
        if window.clamped:
            self.log.warning(
                "asked to materialize up to %s, but the online store already holds data up to %s: "
                "re-read the latest window instead of rolling it back",
                end,
                window.end,
            )
        self.log.info("materialized %s from %s to %s", views or "every view", window.start, window.end)
        return {
            "project": self.hook.settings.project,
            "online_store": self.hook.settings.online_store_type,
            "applied": applied,
            "feature_views": views or sorted(view.name for view in self.hook.store.list_feature_views()),
            "window": window.to_dict(),
        }


class FeatureSetOperator(ObjectStorageBaseOperator, BaseOperator):
    """
    Build a point-in-time training (or scoring) set from a feature service and write it as Parquet.

    Every entity row comes out (rows in = rows out): a row that a feature view has nothing for within its TTL
    keeps null features for that view, and is counted, where Feast's file offline store would drop it. No
    feature value stamped after a row's timestamp is joined to it. The file is written atomically to a path
    derived from the DAG run, so a retry overwrites the same file.

    :param entities: the entity rows: Parquet URIs (a list or one), or a data version mapping/JSON with
        ``files`` (the output of ``DataVersionSensor``).
    :param feature_service: the Feast feature service to join.
    :param timestamp_column: the column of the entity rows that features must be known at.
    :param prepare: ``"module:function"`` applied to the entity frame first (e.g. to add a key column), or None.
    :param output_uri: where to write the set; default
        ``<data root>/feature_sets/<dag_id>/<run_id>/<task_id>.parquet``.
    :param max_missing_rate: fail when a larger share of rows has any null feature.
    :param apply_definitions: register the repository's definitions first (idempotent), so a training run does
        not depend on the ``features`` DAG having run; the offline sources must exist.
    :param feast_conn_id: Feast connection.
    :param storage_conn_id: the connection of ``s3://``, ``gs://`` or ``abfs://`` data (see
        :class:`~mlops_ops.operators.base.ObjectStorageBaseOperator`).
    :return: ``{"uri", "feature_service", "fingerprint", "rows_in", "rows_out", "rows_unmatched",
        "rows_with_missing", "missing": {feature: n}, "features": [...], "data_version"}``: ``fingerprint`` is
        the set's content digest; pass the whole result as ``TrainOperator``'s ``feature_set``. ``data_version``
        is the written file as a local data version (``None`` on S3), with the entity data's fingerprint in
        ``details.entities_fingerprint``.
    """

    template_fields: Sequence[str] = ("entities", "feature_service", "output_uri")
    template_fields_renderers = {"entities": "json"}
    ui_color = "#fdebd0"

    def __init__(
        self,
        *,
        entities: str | list[str] | dict[str, Any],
        feature_service: str,
        timestamp_column: str = "event_timestamp",
        prepare: str | None = None,
        output_uri: str | None = None,
        max_missing_rate: float = 1.0,
        apply_definitions: bool = True,
        feast_conn_id: str = FeastHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.entities = entities
        self.feature_service = feature_service
        self.timestamp_column = timestamp_column
        self.prepare = prepare
        self.output_uri = output_uri
        self.max_missing_rate = max_missing_rate
        self.apply_definitions = apply_definitions
        self.feast_conn_id = feast_conn_id

    @cached_property
    def hook(self) -> FeastHook:
        """The Feast hook of ``feast_conn_id``."""
        return FeastHook(self.feast_conn_id)

    def _entity_files(self) -> list[str]:
        import json

        value: Any = self.entities
        if isinstance(value, str) and value.strip().startswith(("{", "[")):
            value = json.loads(value)
        if isinstance(value, dict):
            value = value.get("files")
        if isinstance(value, str):
            value = [value]
        if not value or not all(isinstance(item, str) for item in value):
            raise TrainingSetRefused(f"entities must name Parquet files, got {str(self.entities)[:200]!r}")
        return list(value)

    def _data_version(self, uri: str) -> dict[str, Any] | None:
        """The written set as a data version (what ``TrainOperator`` takes), naming the entity data it came from."""
        import json

        from mlops_ops.core.versions import local_version

        if "://" in uri:  # an object store: no local data version
            return None
        version = local_version(uri)
        if version is None:  # pragma: no cover - just written
            return None
        entities: Any = self.entities
        if isinstance(entities, str) and entities.strip().startswith("{"):
            entities = json.loads(entities)
        upstream = entities.get("fingerprint") if isinstance(entities, dict) else None
        details = {
            **version.details,
            "entities_fingerprint": upstream,
            "feature_service": self.feature_service,
        }
        return {**version.to_dict(), "details": details}

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_ops.core import settings, storage
        from mlops_ops.core.features import FeatureStoreError, frame_fingerprint
        from mlops_ops.core.modelspec import load_callable

        if self.apply_definitions:
            self.hook.apply()
        files = self._entity_files()
        frame = storage.read_parquet(files, self.object_store(files))
        if self.prepare:
            frame = load_callable(self.prepare)(frame)
        try:
            result, report = self.hook.historical_features(frame, self.feature_service, self.timestamp_column)
        except FeatureStoreError as err:
            raise TrainingSetRefused(str(err)) from err
        ti = context["ti"]
        uri = self.output_uri or storage.join(
            settings.data_root(), "feature_sets", ti.dag_id, ti.run_id, f"{ti.task_id}.parquet"
        )
        storage.write_parquet_atomic(result, uri, self.object_store(uri))
        summary = {
            "uri": uri,
            "feature_service": self.feature_service,
            "fingerprint": frame_fingerprint(result),
            **report.to_dict(),
            "data_version": self._data_version(uri),
        }
        self.log.info(
            "%d rows in, %d out (%d key/time pairs had no feature row within a TTL); %d rows with a missing feature",
            report.rows_in,
            report.rows_out,
            report.rows_unmatched,
            report.rows_with_missing,
        )
        self._refuse_above_max_missing_rate(report, summary, ti)
        return summary

    def _refuse_above_max_missing_rate(
        self, report: TrainingSetReport, summary: dict[str, Any], ti: Any
    ) -> None:
        """Fail (not retried) when too many rows miss a feature; the summary is pushed first, so the refused
        set can be inspected."""
        rate = report.rows_with_missing / report.rows_in if report.rows_in else 0.0
        if rate > self.max_missing_rate:
            ti.xcom_push(key="return_value", value=summary)
            raise TrainingSetRefused(
                f"{report.rows_with_missing} of {report.rows_in} rows ({rate:.1%}) miss a feature of "
                f"{self.feature_service}, above max_missing_rate {self.max_missing_rate:.1%}; missing per "
                f"feature: {report.missing}"
            )


class FeatureSkewCheckOperator(BaseOperator):
    """
    Check that online features equal the offline point-in-time features for sampled entities.

    Per feature view of the service, ``sample_size`` entities are sampled from the offline source; their
    online values are compared with a point-in-time join at the view's last materialized end (or its newest
    source row, if earlier). The report is pushed before a mismatch rate above ``max_mismatch_rate`` fails
    the task with :class:`FeatureSkewDetected` (not retried).

    :param feature_service: the Feast feature service to check.
    :param sample_size: entities sampled per feature view.
    :param max_mismatch_rate: the share of compared values allowed to differ.
    :param seed: the sampling seed (a run is reproducible).
    :param feast_conn_id: Feast connection.
    :return: ``{"feature_service", "checked", "mismatched", "mismatch_rate", "entities": {view: n},
        "examples": [{"view", "key", "feature", "online", "offline", "at"}]}``.
    """

    template_fields: Sequence[str] = ("feature_service",)
    ui_color = "#fdebd0"

    def __init__(
        self,
        *,
        feature_service: str,
        sample_size: int = 50,
        max_mismatch_rate: float = 0.0,
        seed: int = 0,
        feast_conn_id: str = FeastHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.feature_service = feature_service
        self.sample_size = sample_size
        self.max_mismatch_rate = max_mismatch_rate
        self.seed = seed
        self.feast_conn_id = feast_conn_id

    @cached_property
    def hook(self) -> FeastHook:
        """The Feast hook of ``feast_conn_id``."""
        return FeastHook(self.feast_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        report = self.hook.skew_check(self.feature_service, self.sample_size, self.seed)
        summary = {"feature_service": self.feature_service, **report.to_dict()}
        self.log.info(
            "%d of %d values differ online vs offline (%s)",
            report.mismatched,
            report.checked,
            report.entities,
        )
        if report.mismatch_rate > self.max_mismatch_rate:
            context["ti"].xcom_push(key="return_value", value=summary)
            details = "; ".join(
                f"{e['view']} {e['key']} {e['feature']}: online {e['online']!r} != offline {e['offline']!r}"
                for e in report.examples[:5]
            )
            raise FeatureSkewDetected(
                f"{report.mismatched} of {report.checked} feature values ({report.mismatch_rate:.2%}) differ "
                f"between the online store and the offline point-in-time join, above max_mismatch_rate "
                f"{self.max_mismatch_rate:.2%}: {details}"
            )
        return summary
