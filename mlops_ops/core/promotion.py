"""Alias moves in the registry (promotion, rollback) and their audit history: pure decisions, no I/O.

MLflow has no conditional update, so a move is a compare-and-set done by the caller: it reads the alias, asks
:func:`check_move` whether the move may happen against what it expected, then sets the alias. The caller
serialises moves (the operators run in one-slot pool ``registry``), which makes the read-check-set atomic
within an Airflow deployment.

History lives where it survives: one registered-model tag per move (``mlops.history.<alias>.<seq>``, JSON),
so it is kept with the model, and tags on the versions (promoted/demoted, by whom, why).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Literal

from mlops_ops.core.errors import DataError, RefusedByPolicy

MoveKind = Literal["promotion", "forced promotion", "rollback"]
HISTORY_PREFIX = "mlops.history."
#: Tag put on a version when it becomes an alias's target, and when it stops being it.
PROMOTED = "mlops.promoted"
DEMOTED = "mlops.demoted"


class MoveRefused(RefusedByPolicy, ValueError):
    """The move would break an invariant (stale expectation, unknown version, no gate, no reason)."""


@dataclass(frozen=True)
class AliasMove:
    """One move of ``alias`` from ``from_version`` to ``to_version``, with who, why and when."""

    model_name: str
    alias: str
    from_version: str | None
    to_version: str
    kind: MoveKind
    actor: str
    reason: str
    at: str
    airflow_run: str = ""
    sequence: int = 0

    def tag_key(self) -> str:
        """The registered-model tag holding this move."""
        return f"{HISTORY_PREFIX}{self.alias}.{self.sequence:06d}"

    def to_json(self) -> str:
        """The tag value."""
        return json.dumps(asdict(self), sort_keys=True)

    def version_tag(self) -> str:
        """Value of the ``mlops.promoted``/``mlops.demoted`` version tags: a one-line summary."""
        return json.dumps(
            {
                "alias": self.alias,
                "kind": self.kind,
                "by": self.actor,
                "at": self.at,
                "reason": self.reason,
                "from": self.from_version,
                "to": self.to_version,
                "airflow_run": self.airflow_run,
            },
            sort_keys=True,
        )


def history(model_tags: dict[str, str], alias: str) -> list[AliasMove]:
    """Every recorded move of ``alias``, oldest first, from the registered model's tags."""
    prefix = f"{HISTORY_PREFIX}{alias}."
    moves = []
    for key in sorted(key for key in model_tags if key.startswith(prefix)):
        try:
            moves.append(AliasMove(**json.loads(model_tags[key])))
        except (TypeError, ValueError) as err:
            raise DataError(f"registered-model tag {key} is not a recorded move: {err}") from err
    return moves


def next_sequence(model_tags: dict[str, str], alias: str) -> int:
    """The sequence number of the next move of ``alias``."""
    moves = history(model_tags, alias)
    return moves[-1].sequence + 1 if moves else 1


def check_move(
    *,
    alias: str,
    current: str | None,
    expected: str | None,
    target: str,
    target_exists: bool,
    target_passed_gate: bool,
    kind: MoveKind,
    reason: str,
    actor: str,
) -> None:
    """Refuse a move that would break the registry's invariants; return silently when it may happen.

    :param current: the version the alias points at now (``None``: no such alias yet).
    :param expected: the version the decision was made against (the gate's champion); a move is only made
        when the alias still points there (compare-and-set).
    :raises MoveRefused: naming the problem.
    """
    if not target_exists:
        raise MoveRefused(f"version {target} does not exist (deleted since it was approved?)")
    if current != expected:
        raise MoveRefused(
            f"{alias!r} points at {_name(current)}, not at {_name(expected)} that the decision was made "
            "against: another move happened in between; nothing was changed"
        )
    if current == target:
        raise MoveRefused(f"{alias!r} already points at version {target}")
    if kind == "promotion" and not target_passed_gate:
        raise MoveRefused(
            f"version {target} has not passed an evaluation gate; promote it with force and a reason"
        )
    if kind == "rollback" and not target_passed_gate:
        raise MoveRefused(f"version {target} never passed an evaluation gate: refusing to roll back to it")
    if kind in ("forced promotion", "rollback") and not reason.strip():
        raise MoveRefused(f"a {kind} needs a reason")
    if kind == "forced promotion" and not actor.strip():
        raise MoveRefused("a forced promotion needs the name of who forces it")


def rollback_target(moves: list[AliasMove], current: str | None) -> str:
    """The version to roll back to: the one ``current`` replaced most recently.

    :raises MoveRefused: when the history holds no earlier version.
    """
    for move in reversed(moves):
        if move.to_version == current and move.from_version:
            return move.from_version
    raise MoveRefused(f"no earlier version to roll back to: the history has no move onto version {current}")


def _name(version: str | None) -> str:
    return f"version {version}" if version else "no version"


def summary(move: AliasMove) -> dict[str, Any]:
    """JSON-safe form for XCom and asset extras."""
    return asdict(move)
