"""The stream scorer: micro-batches of events -> the champion -> one output record per event.

:class:`StreamScorer` reuses the prediction API's pieces (:mod:`mlops_ops.serving`): the request model (the
project's schema with the spec's bounds, or one built from the model's signature), :class:`ModelSlot` (the
alias pinned against the signed alias log, the version verified before it loads, compiled trees, webhook alerts
when the trust rules refuse a version) and :class:`Predictor` (``prepare``, online features, one predict per
batch). A version the alias moves to is loaded by a background thread and taken up between two batches: every
output record names the version that scored it, and a batch is never split between two versions.

Output records (fields of the output stream): ``event_id``, ``entry_id`` (of the input), ``event_time`` and
``scored_at`` (epoch milliseconds), ``model_name``, ``model_version``, ``task``, ``result`` (JSON: the API's
answer without the model's name and version: ``{"prediction", "probability"}`` binary, ``{"prediction",
"probabilities"}`` multiclass, ``{"prediction"}`` regression), ``keys`` (JSON: the raw row's ``key_columns``)
and, when online features were missing, ``missing_features`` (JSON list). Dead letters: ``event_id``,
``entry_id``, ``kind``, ``reason``, ``failed_at``, ``model_version`` (when one was serving) and ``original``
(the entry's fields as JSON, for a replay once fixed; left out for an entry over the size limit).
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from mlops_ops.core.errors import MlopsError, required
from mlops_ops.core.optional import import_optional
from mlops_ops.core.redaction import SecretScrubbingFilter, scrub_secrets
from mlops_ops.serving import ModelSlot, Predictor, ServingConfig, _request_settings, _signature_request
from mlops_ops.streaming.events import DEFAULT_MAX_EVENT_BYTES, Event, Refusal, parse_entry
from mlops_ops.streaming.redis_streams import Record, RedisStreams, StreamSource

if TYPE_CHECKING:
    from mlops_ops.serving import Answer, LoadedModel, PredictionRequest

log = logging.getLogger(__name__)
log.addFilter(SecretScrubbingFilter())

#: The longest error text kept in a dead letter for an event the model could not score.
MAX_ERROR_CHARACTERS = 300


class StreamScoringStopped(MlopsError, RuntimeError):
    """The scorer stopped on an error no event caused (the model needs a column nothing provides): its events
    stay pending, for this or another consumer once the deployment is fixed."""


@dataclass
class StreamConfig:
    """What a stream scorer consumes, scores and writes.

    :param serving: the model and how requests become its inputs: the prediction API's settings
        (``model_name``, ``request_schema``, ``feature_service``, ``prepare``, ``model_spec``, ``threshold``,
        ``poll_seconds``, the connections, ``alert_webhook_conn_id``...). ``max_body_bytes`` and ``token`` do not
        apply.
    :param redis_url: the Redis server holding the streams.
    :param stream: the input stream.
    :param group: the consumer group; consumers of one group share the stream's events.
    :param consumer: this consumer's name in the group, stable across restarts (its pending events are read
        first when it comes back), e.g. the host name.
    :param output: the output stream.
    :param dead_letter: the stream of events that cannot be scored, with the reason.
    :param batch_size: the most events scored in one batch (also the bound on events in flight per consumer).
    :param block_ms: how long a read waits for new events when none are there.
    :param claim_idle_ms: events pending at another consumer for longer are claimed from it.
    :param max_event_bytes: the largest event accepted (all fields); a larger one is dead-lettered unread.
    :param key_columns: the columns copied into each output record's ``keys`` (what joins the predictions to
        labels later, e.g. a flight's date, carrier, number and origin): from the event's ``keys`` field, else
        from the request's row (``null`` when neither holds one).
    :param output_maxlen: trim the output stream to about this many records (``None``: never).
    :param metrics_port: serve Prometheus metrics on ``http://<metrics_host>:<port>/metrics`` (``None``: none).
    """

    serving: ServingConfig
    redis_url: str = "redis://127.0.0.1:6379/0"
    stream: str = "events"
    group: str = "scorers"
    consumer: str = "scorer-1"
    output: str = "predictions"
    dead_letter: str = "dead-letters"
    batch_size: int = 500
    block_ms: int = 20
    claim_idle_ms: int = 30_000
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    key_columns: Sequence[str] = ()
    output_maxlen: int | None = None
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"

    def check(self) -> None:
        """:raises ValueError: naming the setting out of range."""
        for name in ("batch_size", "max_event_bytes", "claim_idle_ms"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.block_ms < 0:
            raise ValueError(f"block_ms must not be negative, got {self.block_ms}")
        if len({self.stream, self.output, self.dead_letter}) != 3:
            raise ValueError("the input, output and dead-letter streams must be three different streams")


@dataclass
class StreamStats:
    """What a scorer did since it started."""

    batches: int = 0
    scored: int = 0
    dead_letters: int = 0
    #: records another consumer had written first (the event was claimed while this one scored it)
    skipped: int = 0
    reconnects: int = 0
    versions: dict[str, int] = field(default_factory=dict)


class _Metrics:
    """The scorer's Prometheus metrics, in a registry of its own (served on ``metrics_port``)."""

    def __init__(self, config: StreamConfig) -> None:
        prometheus = import_optional("prometheus_client", "streaming")
        CollectorRegistry, Counter = prometheus.CollectorRegistry, prometheus.Counter
        Gauge, Histogram = prometheus.Gauge, prometheus.Histogram

        self.registry = CollectorRegistry()
        labels = {"model": config.serving.model_name, "stream": config.stream, "group": config.group}
        names = list(labels)
        self.labels = labels
        self.events = Counter(
            "mlops_stream_events", "events handled, by outcome", [*names, "outcome"], registry=self.registry
        )
        self.batch_seconds = Histogram(
            "mlops_stream_batch_seconds",
            "from reading a batch to its records committed",
            names,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.end_to_end_seconds = Histogram(
            "mlops_stream_end_to_end_seconds",
            "from an event's time to its output record",
            names,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.pending = Gauge(
            "mlops_stream_pending", "events delivered and not acknowledged", names, registry=self.registry
        )
        self.lag = Gauge(
            "mlops_stream_lag",
            "events in the stream not delivered to the group",
            names,
            registry=self.registry,
        )
        self.version = Gauge(
            "mlops_stream_model_version", "the version scoring events", names, registry=self.registry
        )
        self.reconnects = Counter(
            "mlops_stream_reconnects", "times the Redis connection was lost", names, registry=self.registry
        )

    def serve(self, host: str, port: int) -> None:
        from prometheus_client import start_http_server

        start_http_server(port, addr=host, registry=self.registry)


class StreamScorer:
    """A long-running consumer scoring a stream's events with the champion (see the module's docstring).

    :param source: the stream engine; default :class:`~mlops_ops.streaming.redis_streams.RedisStreams` on
        ``config.redis_url``.
    :raises ValueError: (a ``DataError`` for the spec and the schema) when the settings are wrong, as the
        prediction API refuses them.
    :raises ModelNotLoaded: without a request schema, when no model loads to build the request from.
    """

    def __init__(self, config: StreamConfig, source: StreamSource | None = None) -> None:
        config.check()
        self.config = config
        request_model, spec = _request_settings(config.serving)
        declared = spec.task if spec is not None else None
        self.slot = ModelSlot(config.serving, task=declared, declared_task=declared)
        if request_model is None:
            request_model = _signature_request(self.slot, spec)
        self.request_model: type[PredictionRequest] = request_model
        #: ``None`` until the feature store serves the feature service (see :meth:`_ensure_predictor`).
        self._predictor: Predictor | None = None
        self._predictor_error: str | None = None
        self._ensure_predictor()
        self.source: StreamSource = source or RedisStreams(
            config.redis_url,
            config.stream,
            config.group,
            config.consumer,
            config.output,
            config.dead_letter,
            claim_idle_ms=config.claim_idle_ms,
            output_maxlen=config.output_maxlen,
        )
        self.endpoint = getattr(self.source, "endpoint", "the stream")
        self.stats = StreamStats()
        self.metrics = _Metrics(config)
        self._stop = threading.Event()
        self._next_backlog = 0.0

    # --- the loop ---------------------------------------------------------------------------------------

    @property
    def predictor(self) -> Predictor:
        """Requests -> the model's input columns (prepared fields, online features).

        :raises RuntimeError: while the feature store cannot serve the feature service yet.
        """
        if not self._ensure_predictor():
            raise RuntimeError(
                f"the feature store cannot serve the model's features yet: {self._predictor_error}"
            )
        return required(self._predictor, "the predictor")

    def _ensure_predictor(self) -> bool:
        """Build the predictor when there is none; ``False`` while the feature store cannot serve the feature
        service (a repository not applied yet: the ``features`` DAG registers it), its reason in
        ``_predictor_error``. Without a feature service a failure is a configuration error and raises."""
        if self._predictor is not None:
            return True
        try:
            self._predictor = Predictor(self.config.serving)
        except Exception as err:
            if not self.config.serving.feature_service:
                raise
            self._predictor_error = scrub_secrets(f"{type(err).__name__}: {err}")[:MAX_ERROR_CHARACTERS]
            return False
        self._predictor_error = None
        return True

    def stop(self) -> None:
        """Finish the batch in hand, commit it and return from :meth:`run`."""
        self._stop.set()

    def run(self, *, max_batches: int | None = None, idle_exit_s: float | None = None) -> StreamStats:
        """Score until :meth:`stop`, SIGTERM or SIGINT (the batch in hand is finished and committed first).

        :param max_batches: return after this many non-empty batches (tests, replays).
        :param idle_exit_s: return once no event arrived for this long (a replay that drains a stream).
        :raises StreamScoringStopped: when the model cannot be fed at all (its events stay pending).
        """
        self._install_signal_handlers()
        if self.config.metrics_port is not None:
            self.metrics.serve(self.config.metrics_host, self.config.metrics_port)
        polling = threading.Event()
        poller = threading.Thread(target=self._poll, args=(polling,), name="model-poll", daemon=True)
        poller.start()
        try:
            self._loop(max_batches, idle_exit_s)
        finally:
            polling.set()
        return self.stats

    def _loop(self, max_batches: int | None, idle_exit_s: float | None) -> None:
        waited_since = time.monotonic()
        backoff = 0.1
        said: str | None = None
        while not self._stop.is_set():
            if not self._ensure_predictor():
                if self._predictor_error != said:
                    said = self._predictor_error
                    log.warning(
                        "the feature store cannot serve the model's features yet, events wait: %s", said
                    )
                self._stop.wait(min(max(self.config.serving.poll_seconds, 0.5), 5.0))
                continue
            current = self.slot.current
            if current is None:
                self.slot.refresh()
                if self.slot.current is None:
                    if self.slot.last_error != said:  # once per distinct reason, not every retry
                        said = self.slot.last_error
                        log.warning("no verified model to score with yet, events wait: %s", said)
                    self._stop.wait(min(max(self.config.serving.poll_seconds, 0.5), 5.0))
                continue
            try:
                started = time.monotonic()
                entries = self.source.read(self.config.batch_size, self.config.block_ms)
                if entries:
                    self._score_and_commit(entries, current, started)
                self._observe_backlog()
                backoff = 0.1
            except StreamScoringStopped:
                raise
            except Exception as err:
                if not _is_connection_error(err):
                    raise
                self.stats.reconnects += 1
                self.metrics.reconnects.labels(**self.metrics.labels).inc()
                log.warning(
                    "Redis at %s is unavailable (%s); retrying in %.1f s",
                    self.endpoint,
                    scrub_secrets(f"{type(err).__name__}: {err}")[:200],
                    backoff,
                )
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if entries:
                waited_since = time.monotonic()
                if max_batches is not None and self.stats.batches >= max_batches:
                    return
            elif idle_exit_s is not None and time.monotonic() - waited_since >= idle_exit_s:
                return

    def _poll(self, done: threading.Event) -> None:
        """Check the alias every ``poll_seconds`` until ``done``; a new version is swapped in between two
        batches."""
        while not done.wait(self.config.serving.poll_seconds):
            self.slot.refresh()

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def finish(signum: int, _frame: Any) -> None:
            log.info("signal %d: finishing the batch in hand, then stopping", signum)
            self._stop.set()

        signal.signal(signal.SIGTERM, finish)
        signal.signal(signal.SIGINT, finish)

    def _observe_backlog(self) -> None:
        now = time.monotonic()
        if now < self._next_backlog:
            return
        self._next_backlog = now + 1.0
        backlog = self.source.backlog()
        self.metrics.pending.labels(**self.metrics.labels).set(backlog.pending)
        if backlog.lag is not None:
            self.metrics.lag.labels(**self.metrics.labels).set(backlog.lag)

    # --- one batch --------------------------------------------------------------------------------------

    def _score_and_commit(
        self, entries: list[tuple[str, dict[bytes, bytes]]], current: LoadedModel, started: float
    ) -> None:
        records = self.records(entries, current)
        written = self._commit(records)
        now = time.time()
        labels = self.metrics.labels
        scored = sum(1 for record in records if record.kind == "o")
        dead = len(records) - scored
        self.stats.batches += 1
        self.stats.scored += scored
        self.stats.dead_letters += dead
        self.stats.skipped += len(records) - written
        version = current.pinned.version
        self.stats.versions[version] = self.stats.versions.get(version, 0) + scored
        self.metrics.events.labels(**labels, outcome="scored").inc(scored)
        self.metrics.events.labels(**labels, outcome="dead_letter").inc(dead)
        self.metrics.batch_seconds.labels(**labels).observe(time.monotonic() - started)
        self.metrics.version.labels(**labels).set(float(version))
        histogram = self.metrics.end_to_end_seconds.labels(**labels)
        for record in records:
            if record.kind == "o":
                histogram.observe(max(0.0, now - int(record.fields["event_time"]) / 1000))

    def _commit(self, records: list[Record]) -> int:
        """Commit, retrying through a lost connection: the commit is idempotent (see ``RedisStreams.commit``),
        and the batch's events stay pending until it lands."""
        backoff = 0.1
        while True:
            try:
                return self.source.commit(records)
            except Exception as err:
                if not _is_connection_error(err) or self._stop.is_set():
                    raise
                self.stats.reconnects += 1
                log.warning(
                    "Redis at %s is unavailable while committing %d records (%s); retrying in %.1f s",
                    self.endpoint,
                    len(records),
                    scrub_secrets(f"{type(err).__name__}")[:100],
                    backoff,
                )
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    def records(
        self, entries: Sequence[tuple[str, dict[bytes, bytes]]], current: LoadedModel
    ) -> list[Record]:
        """One output record or dead letter per entry, in the entries' order (no Redis write)."""
        parsed = [
            parse_entry(entry_id, fields, self.request_model, self.config.max_event_bytes)
            for entry_id, fields in entries
        ]
        events = [item for item in parsed if isinstance(item, Event)]
        answers = self._answers(events, current)
        now_ms = str(int(time.time() * 1000))
        version = current.pinned.version
        records = []
        by_entry = dict(zip((event.entry_id for event in events), answers, strict=True))
        originals = dict(entries)
        for item in parsed:
            outcome: Answer | Refusal = by_entry[item.entry_id] if isinstance(item, Event) else item
            if isinstance(outcome, Refusal):
                records.append(self._dead_letter(outcome, originals[item.entry_id], now_ms, version))
                continue
            event = item
            if not isinstance(event, Event):  # unreachable: a refusal went above
                continue
            missing = list(outcome.missing_features)
            if missing and self.predictor.feature_names and len(missing) == len(self.predictor.feature_names):
                refusal = Refusal(
                    event.entry_id,
                    event.event_id,
                    "no_features",
                    "the feature store has no online features for the event's entity "
                    f"({', '.join(sorted(event.request.entity_row())[:10])})",
                )
                records.append(self._dead_letter(refusal, originals[event.entry_id], now_ms, version))
                continue
            result = outcome.model_dump(exclude={"model_name", "model_version", "missing_features"})
            fields = {
                "event_id": event.event_id,
                "entry_id": event.entry_id,
                "event_time": str(event.event_time_ms),
                "scored_at": now_ms,
                "model_name": outcome.model_name,
                "model_version": outcome.model_version,
                "task": str(current.task),
                "result": json.dumps(result, separators=(",", ":")),
                "keys": self._keys(event),
            }
            if missing:
                fields["missing_features"] = json.dumps(missing)
            records.append(Record("o", event.entry_id, fields))
        return records

    def _answers(self, events: list[Event], current: LoadedModel) -> list[Answer | Refusal]:
        """The batch scored at once; when that fails, each event alone, so one bad event is dead-lettered and
        the others scored."""
        if not events:
            return []
        try:
            return list(self.predictor.score([event.request for event in events], current))
        except LookupError as err:  # the model needs a column that neither the events nor the store give
            raise StreamScoringStopped(scrub_secrets(str(err))) from err
        except Exception as err:
            if len(events) == 1:
                return [self._unscorable(events[0], err)]
            log.warning(
                "a batch of %d events failed (%s); scoring them one by one", len(events), type(err).__name__
            )
        outcomes: list[Answer | Refusal] = []
        for event in events:
            try:
                outcomes.extend(self.predictor.score([event.request], current))
            except LookupError as err:
                raise StreamScoringStopped(scrub_secrets(str(err))) from err
            except Exception as err:
                outcomes.append(self._unscorable(event, err))
        return outcomes

    @staticmethod
    def _unscorable(event: Event, err: Exception) -> Refusal:
        # The exception's type and a bounded, scrubbed message: a library's message may quote a value.
        message = scrub_secrets(str(err)).replace("\n", " ")[:MAX_ERROR_CHARACTERS]
        return Refusal(
            event.entry_id,
            event.event_id,
            "unscorable",
            f"the model could not score it: {type(err).__name__}: {message}",
        )

    def _keys(self, event: Event) -> str:
        """The event's ``key_columns``: from its ``keys`` field first, else from the request's row."""
        if not self.config.key_columns:
            return "{}"
        row = event.request.raw_row()
        return json.dumps(
            {
                name: _json_value(event.keys[name] if name in event.keys else row.get(name))
                for name in self.config.key_columns
            },
            separators=(",", ":"),
        )

    def _dead_letter(
        self, refusal: Refusal, original: dict[bytes, bytes], now_ms: str, version: str | None
    ) -> Record:
        fields = {
            "event_id": refusal.event_id,
            "entry_id": refusal.entry_id,
            "kind": refusal.kind,
            "reason": refusal.reason,
            "failed_at": now_ms,
            "model_name": self.config.serving.model_name,
        }
        if version is not None:
            fields["model_version"] = version
        if refusal.kind != "too_large":
            fields["original"] = json.dumps(
                {_text(key): _text(value) for key, value in original.items()}, separators=(",", ":")
            )
        return Record("d", refusal.entry_id, fields)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


def _json_value(value: Any) -> Any:
    """A key value as JSON holds it: dates and times in ISO-8601, numpy scalars as Python's."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return value


def _is_connection_error(err: Exception) -> bool:
    """Whether ``err`` is the stream server being unreachable (to wait for), not a bug (to raise)."""
    import redis

    return isinstance(err, redis.ConnectionError | redis.TimeoutError | ConnectionError | TimeoutError) or (
        isinstance(err, redis.ResponseError) and str(err).startswith("LOADING")
    )
