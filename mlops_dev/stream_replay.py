"""A day of the reference flights replayed as events through the stream scorer (``make demo``'s streaming step):
each flight of the day as one event, scored by ``mlops-ops stream``'s engine with the champion and the online
features, one output record per flight."""

from __future__ import annotations

import json
import math
import os
import time
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

#: The Redis database the demo's streams live in (the compose stack's scorers use database 1 of their own Redis).
REDIS_URL_ENV = "MLOPS_DEMO_REDIS_URL"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
#: The streams the compose stack's stream-scorer service reads and writes (one hash tag: Redis Cluster-ready).
STREAMS = {
    "stream": "{flights}:events",
    "output": "{flights}:predictions",
    "dead_letter": "{flights}:dead-letters",
}
#: What identifies a flight: the batch scoring DAG's key columns, written into each output record.
KEY_COLUMNS = ["year", "month", "day", "carrier", "flight", "origin"]


def redis_url() -> str:
    """``$MLOPS_DEMO_REDIS_URL``, else the local Redis, database 0."""
    return os.environ.get(REDIS_URL_ENV) or DEFAULT_REDIS_URL


def flight_events(frame: pd.DataFrame) -> Iterator[dict[str, str]]:
    """One stream entry per flight: what is known before departure as ``data`` (the prediction API's
    ``FlightRequest``), the flight's key as ``event_id`` and its scheduled hour (``time_hour``) as ``event_time``."""
    for row in frame.itertuples(index=False):
        departure = datetime(
            int(row.year),
            int(row.month),
            int(row.day),
            int(row.sched_dep_time) // 100 % 24,
            int(row.sched_dep_time) % 100,
        )
        tailnum = row.tailnum if isinstance(row.tailnum, str) else None
        data = {
            "carrier": row.carrier,
            "origin": row.origin,
            "dest": row.dest,
            "tailnum": tailnum,
            "flight": int(row.flight),
            "scheduled_departure": departure.isoformat(),
            "sched_arr_time": int(row.sched_arr_time),
            "distance": float(row.distance),
        }
        yield {
            "data": json.dumps(data),
            "event_id": f"{row.carrier}{int(row.flight)}-{row.origin}-{departure:%Y%m%d}",
            "event_time": row.time_hour.isoformat(),
        }


def flights_of_day(flights: pd.DataFrame, day: date) -> pd.DataFrame:
    """The flights whose ``time_hour`` (their scheduled hour in UTC, the event time) lies in ``day`` (UTC): the
    rows batch scoring places in that day's interval."""
    import pandas as pd

    start = pd.Timestamp(day, tz="UTC")
    hours = flights["time_hour"]
    return flights[(hours >= start) & (hours < start + pd.Timedelta(days=1))]


def replay_day(day: date, flights: pd.DataFrame, model_name: str = "flight_delay") -> dict[str, Any]:
    """Send ``day``'s flights (the rows of ``flights`` in the day's interval, :func:`flights_of_day`) to the
    input stream, freshly emptied, and score them all with one scorer in this process.

    :return: ``{"events", "scored", "dead_letters" ({kind: count}), "seconds", "events_per_second",
        "versions", "redis"}``; ``{"skipped": reason}`` when no Redis answers at :func:`redis_url`.
    """
    import redis

    from include.flights.serving import SERVING_CONFIG
    from mlops_ops.serving import ServingConfig
    from mlops_ops.streaming.redis_streams import _endpoint
    from mlops_ops.streaming.scorer import StreamConfig, StreamScorer

    url = redis_url()
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.ConnectionError:
        return {
            "skipped": f"no Redis answers at {_endpoint(url)} (start redis-server, or set ${REDIS_URL_ENV})"
        }
    try:
        client.delete(*STREAMS.values())
        events = list(flight_events(flights_of_day(flights, day)))
        pipe = client.pipeline(transaction=False)
        for index, fields in enumerate(events, 1):
            pipe.xadd(STREAMS["stream"], fields)
            if index % 1000 == 0:
                pipe.execute()
        pipe.execute()
        serving = ServingConfig(**{**SERVING_CONFIG, "model_name": model_name})
        config = StreamConfig(
            serving=serving, redis_url=url, consumer="demo", key_columns=KEY_COLUMNS, **STREAMS
        )
        idle = 1.0
        started = time.monotonic()
        stats = StreamScorer(config).run(idle_exit_s=idle)
        seconds = max(time.monotonic() - started - idle, 1e-3)
        kinds = Counter(
            fields[b"kind"].decode() for _, fields in client.xrange(STREAMS["dead_letter"], "-", "+")
        )
    finally:
        client.close()
    return {
        "events": len(events),
        "scored": stats.scored,
        "dead_letters": dict(kinds),
        "seconds": round(seconds, 2),
        "events_per_second": math.floor(len(events) / seconds),
        "versions": dict(stats.versions),
        "redis": _endpoint(url),
    }
