"""The stream engine: Redis Streams with consumer groups, behind the small :class:`StreamSource` interface.

Another engine is an adapter away: it must read entries for one consumer of a group (new ones, and those other
consumers left pending too long), and write a batch's output records while acknowledging their inputs in one
atomic step that skips inputs already acknowledged.

With Redis Cluster, the input, output and dead-letter streams must hash to one slot (the commit script touches
all three): name them with one hash tag, e.g. ``{flights}:events``, ``{flights}:predictions``,
``{flights}:dead``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from mlops_ops.core.optional import import_optional
from mlops_ops.core.redaction import scrub_secrets

if TYPE_CHECKING:
    import redis

log = logging.getLogger(__name__)

#: Acknowledge each input and write its record, only if the input was still pending for the group: of two
#: consumers that scored one event (one of them claimed it from the other), the second writes nothing.
#: KEYS: input, output, dead letter. ARGV: group, output MAXLEN ('' for none), then per record: kind ('o' output,
#: 'd' dead letter), input entry id, field count n, then n field/value pairs.
_COMMIT_SCRIPT = """
local written = 0
local maxlen = ARGV[2]
local i = 3
while i <= #ARGV do
  local kind = ARGV[i]
  local entry = ARGV[i + 1]
  local n = tonumber(ARGV[i + 2])
  local first = i + 3
  local last = first + 2 * n - 1
  if redis.call('XACK', KEYS[1], ARGV[1], entry) == 1 then
    local target = KEYS[2]
    if kind == 'd' then target = KEYS[3] end
    if kind == 'o' and maxlen ~= '' then
      redis.call('XADD', target, 'MAXLEN', '~', maxlen, '*', unpack(ARGV, first, last))
    else
      redis.call('XADD', target, '*', unpack(ARGV, first, last))
    end
    written = written + 1
  end
  i = last + 1
end
return written
"""

Entry = tuple[str, dict[bytes, bytes]]


@dataclass(frozen=True)
class Record:
    """What a batch writes for one input entry: an output record (``kind`` ``"o"``) or a dead letter (``"d"``)."""

    kind: str
    entry_id: str
    fields: Mapping[str, str]


@dataclass(frozen=True)
class Backlog:
    """The group's backlog: ``pending`` entries delivered and not acknowledged, ``lag`` entries not delivered yet
    (``None`` when the server cannot tell, e.g. after entries were deleted)."""

    pending: int
    lag: int | None


class StreamSource(Protocol):
    """What the scorer needs of a stream engine."""

    def read(self, count: int, block_ms: int) -> list[Entry]:
        """Up to ``count`` entries for this consumer: its own unacknowledged ones first (after a restart), then
        entries idle too long at other consumers, then new ones, waiting at most ``block_ms`` for new ones."""

    def commit(self, records: Sequence[Record]) -> int:
        """Write the records and acknowledge their inputs atomically; return how many were written (an input
        another consumer acknowledged first writes nothing)."""

    def backlog(self) -> Backlog:
        """The group's pending entries and lag."""


