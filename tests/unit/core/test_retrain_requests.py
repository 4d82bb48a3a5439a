"""When monitoring evidence asks for a retrain, and the cool-down that keeps one episode to one request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from mlops_ops.core.retrain_requests import decide, reason_from_events, reasons_from

NOW = datetime(2026, 11, 26, 6, 0, tzinfo=UTC)
DRIFT = {"retrain_requested": True, "reason": "data drift on 20130625T0000Z_20130702T0000Z: dest"}
DECAY = {
    "decay": {
        "retrain_requested": True,
        "reasons": [
            {"metric": "roc_auc", "kind": "min", "value": 0.52, "message": "roc_auc 0.52 < 0.55"},
            "log_loss +0.31 > 0.25",
        ],
    }
}
HEALTHY = {"retrain_requested": False, "decay": {"retrain_requested": False, "reasons": []}}


def test_reasons_come_from_drift_and_decay_and_skip_missing_checks():
    assert reasons_from([DRIFT, DECAY, None, HEALTHY]) == (
        DRIFT["reason"],
        "roc_auc 0.52 < 0.55",
        "log_loss +0.31 > 0.25",
    )
    assert reasons_from([{"retrain_requested": True}]) == ("retrain requested (no reason given)",)
    assert reasons_from([HEALTHY, None]) == ()


def test_a_request_is_sent_when_asked_and_none_was_sent_recently():
    decision = decide([DRIFT], previous_request_at=None, now=NOW, cooldown=timedelta(days=3))
    assert (decision.requested, decision.send, decision.reason) == (True, True, DRIFT["reason"])
    old = NOW - timedelta(days=3, seconds=1)
    assert decide([DRIFT], previous_request_at=old, now=NOW, cooldown=timedelta(days=3)).send


def test_the_cool_down_holds_a_second_request_and_says_until_when():
    previous = NOW - timedelta(days=1)
    decision = decide([DRIFT, DECAY], previous_request_at=previous, now=NOW, cooldown=timedelta(days=3))
    assert decision.requested and not decision.send
    assert decision.suppressed_until == previous + timedelta(days=3)
    payload = decision.to_dict()
    assert payload["suppressed_until"] == "2026-11-28T06:00:00+00:00"
    assert payload["reasons"] == [DRIFT["reason"], "roc_auc 0.52 < 0.55", "log_loss +0.31 > 0.25"]


def test_nothing_asked_nothing_sent_whatever_the_cool_down():
    decision = decide([HEALTHY], previous_request_at=None, now=NOW, cooldown=timedelta(0))
    assert not decision.requested and not decision.send and decision.reason == ""
    with pytest.raises(ValueError, match="cooldown must not be negative"):
        decide([DRIFT], previous_request_at=None, now=NOW, cooldown=timedelta(days=-1))


def test_the_reason_of_the_triggering_events_for_the_retrain_template():
    events = {
        "retrain_request.flight_delay": [
            SimpleNamespace(extra={"reason": "drift: dest"}),
            SimpleNamespace(extra={"reason": "drift: dest"}),
            SimpleNamespace(extra={"reason": "decay: roc_auc"}),
        ],
        "dataset.flights": [SimpleNamespace(extra={"months": [1, 2]})],
    }
    assert reason_from_events(events) == "drift: dest; decay: roc_auc"
    assert reason_from_events({}) == "" and reason_from_events(None) == ""
