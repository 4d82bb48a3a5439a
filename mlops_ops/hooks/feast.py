"""Hook for a Feast feature repository: its registry, offline sources and online store."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from mlops_ops.core import settings

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureStore

    from mlops_ops.core.features import (
        FeastSettings,
        MaterializeWindow,
        PointInTimeJoin,
        SkewReport,
        TrainingSetReport,
    )

#: The repository folder when the connection does not exist (the embedded profile of a development machine).
REPO_PATH_ENV = "MLOPS_FEAST_REPO"


def resolve_repo_path(path: str) -> str:
    """An absolute repository folder: ``path`` as is when absolute, else under the working directory or the
    project root (the parent of Airflow's DAGs folder), whichever holds it.

    :raises FileNotFoundError: naming every place looked in.
    """
    candidate = Path(path).expanduser()
    if candidate.is_absolute():
        places = [candidate]
    else:
        places = [Path.cwd() / candidate]
        dags_folder = os.environ.get("AIRFLOW__CORE__DAGS_FOLDER")
        if dags_folder:
            places.append(Path(dags_folder).resolve().parent / candidate)
    for place in places:
        if place.is_dir():
            return str(place.resolve())
    raise FileNotFoundError(
        f"feature repository {path!r} not found (looked in: {', '.join(map(str, places))})"
    )


def open_feature_store(settings: FeastSettings) -> FeatureStore:
    """A ``feast.FeatureStore`` over ``settings`` (creates the registry's and SQLite store's folder, nothing else).

    :class:`FeastHook` opens it from a connection; a notebook or a benchmark with settings in hand calls this.
    """
    from mlops_ops.core.features import EXTRA
    from mlops_ops.core.optional import import_optional

    feast = import_optional("feast", EXTRA)
    config = settings.repo_config()
    if config["online_store"].get("type") == "sqlite":
        Path(config["online_store"]["path"]).parent.mkdir(parents=True, exist_ok=True)
    Path(config["registry"]["path"]).parent.mkdir(parents=True, exist_ok=True)
    store: FeatureStore = feast.FeatureStore(config=feast.RepoConfig(**config))
    return store


class FeastHook(BaseHook):
    """
    Talks to a Feast feature repository through one Airflow connection.

    The connection's *Host* is the repository folder (holding ``definitions.py``, e.g. ``include/<project>/
    feature_repo``; relative paths are looked up under the working directory, then the project root). The extra
    may set ``project`` (it also prefixes every Redis key; default: the ``project`` of the repository's
    ``feature_store.yaml``), ``data_root`` (where the offline sources, the registry and the SQLite online store
    live; default ``settings.feature_root()``, the data root when it is local), ``registry`` and
    ``online_store`` (Feast's mapping, e.g. ``{"type": "redis", "connection_string": "redis:6379"}``).
    Without the connection, ``$MLOPS_FEAST_REPO`` names the repository (SQLite online store under the feature
    root); with neither, the hook refuses to guess.
    Feast is imported only inside methods: it is the ``mlops-ops[features]`` extra.

    :param feast_conn_id: Airflow connection id of the feature repository.
    """

    conn_name_attr = "feast_conn_id"
    default_conn_name = "feast_default"
    conn_type = "feast"
    hook_name = "Feast"

    def __init__(self, feast_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.feast_conn_id = feast_conn_id

    @cached_property
    def settings(self) -> FeastSettings:
        """Where the repository, its data and its stores are, from the connection or the embedded default."""
        from airflow.sdk.exceptions import AirflowNotFoundException

        from mlops_ops.core.features import FeastSettings, FeatureStoreError, repository_project

        try:
            conn = self.get_connection(self.feast_conn_id)
        except AirflowNotFoundException:
            repo = os.environ.get(REPO_PATH_ENV)
            if not repo:
                raise FeatureStoreError(
                    f"no Airflow connection {self.feast_conn_id!r} and ${REPO_PATH_ENV} is not set: create the "
                    "connection (type feast, host = the feature repository folder) or set the variable"
                ) from None
            self.log.info(
                "No connection %r: using the repository %s with a SQLite online store",
                self.feast_conn_id,
                repo,
            )
            repo_path = resolve_repo_path(repo)
            return FeastSettings(
                repo_path=repo_path, data_root=settings.feature_root(), project=repository_project(repo_path)
            )
        if not conn.host:
            raise FeatureStoreError(
                f"connection {self.feast_conn_id!r} names no feature repository: set its host to the folder "
                "holding definitions.py"
            )
        extra = conn.extra_dejson
        repo_path = resolve_repo_path(conn.host)
        return FeastSettings(
            repo_path=repo_path,
            data_root=extra.get("data_root") or settings.feature_root(),
            project=extra.get("project") or repository_project(repo_path),
            online_store=extra.get("online_store"),
            registry=extra.get("registry"),
        )

    @property
    def online_store_endpoint(self) -> str:
        """Where the online store is, for messages: ``redis://host:port`` (no password), or the SQLite file."""
        online = dict(self.settings.online_store or {})
        if online.get("type") == "redis":
            address = str(online.get("connection_string", "localhost:6379")).split(",")[0]
            return f"redis://{address}"
        return str(online.get("path") or self.settings.repo_config()["online_store"].get("path", ""))

    def unreachable_as(self, action: str) -> AbstractContextManager[None]:
        """A block whose failures to reach the online store are re-raised as one
        :class:`~mlops_ops.core.services.ServiceUnavailable` naming it and ``action`` ("Redis online store
        redis://redis:6379 unreachable while materializing ...").

        :param action: what the block does.
        """
        from mlops_ops.core.services import unreachable_as

        names = {"redis": "Redis", "sqlite": "SQLite"}
        kind = names.get(self.settings.online_store_type, self.settings.online_store_type)
        return unreachable_as(f"{kind} online store", self.online_store_endpoint, action)

    def get_conn(self) -> FeatureStore:
        """A ``feast.FeatureStore`` over the connection's repository."""
        return open_feature_store(self.settings)

    @cached_property
    def store(self) -> FeatureStore:
        """The cached store of :meth:`get_conn`."""
        return self.get_conn()

    def test_connection(self) -> tuple[bool, str]:
        """Check that the definitions load, the registry opens and the online store answers."""
        try:
            from mlops_ops.core.features import load_definitions

            objects = load_definitions(self.settings.repo_path, self.settings.data_root)
            self.store.list_feature_views()
            self._ping_online_store()
        except Exception as err:
            return (
                False,
                f"Feast repository {self.feast_conn_id!r} is not usable: {type(err).__name__}: {err}",
            )
        return True, (
            f"Feast project {self.settings.project!r} at {self.settings.repo_path}: {len(objects)} definitions, "
            f"{self.settings.online_store_type} online store reachable"
        )

    def _ping_online_store(self) -> None:
        online = dict(self.settings.online_store or {})
        if online.get("type") == "redis":
            import redis

            # Feast's format: "host:port,db=0,password=...,ssl=true".
            address, *options = str(online.get("connection_string", "localhost:6379")).split(",")
            hostname, _, port = address.rpartition(":")
            kwargs = dict(option.split("=", 1) for option in options if "=" in option)
            redis.Redis(
                host=hostname or "localhost",
                port=int(port or 6379),
                db=int(kwargs.get("db", 0)),
                password=kwargs.get("password"),
                ssl=kwargs.get("ssl", "false").lower() == "true",
                socket_timeout=5,
            ).ping()

    def apply(self) -> list[str]:
        """Register the repository's definitions in the registry (idempotent); return their names."""
        from mlops_ops.core.features import apply_definitions, load_definitions

        return apply_definitions(
            self.store, load_definitions(self.settings.repo_path, self.settings.data_root)
        )

    def materialize(
        self, end: datetime, overlap: timedelta, feature_views: Sequence[str] | None = None
    ) -> MaterializeWindow:
        """Materialize up to ``end``, re-reading ``overlap`` before the last materialized end (late data)."""
        from mlops_ops.core.features import materialize

        return materialize(self.store, end, overlap, feature_views)

    def historical_features(
        self, entities: pd.DataFrame, features: str | Sequence[str], timestamp_column: str = "event_timestamp"
    ) -> tuple[pd.DataFrame, TrainingSetReport]:
        """Point-in-time features for every entity row (none dropped); see ``core.features``."""
        return self.point_in_time_join(features).join(entities, timestamp_column)

    def point_in_time_join(self, features: str | Sequence[str]) -> PointInTimeJoin:
        """The offline sources of ``features`` read once, to join many batches (batch scoring's chunks)."""
        from mlops_ops.core.features import PointInTimeJoin

        return PointInTimeJoin.from_store(self.store, features)

    def feature_store_join(
        self,
        feature_store: dict[str, Any],
        *,
        open_error: type[Exception] | None = None,
        join_error: type[Exception] | None = None,
    ) -> Callable[[pd.DataFrame], pd.DataFrame]:
        """A function joining raw rows point-in-time with the feature service of a model spec's ``feature_store``
        section (``{"feature_service", "timestamp_column", "entity_keys"}``): the entity keys are added by the
        ``entity_keys`` function, every row is kept in order (a missing feature is null), and the service's
        offline sources are read once, here, for all the batches joined later (scoring's chunks).

        :param open_error: the exception (an operator's failure class) raised, naming the service, when the
            service or its sources cannot be read; default: the ``FeatureStoreError`` / ``FileNotFoundError``
            itself.
        :param join_error: the same for rows the returned function cannot join.
        """
        from mlops_ops.core.features import FeatureStoreError
        from mlops_ops.core.modelspec import load_callable

        service = feature_store["feature_service"]
        timestamp_column = feature_store["timestamp_column"]
        entity_keys = (
            load_callable(feature_store["entity_keys"]) if feature_store.get("entity_keys") else None
        )
        try:
            joiner = self.point_in_time_join(service)
        except (FeatureStoreError, FileNotFoundError) as err:
            if open_error is None:
                raise
            raise open_error(f"cannot read feature service {service!r}: {err}") from err
        self.log.info("Joining feature service %s point-in-time on %s", service, timestamp_column)

        def join(raw: pd.DataFrame) -> pd.DataFrame:
            try:
                frame, report = joiner.join(entity_keys(raw) if entity_keys else raw, timestamp_column)
            except FeatureStoreError as err:
                if join_error is None:
                    raise
                raise join_error(f"joining feature service {service!r}: {err}") from err
            if report.rows_with_missing:
                self.log.info(
                    "%d of %d rows miss a feature of %s (null, as in training)",
                    report.rows_with_missing,
                    report.rows_in,
                    service,
                )
            return frame

        return join

    def online_features(
        self, features: str | Sequence[str], entity_rows: list[dict[str, Any]]
    ) -> dict[str, list]:
        """Online values for ``entity_rows``: ``{column: [value per row]}``."""
        from mlops_ops.core.features import online_features

        return online_features(self.store, features, entity_rows)

    def skew_check(
        self, features: str, sample_size: int, seed: int = 0, at: datetime | None = None
    ) -> SkewReport:
        """Online against offline point-in-time values for sampled entities; see ``core.features.skew_check``."""
        from mlops_ops.core.features import skew_check

        return skew_check(self.store, features, sample_size, seed, at)

    def teardown_online_store(self) -> None:
        """Delete this project's online data (its Redis keys, its SQLite tables)."""
        self.store.teardown()
