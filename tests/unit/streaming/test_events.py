"""An entry's optional ``keys`` field: the values that identify its row beside the request (what compaction joins
labels on), refused with the rule it breaks, never its value."""

from __future__ import annotations

import json
import re

import pytest

from mlops_ops.serving import PredictionRequest
from mlops_ops.streaming.events import MAX_KEYS, Event, Refusal, parse_entry


class Visit(PredictionRequest):
    width: float


def _parse(**fields: str) -> Event | Refusal:
    return parse_entry("1700000000000-0", {"data": json.dumps({"width": 3.0}), **fields}, Visit)


def test_keys_travel_with_the_event():
    event = _parse(keys=json.dumps({"visit_id": 7, "shop": "north", "returning": None}))
    assert isinstance(event, Event)
    assert event.keys == {"visit_id": 7, "shop": "north", "returning": None}
    assert isinstance(_parse(), Event) and _parse().keys == {}


@pytest.mark.parametrize(
    ("keys", "reason"),
    [
        ("{secret", "keys is not JSON"),
        ("[1, 2]", "keys must be a JSON object, not a JSON list"),
        (json.dumps({"visit": {"id": "secret-value"}}), r"keys must hold scalar values; \['visit'\]"),
        (json.dumps({f"k{i}": i for i in range(MAX_KEYS + 1)}), f"above the limit of {MAX_KEYS}"),
    ],
)
def test_bad_keys_are_refused_without_echoing_them(keys, reason):
    refusal = _parse(keys=keys)
    assert isinstance(refusal, Refusal)
    assert refusal.kind == "invalid"
    assert re.search(reason, refusal.reason)
    assert "secret" not in refusal.reason
