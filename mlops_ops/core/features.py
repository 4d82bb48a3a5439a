"""Feature-store logic on Feast, with no Airflow import: configuration, materialization windows, point-in-time
training sets that keep every entity row, and the online/offline skew comparison.

Feast is the optional ``features`` extra: it is imported inside the functions that use it, through
:func:`mlops_ops.core.optional.import_optional`, so a missing extra fails with a message naming it.
"""

from __future__ import annotations

import importlib.util
import math
import sys
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_ops.core import storage
from mlops_ops.core.errors import MlopsError
from mlops_ops.core.optional import import_optional

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureStore

EXTRA = "features"
#: The column of an entity frame Feast joins on in time.
EVENT_TIMESTAMP = "event_timestamp"
#: Where a repository keeps its Python definitions: a module exposing ``definitions(data_root) -> {name: obj}``.
DEFINITIONS_FILE = "definitions.py"
#: Materializing from here on a first run means "everything the offline store holds up to ``end``".
FIRST_START = datetime(1970, 1, 1, tzinfo=UTC)
#: Client timeouts (seconds) added to a Redis online store's connection string unless it sets them: redis-py
#: waits for an answer forever by default, so a Redis that hangs would hang the task; with these a dead or
#: silent Redis fails the write in seconds (after redis-py's own 3 retries) and Airflow retries the task.
REDIS_TIMEOUTS = {"socket_connect_timeout": 5, "socket_timeout": 30}


class FeatureStoreError(MlopsError, RuntimeError):
    """The feature repository or a feature request is wrong in a way a retry will not fix."""


@dataclass(frozen=True)
class FeastSettings:
    """Where a feature repository's definitions, registry, offline sources and online store are.

    :param repo_path: the folder holding ``definitions.py`` (and ``feature_store.yaml`` for the Feast CLI).
    :param data_root: root of the offline sources; the registry and the SQLite online store default under
        ``<data_root>/feast/``.
    :param project: the Feast project; it also prefixes every key in a Redis online store.
    :param online_store: Feast's ``online_store`` mapping; default SQLite under the data root.
    :param registry: the registry path; default ``<data_root>/feast/registry.db``.
    """

    repo_path: str
    data_root: str
    project: str
    online_store: Mapping[str, Any] | None = None
    registry: str | None = None

    def repo_config(self) -> dict[str, Any]:
        """The ``feature_store.yaml`` equivalent, as a mapping for ``feast.RepoConfig``."""
        if "://" in self.data_root:
            raise FeatureStoreError(
                f"the Feast file offline store here reads local Parquet; data root {self.data_root} is in an object "
                "store: set the feast connection's extra data_root to a local (or mounted) folder"
            )
        feast_dir = Path(self.data_root, "feast")
        return {
            "project": self.project,
            "provider": "local",
            "registry": {"path": self.registry or str(feast_dir / "registry.db"), "cache_ttl_seconds": 60},
            "offline_store": {"type": "file"},
            "online_store": with_redis_timeouts(
                dict(self.online_store or {"type": "sqlite", "path": str(feast_dir / "online.db")})
            ),
            "entity_key_serialization_version": 3,
            "auth": {"type": "no_auth"},
            "repo_path": str(Path(self.repo_path).resolve()),
        }

    @property
    def online_store_type(self) -> str:
        """``sqlite``, ``redis``, ...: the online store's type."""
        return str((self.online_store or {}).get("type", "sqlite"))


def repository_project(repo_path: str | Path) -> str:
    """The ``project`` named by the repository's ``feature_store.yaml`` (what the Feast CLI reads).

    :raises FeatureStoreError: naming the file, when it is missing, unreadable or names no project.
    """
    import yaml

    path = Path(repo_path, "feature_store.yaml")
    try:
        project = (yaml.safe_load(path.read_text()) or {}).get("project")
    except (OSError, yaml.YAMLError, AttributeError) as err:
        raise FeatureStoreError(
            f"cannot read the Feast project from {path} ({type(err).__name__}): set the connection's extra "
            "'project'"
        ) from err
    if not isinstance(project, str) or not project.strip():
        raise FeatureStoreError(
            f"{path} names no project: set its 'project' or the connection's extra 'project'"
        )
    return project.strip()


