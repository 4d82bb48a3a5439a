"""The pure rules of alias moves."""

from __future__ import annotations

import pytest

from mlops_ops.core.promotion import (
    AliasMove,
    MoveRefused,
    check_move,
    history,
    next_sequence,
    rollback_target,
)


def move(sequence, from_version, to_version, kind="promotion"):
    return AliasMove(
        "m",
        "champion",
        from_version,
        to_version,
        kind,
        "ana",
        "why",
        "2026-11-26T00:00:00+00:00",
        "retrain/run",
        sequence,
    )


def test_history_round_trips_through_tags_in_sequence_order():
    moves = [move(2, "1", "2"), move(1, None, "1"), move(10, "2", "3")]
    tags = {m.tag_key(): m.to_json() for m in moves} | {"other": "x", "mlops.history.challenger.000001": "{}"}
    assert [m.sequence for m in history(tags, "champion")] == [1, 2, 10]
    assert next_sequence(tags, "champion") == 11
    assert next_sequence({}, "champion") == 1


def test_rollback_target_is_what_the_current_version_replaced():
    moves = [move(1, None, "1"), move(2, "1", "2"), move(3, "2", "3", "rollback"), move(4, "3", "2")]
    assert rollback_target(moves, "2") == "3"
    with pytest.raises(MoveRefused, match="no earlier version"):
        rollback_target([move(1, None, "1")], "1")


def test_check_move_allows_a_clean_promotion():
    check_move(
        alias="champion",
        current="1",
        expected="1",
        target="2",
        target_exists=True,
        target_passed_gate=True,
        kind="promotion",
        reason="",
        actor="auto",
    )


def test_check_move_refuses_a_no_op():
    with pytest.raises(MoveRefused, match="already points"):
        check_move(
            alias="champion",
            current="2",
            expected="2",
            target="2",
            target_exists=True,
            target_passed_gate=True,
            kind="promotion",
            reason="",
            actor="auto",
        )
