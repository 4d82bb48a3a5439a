"""One stream entry in, a request to score or the reason it cannot be scored out.

An input entry is a flat map of fields, as producers write them (``XADD <stream> * data <json> ...``):

- ``data`` (required): a JSON object, the request's fields exactly as the prediction API's ``POST /predict``
  body takes them;
- ``event_id`` (optional): the event's own identity, the key outputs are idempotent by (at most
  :data:`MAX_EVENT_ID_CHARACTERS` printable characters); default the entry's id;
- ``event_time`` (optional): when the event happened, ISO-8601 (no zone is UTC) or Unix epoch milliseconds; the
  interval a compacted prediction lands in, and the start of the end-to-end latency; default the time the entry
  was added (the entry id's milliseconds);
- ``keys`` (optional): a JSON object of the values that identify the event's row beside the model's inputs (a
  visit id, an order number): what compacted predictions are joined to labels on, when the request itself does
  not hold them. Scalars only (text, numbers, true/false, null); at most :data:`MAX_KEYS` of them.

Whatever the reason a refusal gives names the field and the rule, never the value sent (an event's payload is
a user's input): :func:`~mlops_ops.serving_guard.validation_error_body` shapes it as the API's 422 does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from mlops_ops.serving_guard import validation_error_body

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mlops_ops.serving import PredictionRequest

#: The default largest entry (all its fields' bytes together) accepted; a larger one is dead-lettered unread.
DEFAULT_MAX_EVENT_BYTES = 64 * 1024
#: The longest ``event_id``.
MAX_EVENT_ID_CHARACTERS = 128
_PRINTABLE_ID = re.compile(rf"[\x21-\x7e]{{1,{MAX_EVENT_ID_CHARACTERS}}}")
#: The longest reason written to the dead-letter stream.
MAX_REASON_CHARACTERS = 500
#: The most values an event's ``keys`` field may hold.
MAX_KEYS = 32


@dataclass(frozen=True)
class Event:
    """An entry that parsed into a request.

    :param entry_id: the entry's id in the input stream (what is acknowledged).
    :param event_id: the event's identity (the entry's ``event_id``, else ``entry_id``).
    :param event_time_ms: the event's time, Unix epoch milliseconds.
    :param request: the request, validated by the request model.
    :param keys: the entry's ``keys`` field (``{}`` when it has none).
    """

    entry_id: str
    event_id: str
    event_time_ms: int
    request: PredictionRequest
    keys: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Refusal:
    """An entry that cannot be scored, for the dead-letter stream.

    :param reason: why, naming the field and the rule, never the value (at most :data:`MAX_REASON_CHARACTERS`).
    :param kind: a short machine-readable class of the reason (``too_large``, ``not_json``, ``invalid``,
        ``no_features``, ``unscorable``).
    """

    entry_id: str
    event_id: str
    kind: str
    reason: str
    event_time_ms: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


def entry_milliseconds(entry_id: str) -> int:
    """The milliseconds part of a stream entry id (``"1700000000000-3"`` -> ``1700000000000``)."""
    return int(entry_id.partition("-")[0])


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


def _event_time(value: str) -> int:
    """Epoch milliseconds of an ``event_time`` field.

    :raises ValueError: naming the accepted forms.
    """
    value = value.strip()
    if value.isdigit():
        return int(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            "event_time is neither ISO-8601 (e.g. 2013-07-01T06:00:00Z) nor epoch milliseconds"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def parse_entry(
    entry_id: str,
    fields: Mapping[Any, bytes | str],
    request_model: type[PredictionRequest],
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
) -> Event | Refusal:
    """The request an entry carries, or why it cannot be scored.

    :param fields: the entry's fields, as the Redis client returns them (bytes or text).
    :param request_model: the request model (the project's schema with the spec's bounds, or the signature's).
    :param max_event_bytes: the largest entry accepted, all fields together; a larger one is refused before its
        payload is parsed.
    """
    size = sum(len(key) + len(value) for key, value in fields.items())
    named = {_text(key): value for key, value in fields.items()}
    raw_id = _text(named.get("event_id", b"")) if "event_id" in named else ""
    event_id = raw_id if _PRINTABLE_ID.fullmatch(raw_id) else entry_id

    def refuse(kind: str, reason: str, **details: Any) -> Refusal:
        return Refusal(entry_id, event_id, kind, reason[:MAX_REASON_CHARACTERS], details=details)

    if size > max_event_bytes:
        return refuse("too_large", f"the event is {size} bytes, above the limit of {max_event_bytes}")
    if raw_id and event_id != raw_id:
        return refuse(
            "invalid",
            f"event_id must be 1-{MAX_EVENT_ID_CHARACTERS} printable characters without spaces (the entry id "
            "stands for it here)",
        )
    try:
        event_time_ms = (
            _event_time(_text(named["event_time"])) if "event_time" in named else entry_milliseconds(entry_id)
        )
    except ValueError as err:
        return refuse("invalid", str(err))
    if "data" not in named:
        present = sorted(name[:40] for name in named)[:10]
        return refuse("invalid", f"the event has no 'data' field (fields: {present})")
    try:
        payload = json.loads(named["data"])
    except (ValueError, UnicodeDecodeError) as err:
        return refuse(
            "not_json", f"data is not JSON ({type(err).__name__} at position {getattr(err, 'pos', '?')})"
        )
    if not isinstance(payload, dict):
        return refuse("invalid", f"data must be a JSON object, not a JSON {type(payload).__name__}")
    keys = _keys(named["keys"]) if "keys" in named else {}
    if isinstance(keys, str):
        return refuse("invalid", keys)
    try:
        request = request_model.model_validate(payload)
    except ValidationError as err:
        body = validation_error_body(err.errors(include_input=False, include_url=False))
        listed = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'data'}: {error['msg']}"
            for error in body["detail"]
        )
        more = f" and {body['more_errors']} more" if body.get("more_errors") else ""
        return refuse("invalid", f"invalid request: {listed}{more}", errors=body["detail"])
    return Event(entry_id, event_id, event_time_ms, request, keys)


def _keys(raw: bytes | str) -> dict[str, Any] | str:
    """An entry's ``keys`` field as a mapping, or why it cannot be one (naming the rule, never a value)."""
    try:
        keys = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return "keys is not JSON"
    if not isinstance(keys, dict):
        return f"keys must be a JSON object, not a JSON {type(keys).__name__}"
    if len(keys) > MAX_KEYS:
        return f"keys holds {len(keys)} values, above the limit of {MAX_KEYS}"
    nested = sorted(name[:40] for name, value in keys.items() if isinstance(value, dict | list))
    if nested:
        return f"keys must hold scalar values; {nested[:5]} hold objects or lists"
    return keys