def with_redis_timeouts(online_store: dict[str, Any]) -> dict[str, Any]:
    """``online_store`` with :data:`REDIS_TIMEOUTS` appended to a Redis connection string that lacks them
    (Feast passes its ``key=value`` options to the Redis client); other stores unchanged."""
    if online_store.get("type") != "redis":
        return online_store
    connection = str(online_store.get("connection_string", "localhost:6379"))
    present = {part.split("=", 1)[0].strip() for part in connection.split(",") if "=" in part}
    added = [f"{key}={value}" for key, value in REDIS_TIMEOUTS.items() if key not in present]
    return {**online_store, "connection_string": ",".join([connection, *added])}


def load_definitions(repo_path: str | Path, data_root: str) -> dict[str, Any]:
    """The Feast objects of the repository at ``repo_path``, by name, over the offline sources in ``data_root``.

    :raises FeatureStoreError: when the folder has no ``definitions.py`` with a ``definitions`` function.
    """
    import_optional("feast", EXTRA)
    path = Path(repo_path, DEFINITIONS_FILE)
    if not path.is_file():
        raise FeatureStoreError(f"no feature definitions at {path}")
    # A fresh module per call: definitions depend on the data root and must not come from an old import.
    name = f"_mlops_feature_repo_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise FeatureStoreError(f"{path} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    build = getattr(module, "definitions", None)
    if not callable(build):
        raise FeatureStoreError(f"{path} has no definitions(data_root) function")
    return dict(build(data_root))


def apply_definitions(store: FeatureStore, objects: Mapping[str, Any]) -> list[str]:
    """Register ``objects`` (entities, views, services) in the store's registry; idempotent.

    :return: the names applied, sorted.
    """
    store.apply(list(objects.values()))
    return sorted(objects)