class RedisStreams:
    """A consumer of a Redis stream in a consumer group, writing to an output and a dead-letter stream.

    :param url: ``redis://[user:password@]host:port/db`` (``rediss://`` for TLS).
    :param claim_idle_ms: entries pending at another consumer for longer are claimed (that consumer died or
        hangs); more than the slowest batch, or healthy consumers' events are scored twice (one record is still
        written, the second is dropped).
    :param output_maxlen: the output stream is trimmed to about this many records (``None``: never); keep more
        than compaction reads between two runs.
    :param start_id: where a group created here starts: ``"0"`` the whole stream, ``"$"`` new entries only.
    """

    def __init__(
        self,
        url: str,
        stream: str,
        group: str,
        consumer: str,
        output: str,
        dead_letter: str,
        *,
        claim_idle_ms: int = 30_000,
        output_maxlen: int | None = None,
        start_id: str = "0",
        client: redis.Redis | None = None,
    ) -> None:
        redis_module = import_optional("redis", "streaming")

        self.stream, self.group, self.consumer = stream, group, consumer
        self.output, self.dead_letter = output, dead_letter
        self.claim_idle_ms = claim_idle_ms
        self.output_maxlen = output_maxlen
        self.start_id = start_id
        self.client = client or redis_module.Redis.from_url(
            url, socket_connect_timeout=5, socket_timeout=10, health_check_interval=30
        )
        self.endpoint = _endpoint(url)
        self._commit = self.client.register_script(_COMMIT_SCRIPT)
        self._own_pending = True  # after a (re)start, this consumer's unacknowledged entries come first
        self._next_claim = 0.0
        self._claim_cursor = "0-0"
        self._group_ready = False

    def ensure_group(self) -> None:
        """Create the stream and the group when they do not exist (a group that exists is left as it is)."""
        import redis as redis_module

        try:
            self.client.xgroup_create(self.stream, self.group, id=self.start_id, mkstream=True)
            log.info("created consumer group %s on stream %s", self.group, self.stream)
        except redis_module.ResponseError as err:
            if "BUSYGROUP" not in str(err):
                raise
        self._group_ready = True

    def read(self, count: int, block_ms: int) -> list[Entry]:
        """See :meth:`StreamSource.read`. Creates the group first when needed (also after the server lost it)."""
        import redis as redis_module

        if not self._group_ready:
            self.ensure_group()
        try:
            return self._read(count, block_ms)
        except redis_module.ResponseError as err:
            if "NOGROUP" not in str(err):
                raise
            # The server restarted without persistence (or the group was deleted): recreate it and go on.
            log.warning("consumer group %s of %s is gone; creating it again", self.group, self.stream)
            self._group_ready = False
            self.ensure_group()
            return self._read(count, block_ms)

    def _read(self, count: int, block_ms: int) -> list[Entry]:
        if self._own_pending:
            own = self._entries(
                self.client.xreadgroup(self.group, self.consumer, {self.stream: "0"}, count=count)
            )
            if own:
                return own
            self._own_pending = False
        now = time.monotonic()
        if now >= self._next_claim:
            # At most twice per idle period: a claim scans the group's pending list.
            self._next_claim = now + self.claim_idle_ms / 2000
            reply: Any = self.client.xautoclaim(
                self.stream, self.group, self.consumer, self.claim_idle_ms, self._claim_cursor, count=count
            )
            cursor, claimed, *_ = reply
            self._claim_cursor = _text(cursor)
            claimed = [(_text(entry_id), fields) for entry_id, fields in claimed if fields is not None]
            if claimed:
                log.info(
                    "claimed %d entries idle at other consumers for %d ms", len(claimed), self.claim_idle_ms
                )
                # Claimed entries now belong to this consumer: a crash before they are committed leaves them
                # in its own pending list.
                self._own_pending = True
                return claimed
        return self._entries(
            self.client.xreadgroup(self.group, self.consumer, {self.stream: ">"}, count=count, block=block_ms)
        )

    @staticmethod
    def _entries(reply: Any) -> list[Entry]:
        entries: list[Entry] = []
        for _stream, items in reply or ():
            # An entry deleted while pending comes back without fields: nothing to score, acknowledged later.
            entries.extend((_text(entry_id), fields or {}) for entry_id, fields in items)
        return entries

    def commit(self, records: Sequence[Record]) -> int:
        """See :meth:`StreamSource.commit`. Safe to repeat after a connection error: an input acknowledged by
        the first attempt writes nothing the second time."""
        if not records:
            return 0
        arguments: list[str] = [self.group, "" if self.output_maxlen is None else str(self.output_maxlen)]
        for record in records:
            arguments += [record.kind, record.entry_id, str(len(record.fields))]
            for name, value in record.fields.items():
                arguments += [name, value]
        return int(self._commit(keys=[self.stream, self.output, self.dead_letter], args=arguments))

    def backlog(self) -> Backlog:
        """See :meth:`StreamSource.backlog` (``XINFO GROUPS``)."""
        groups: Any = self.client.xinfo_groups(self.stream)
        for group in groups:
            if _text(group["name"]) == self.group:
                lag = group.get("lag")
                return Backlog(int(group.get("pending") or 0), None if lag is None else int(lag))
        return Backlog(0, None)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _endpoint(url: str) -> str:
    """``host:port/db`` of a Redis URL, without credentials (what log lines and errors name)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return scrub_secrets(f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}{parts.path or ''}")


class RedisOutputStream:
    """The scorer's output stream, read by the time records were written (what compaction reads).

    :param url: ``redis://[user:password@]host:port/db`` (``rediss://`` for TLS); or ``client``.
    :param stream: the output stream.
    :param page_size: records per ``XRANGE`` call.
    """

    def __init__(
        self,
        stream: str,
        url: str | None = None,
        *,
        client: redis.Redis | None = None,
        page_size: int = 10_000,
    ) -> None:
        if client is None:
            if url is None:
                raise ValueError("give the Redis url or a client")
            client = import_optional("redis", "streaming").Redis.from_url(
                url, socket_connect_timeout=5, socket_timeout=30
            )
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, got {page_size}")
        self.stream = stream
        self.client = client
        self.page_size = page_size
        kwargs = client.connection_pool.connection_kwargs
        self.endpoint = f"redis://{kwargs.get('host', '?')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"

    def describe(self) -> str:
        """``redis://host:port/db stream <name>``, without credentials."""
        return f"{self.endpoint} stream {self.stream}"

    def records(self, start_ms: int, end_ms: int | None) -> Iterator[dict[str, str]]:
        """The records written from ``start_ms`` to ``end_ms`` (epoch milliseconds, both included; ``None``: to
        the stream's end), oldest first, read a page at a time."""
        cursor = str(max(start_ms, 0))
        last = "+" if end_ms is None else str(end_ms)  # an id without a sequence ends at its last entry
        while True:
            page: Any = self.client.xrange(self.stream, cursor, last, count=self.page_size)
            for _entry_id, fields in page:
                yield {_text(key): _text(value) for key, value in fields.items()}
            if len(page) < self.page_size:
                return
            cursor = "(" + _text(page[-1][0])  # exclusive: after the last entry read
