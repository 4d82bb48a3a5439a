"""Hook for the Redis server that holds the stream scorer's streams (what the compaction operator reads)."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from mlops_ops.streaming.redis_streams import RedisOutputStream

DEFAULT_PORT = 6379


class RedisStreamsHook(BaseHook):
    """
    Reaches a Redis server through one Airflow connection, the fields the Redis provider's ``redis`` connection
    uses: *Host*, *Port* (default 6379), *Login* and *Password* (Redis ACL user and password, both optional),
    and in the extra ``db`` (default 0, or the connection's *Schema*) and ``ssl`` (true for TLS). A connection
    given as a URI works alike: ``AIRFLOW_CONN_REDIS_DEFAULT='redis://:password@redis:6379/1'``.

    The client is built on first use, never when a DAG is parsed; it needs the ``streaming`` extra.

    :param redis_conn_id: Airflow connection id of the Redis server.
    """

    conn_name_attr = "redis_conn_id"
    default_conn_name = "redis_default"
    # Not "redis": the Redis provider registers that type; a connection of either type (or a redis:// URI) works.
    conn_type = "mlops_redis"
    hook_name = "Redis (mlops-ops streams)"

    def __init__(self, redis_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.redis_conn_id = redis_conn_id

    @cached_property
    def url(self) -> str:
        """``redis[s]://[user:password@]host:port/db`` of the connection (holds the password: never log it)."""
        connection = self.get_connection(self.redis_conn_id)
        extra = connection.extra_dejson
        if not connection.host:
            raise ValueError(f"connection {self.redis_conn_id!r} names no Redis host")
        database = extra.get("db", connection.schema or 0)
        try:
            database = int(database)
        except (TypeError, ValueError):
            raise ValueError(
                f"connection {self.redis_conn_id!r}: db must be a number, got {str(database)[:20]!r}"
            ) from None
        scheme = "rediss" if str(extra.get("ssl", "")).lower() in ("1", "true", "yes") else "redis"
        credentials = ""
        if connection.login or connection.password:
            credentials = (
                f"{quote(connection.login or '', safe='')}:{quote(connection.password or '', safe='')}@"
            )
        return f"{scheme}://{credentials}{connection.host}:{connection.port or DEFAULT_PORT}/{database}"

    def test_connection(self) -> tuple[bool, str]:
        """Check that the server answers ``PING`` (with the connection's credentials)."""
        from mlops_ops.core.redaction import scrub_secrets
        from mlops_ops.streaming.redis_streams import _endpoint

        try:
            import redis

            client = redis.Redis.from_url(self.url, socket_connect_timeout=5, socket_timeout=5)
            try:
                client.ping()
            finally:
                client.close()
        except Exception as err:  # any failure is the answer: the form shows it
            message = scrub_secrets(f"{type(err).__name__}: {err}")[:300]
            return False, f"Redis of connection {self.redis_conn_id!r} does not answer: {message}"
        return True, f"Redis at {_endpoint(self.url)} answers"

    def output_stream(self, stream: str) -> RedisOutputStream:
        """The scorer's output stream ``stream`` on this server, for reading by time."""
        from mlops_ops.streaming.redis_streams import RedisOutputStream

        return RedisOutputStream(stream, self.url)