# --- materialization ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MaterializeWindow:
    """The interval one materialization writes to the online store.

    :param start: the first event time read (inclusive).
    :param end: the last event time read.
    :param first_run: no view had been materialized before.
    :param clamped: the requested end was before what the online store already holds, so the window was
        moved to end there (a re-run of an old interval must not roll the online store back).
    """

    start: datetime
    end: datetime
    first_run: bool
    clamped: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe, for XCom."""
        return {**asdict(self), "start": self.start.isoformat(), "end": self.end.isoformat()}


def as_utc(moment: datetime | str) -> datetime:
    """``moment`` (a datetime or ISO string) as an aware UTC datetime; naive values are taken as UTC."""
    value = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def materialize_window(
    last_ends: Iterable[datetime | None], end: datetime, overlap: timedelta
) -> MaterializeWindow:
    """The window that brings every view up to ``end``, re-reading ``overlap`` before the oldest last end.

    Late rows (stamped before the last materialized end but written after it) are picked up when they are at
    most ``overlap`` late. A view never materialized starts at :data:`FIRST_START`.

    :param last_ends: each view's most recent materialized end (``None`` when never materialized).
    """
    ends = list(last_ends)
    known = [as_utc(value) for value in ends if value is not None]
    end = as_utc(end)
    if not ends or len(known) < len(ends):
        return MaterializeWindow(start=FIRST_START, end=end, first_run=True, clamped=False)
    newest = max(known)
    clamped = end < newest
    if clamped:
        end = newest
    start = min(known) - overlap
    return MaterializeWindow(start=min(start, end), end=end, first_run=False, clamped=clamped)


def materialize(
    store: FeatureStore, end: datetime, overlap: timedelta, feature_views: Sequence[str] | None = None
) -> MaterializeWindow:
    """Materialize ``feature_views`` (default all) up to ``end`` with :func:`materialize_window`'s window.

    Idempotent: online rows are keyed by entity, so writing the same window twice leaves the same state.
    """
    views = [
        view
        for view in store.list_feature_views()
        if feature_views is None or view.name in set(feature_views)
    ]
    missing = sorted(set(feature_views or ()) - {view.name for view in views})
    if missing:
        raise FeatureStoreError(f"no feature views {missing} in project {store.project}")
    window = materialize_window([view.most_recent_end_time for view in views], end, overlap)
    store.materialize(
        start_date=window.start, end_date=window.end, feature_views=[view.name for view in views]
    )
    return window


# --- point-in-time training sets ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingSetReport:
    """What a point-in-time join did to the entity rows.

    :param rows_in: entity rows asked for.
    :param rows_out: rows of the training set (always ``rows_in``).
    :param rows_unmatched: distinct (keys, time) pairs, summed over views, that a view held no feature row for
        within its TTL (Feast's file offline store would drop their rows; here they get null features).
    :param rows_with_missing: rows with at least one null feature.
    :param missing: null count per feature.
    :param features: the feature columns added, in order.
    """

    rows_in: int
    rows_out: int
    rows_unmatched: int
    rows_with_missing: int
    missing: dict[str, int] = field(default_factory=dict)
    features: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe, for XCom."""
        return asdict(self)


def feature_refs(store: FeatureStore, features: str | Sequence[str]) -> dict[str, list[str]]:
    """Resolve a feature service name, or ``view:feature`` references, to ``{view name: [feature names]}``."""
    if isinstance(features, str):
        service = store.get_feature_service(features)
        return {p.name: [f.name for f in p.features] for p in service.feature_view_projections}
    views: dict[str, list[str]] = {}
    for ref in features:
        view, _, name = ref.partition(":")
        if not name:
            raise FeatureStoreError(f"feature reference {ref!r} is not 'view:feature'")
        views.setdefault(view, []).append(name)
    return views


def join_keys(store: FeatureStore, view_name: str) -> list[str]:
    """The entity columns a feature view joins on."""
    return [column.name for column in store.get_feature_view(view_name).entity_columns]


def _utc(values: pd.Series) -> pd.Series:
    import pandas as pd

    stamps = pd.to_datetime(values)
    stamps = stamps.dt.tz_localize("UTC") if stamps.dt.tz is None else stamps.dt.tz_convert("UTC")
    return stamps.astype("datetime64[ns, UTC]")


def _as_keys(values: pd.Series) -> pd.Series:
    # Plain str keys on both sides; a null key becomes "", which matches no feature row (its features stay null).
    return values.astype("string").fillna("").astype(object)


#: The feature row's own timestamp inside a join (kept apart from the entity timestamp to apply the TTL).
_FEATURE_TIME = "__feature_time"
_ROW = "__row"


@dataclass(frozen=True)
class ViewTable:
    """One feature view's offline rows, ready for as-of joins.

    :param name: the feature view.
    :param keys: its join keys.
    :param features: the features read from it.
    :param ttl: how old a feature row may be at the entity's time; ``None`` for no limit (Feast's zero TTL).
    :param rows: ``keys + __feature_time + features``, sorted by ``__feature_time``.
    """

    name: str
    keys: tuple[str, ...]
    features: tuple[str, ...]
    ttl: timedelta | None
    rows: pd.DataFrame


class PointInTimeJoin:
    """Point-in-time features from a Feast repository's offline sources, read once and joined many times.

    The semantics are those of Feast's ``get_historical_features``: for an entity row at time ``t``, each view
    contributes its latest feature row stamped at or before ``t`` and no older than the view's TTL (a zero TTL
    means no limit). The join itself is a sorted as-of merge per view: Feast's file offline store joins every
    entity row with every feature row of its key before filtering on time, which took 25 s and 23 GB for 8,000
    flights here (the whole year did not fit in memory); the as-of merge joins the year in seconds.

    Unlike Feast's file store, every entity row comes out, in order (rows in = rows out): a row a view has
    nothing for keeps null features for that view, and is counted.

    :param tables: one :class:`ViewTable` per feature view.
    """

    def __init__(self, tables: Sequence[ViewTable]) -> None:
        self.tables = list(tables)

    @property
    def features(self) -> list[str]:
        """The feature columns a join adds, in order."""
        return [name for table in self.tables for name in table.features]

    @property
    def keys(self) -> list[str]:
        """Every join key the entity frame must hold."""
        return list(dict.fromkeys(key for table in self.tables for key in table.keys))

    @classmethod
    def from_store(cls, store: FeatureStore, features: str | Sequence[str]) -> PointInTimeJoin:
        """Read the offline sources of ``features`` (a service name or ``view:feature`` references).

        :raises FeatureStoreError: when a view's source is not a local Parquet file, lacks a column, or holds
            two rows for one key at one time (which row is meant would be a guess).
        """
        import pyarrow.parquet as pq

        tables = []
        for view_name, names in feature_refs(store, features).items():
            view = store.get_feature_view(view_name)
            path, timestamp_field = _local_file_source(view, view_name)
            keys = tuple(column.name for column in view.entity_columns)
            wanted = [*keys, timestamp_field, *names]
            schema = pq.read_schema(path)
            absent = [column for column in wanted if column not in schema.names]
            if absent:
                raise FeatureStoreError(f"feature view {view_name}: its source {path} lacks columns {absent}")
            rows = pq.read_table(path, columns=wanted).to_pandas()
            for key in keys:
                rows[key] = _as_keys(rows[key])
            rows = rows.rename(columns={timestamp_field: _FEATURE_TIME})
            rows[_FEATURE_TIME] = _utc(rows[_FEATURE_TIME])
            rows = rows.sort_values(_FEATURE_TIME, kind="stable", ignore_index=True)
            if rows.duplicated([*keys, _FEATURE_TIME]).any():
                raise FeatureStoreError(
                    f"feature view {view_name}: its source {path} holds more than one row per entity and time"
                )
            ttl = view.ttl if view.ttl and view.ttl > timedelta(0) else None
            tables.append(ViewTable(view_name, keys, tuple(names), ttl, rows))
        return cls(tables)

    def join(
        self, entities: pd.DataFrame, timestamp_column: str = EVENT_TIMESTAMP
    ) -> tuple[pd.DataFrame, TrainingSetReport]:
        """``entities`` with the features appended, in the same order, with nothing dropped.

        :param entities: the join keys of every view, and ``timestamp_column`` (the time each row's features
            must be known at; naive times are UTC). Other columns pass through unchanged.
        :raises FeatureStoreError: when a join key or the timestamp column is missing or null, or a feature
            column would overwrite an entity column.
        """
        import pandas as pd

        needed = [*self.keys, timestamp_column]
        missing = [column for column in dict.fromkeys(needed) if column not in entities.columns]
        if missing:
            raise FeatureStoreError(f"the entity frame lacks {missing} (has {list(entities.columns)})")
        clash = sorted(set(self.features) & set(entities.columns))
        if clash:
            raise FeatureStoreError(f"feature columns {clash} already exist in the entity frame")
        frame = entities.reset_index(drop=True)
        stamps = _utc(frame[timestamp_column])
        if stamps.isna().any():
            raise FeatureStoreError(
                f"{int(stamps.isna().sum())} entity row(s) have no {timestamp_column}: features cannot be "
                "placed in time"
            )
        order = pd.DataFrame({_ROW: range(len(frame)), EVENT_TIMESTAMP: stamps}).sort_values(
            EVENT_TIMESTAMP, kind="stable"
        )
        values = pd.DataFrame(index=frame.index)
        unmatched = 0
        for table in self.tables:
            rows = order[_ROW].to_numpy()
            left = order.assign(**{key: _as_keys(frame[key]).to_numpy()[rows] for key in table.keys})
            merged = pd.merge_asof(
                left,
                table.rows,
                left_on=EVENT_TIMESTAMP,
                right_on=_FEATURE_TIME,
                by=list(table.keys),
                direction="backward",
                allow_exact_matches=True,
            )
            stale = merged[_FEATURE_TIME].isna()
            if table.ttl is not None:
                stale |= merged[EVENT_TIMESTAMP] - merged[_FEATURE_TIME] > table.ttl
            unmatched += int(merged.loc[stale, [*table.keys, EVENT_TIMESTAMP]].drop_duplicates().shape[0])
            merged = merged.sort_values(_ROW, kind="stable")
            fresh = ~stale.loc[merged.index]
            for name in table.features:
                values[name] = merged[name].where(fresh).to_numpy()
        result = pd.concat([frame, values], axis=1)
        report = TrainingSetReport(
            rows_in=len(frame),
            rows_out=len(result),
            rows_unmatched=unmatched,
            rows_with_missing=int(values.isna().any(axis=1).sum()) if len(values.columns) else 0,
            missing={name: int(values[name].isna().sum()) for name in self.features},
            features=self.features,
        )
        return result, report


def frame_fingerprint(frame: pd.DataFrame) -> str:
    """A digest of a frame's column names, types and values (not of its file encoding): a training set's identity."""
    import hashlib

    import pandas as pd

    digest = hashlib.sha256(repr([(name, str(kind)) for name, kind in frame.dtypes.items()]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return "sha256:" + digest.hexdigest()


def historical_features(
    store: FeatureStore,
    entities: pd.DataFrame,
    features: str | Sequence[str],
    timestamp_column: str = EVENT_TIMESTAMP,
) -> tuple[pd.DataFrame, TrainingSetReport]:
    """Point-in-time features for every row of ``entities``, in the same order, with nothing dropped.

    One-off form of :class:`PointInTimeJoin` (which see); to join many batches, build it once.

    :param features: a feature service name, or ``view:feature`` references.
    :return: ``entities`` with one column per feature appended, and the report.
    """
    return PointInTimeJoin.from_store(store, features).join(entities, timestamp_column)


# --- online features and skew ------------------------------------------------------------------------------


def online_features(
    store: FeatureStore, features: str | Sequence[str], entity_rows: list[dict[str, Any]]
) -> dict[str, list[Any]]:
    """Online feature values for ``entity_rows``: ``{column: [value per row]}`` (join keys included)."""
    target: Any = store.get_feature_service(features) if isinstance(features, str) else list(features)
    return store.get_online_features(features=target, entity_rows=entity_rows).to_dict()


def same_value(left: Any, right: Any, tolerance: float = 1e-9) -> bool:
    """Whether two feature values are equal: nulls (None, NaN) equal each other, floats within ``tolerance``."""
    left_null = left is None or (isinstance(left, float) and math.isnan(left))
    right_null = right is None or (isinstance(right, float) and math.isnan(right))
    if left_null or right_null:
        return left_null and right_null
    if isinstance(left, int | float) and isinstance(right, int | float):
        return math.isclose(float(left), float(right), rel_tol=tolerance, abs_tol=tolerance)
    return str(left) == str(right)


@dataclass(frozen=True)
class SkewReport:
    """Online values against offline point-in-time values for sampled entities.

    :param checked: entity/feature values compared.
    :param mismatched: values that differ.
    :param entities: entities sampled, per feature view.
    :param examples: up to 20 mismatches, ``{"view", "key", "feature", "online", "offline", "at"}``.
    """

    checked: int
    mismatched: int
    entities: dict[str, int]
    examples: list[dict[str, Any]]

    @property
    def mismatch_rate(self) -> float:
        """Share of compared values that differ (0 when nothing was compared)."""
        return self.mismatched / self.checked if self.checked else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe, for XCom."""
        return {**asdict(self), "mismatch_rate": self.mismatch_rate}


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if hasattr(value, "item"):
        return _json_value(value.item())
    return str(value)


def _local_file_source(view: Any, view_name: str) -> tuple[str, str]:
    """The local Parquet file of a feature view's batch source and its timestamp column.

    :raises FeatureStoreError: when the source is missing, not a file source, or not a local path.
    """
    source = view.batch_source
    path = getattr(source, "path", None)
    if source is None or not path or "://" in str(path):
        raise FeatureStoreError(f"feature view {view_name}: its source {path!r} is not a local Parquet file")
    return str(path), str(source.timestamp_field)


def sample_keys(store: FeatureStore, view_name: str, size: int, seed: int) -> pd.DataFrame:
    """Up to ``size`` distinct entity keys of ``view_name``, sampled from its offline source."""
    view = store.get_feature_view(view_name)
    keys = [column.name for column in view.entity_columns]
    path, _ = _local_file_source(view, view_name)
    frame = storage.read_parquet([path], columns=keys).drop_duplicates()
    return frame.sample(n=min(size, len(frame)), random_state=seed).reset_index(drop=True)


def newest_event(store: FeatureStore, view_name: str) -> datetime:
    """The newest event timestamp in a feature view's offline source."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    path, column = _local_file_source(store.get_feature_view(view_name), view_name)
    newest = pc.max(pq.read_table(path, columns=[column])[column]).as_py()
    if newest is None:
        raise FeatureStoreError(f"the source of feature view {view_name} is empty")
    return as_utc(newest)


def skew_check(
    store: FeatureStore,
    features: str,
    sample_size: int = 50,
    seed: int = 0,
    at: datetime | None = None,
) -> SkewReport:
    """Compare online features with offline point-in-time features, view by view, for sampled entities.

    Each view is compared at ``at`` or, by default, at its last materialized end (or its newest source row,
    if earlier): the online store then holds, per entity, the latest row stamped up to that time, which is
    what a point-in-time join at the same time returns. An online value whose TTL has expired offline at that
    time is a mismatch: a model trained on these features never saw it.

    :param features: the feature service.
    :param sample_size: entities per view.
    """
    service = store.get_feature_service(features)
    checked = mismatched = 0
    counts: dict[str, int] = {}
    examples: list[dict[str, Any]] = []
    for projection in service.feature_view_projections:
        view = store.get_feature_view(projection.name)
        if at is not None:
            when = as_utc(at)
        else:
            if view.most_recent_end_time is None:
                raise FeatureStoreError(
                    f"feature view {view.name} was never materialized: nothing online to compare"
                )
            # Past the newest source row, a TTL expires offline while the online row stays: that is staleness
            # (the source stopped), reported by freshness checks, not a difference between the two stores.
            when = min(as_utc(view.most_recent_end_time), newest_event(store, view.name))
        refs = [f"{view.name}:{f.name}" for f in projection.features]
        keys = sample_keys(store, view.name, sample_size, seed)
        counts[view.name] = len(keys)
        if keys.empty:
            continue
        offline, _ = historical_features(store, keys.assign(**{EVENT_TIMESTAMP: when}), refs)
        online = online_features(store, refs, keys.to_dict(orient="records"))
        for index, row in offline.iterrows():
            for f in projection.features:
                online_value = online[f.name][index]
                offline_value = row[f.name]
                checked += 1
                if not same_value(online_value, offline_value):
                    mismatched += 1
                    if len(examples) < 20:
                        examples.append(
                            {
                                "view": view.name,
                                "key": {k: _json_value(row[k]) for k in keys.columns},
                                "feature": f.name,
                                "online": _json_value(online_value),
                                "offline": _json_value(offline_value),
                                "at": when.isoformat(),
                            }
                        )
    return SkewReport(checked=checked, mismatched=mismatched, entities=counts, examples=examples)
