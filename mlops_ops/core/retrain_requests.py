"""Whether monitoring evidence asks for a retrain, and whether a recent request already did (the cool-down).

A drift episode lasts days: checked daily, it would ask for a retrain every day while the retrain it caused
is still waiting for data, training, the gate and an approval. A request within ``cooldown`` of the previous
one is therefore recorded but not sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

#: Extras of a retrain-request asset event; ``reason`` is what the retrain records as its trigger.
REASON = "reason"
EVIDENCE = "evidence"


@dataclass(frozen=True)
class RetrainDecision:
    """What the evidence asks for.

    :param requested: some evidence asks for a retrain.
    :param send: a request is sent now (requested, and outside the cool-down).
    :param reasons: one line per piece of evidence that asks.
    :param suppressed_until: with a request inside the cool-down, when the next one may be sent.
    :param previous_request_at: the time of the previous request, if any.
    """

    requested: bool
    send: bool
    reasons: tuple[str, ...]
    suppressed_until: datetime | None = None
    previous_request_at: datetime | None = None

    @property
    def reason(self) -> str:
        """All reasons in one line (the asset event's ``reason`` extra)."""
        return "; ".join(self.reasons)

    def to_dict(self) -> dict[str, Any]:
        return {
            "requested": self.requested,
            "send": self.send,
            "reason": self.reason,
            "reasons": list(self.reasons),
            "suppressed_until": self.suppressed_until.isoformat() if self.suppressed_until else None,
            "previous_request_at": self.previous_request_at.isoformat() if self.previous_request_at else None,
        }


def reasons_from(evidence: Sequence[Mapping[str, Any] | None]) -> tuple[str, ...]:
    """The reasons given by the pieces of ``evidence`` that ask for a retrain.

    A piece asks with ``retrain_requested: true`` (and ``reason``), at its top level (a drift check) or under
    ``decay`` (a performance check: ``{"decay": {"retrain_requested": true, "reasons": [{"message": ...}]}}``,
    or plain strings). Missing
    pieces (a skipped upstream task) are ignored.
    """
    reasons: list[str] = []
    for piece in evidence:
        if not piece:
            continue
        for holder in (piece, piece.get("decay") or {}):
            if not holder.get("retrain_requested"):
                continue
            given = holder.get("reasons") or ([holder["reason"]] if holder.get("reason") else [])
            # A performance check's reasons are checks ({"metric", ..., "message"}); a drift check's are text.
            reasons.extend(
                str(reason.get("message") or reason) if isinstance(reason, Mapping) else str(reason)
                for reason in given
            )
            if not given:
                reasons.append("retrain requested (no reason given)")
    return tuple(reasons)


def decide(
    evidence: Sequence[Mapping[str, Any] | None],
    *,
    previous_request_at: datetime | None,
    now: datetime,
    cooldown: timedelta,
) -> RetrainDecision:
    """Whether to send a retrain request now.

    :param evidence: the monitoring results (see :func:`reasons_from`).
    :param previous_request_at: when the last request was sent (the asset's last event), or ``None``.
    :param now: the current time (time-zone aware, as ``previous_request_at``).
    :param cooldown: the least time between two requests.
    """
    if cooldown < timedelta(0):
        raise ValueError(f"cooldown must not be negative, got {cooldown}")
    reasons = reasons_from(evidence)
    if not reasons:
        return RetrainDecision(False, False, (), previous_request_at=previous_request_at)
    if previous_request_at is not None and now - previous_request_at < cooldown:
        return RetrainDecision(
            True,
            False,
            reasons,
            suppressed_until=previous_request_at + cooldown,
            previous_request_at=previous_request_at,
        )
    return RetrainDecision(True, True, reasons, previous_request_at=previous_request_at)


def reason_from_events(triggering_asset_events: Mapping[Any, Sequence[Any]] | None) -> str:
    """The reason of the retrain-request events that triggered a run (``""`` when none carries one).

    For templates: ``{{ retrain_request_reason(triggering_asset_events) }}``.
    """
    reasons = []
    for events in (triggering_asset_events or {}).values():
        for event in events:
            reason = (getattr(event, "extra", None) or {}).get(REASON)
            if reason and reason not in reasons:
                reasons.append(str(reason))
    return "; ".join(reasons)
