"""The guarded alias move against an in-memory registry and alias log: the log first, the registry second, a retry
completed, an out-of-band pointer set back, and nothing changed by a refused move."""

from __future__ import annotations

import pytest

from mlops_ops.core.alias_log import AliasLogConflict, AliasRecord
from mlops_ops.core.alias_moves import move_alias
from mlops_ops.core.promotion import DEMOTED, PROMOTED, MoveRefused

MODEL = "churn"
RUN = "promote/manual__1"


class Registry:
    """The registry's side: alias pointers and tags; ``moved_by_someone`` moves the alias right after a set."""

    def __init__(self, aliases: dict[str, str] | None = None) -> None:
        self.aliases = dict(aliases or {})
        self.model_tags: dict[str, str] = {}
        self.version_tags: dict[str, dict[str, str]] = {}
        self.moved_by_someone: str | None = None

    def get_aliases(self, model_name: str) -> dict[str, str]:
        return dict(self.aliases)

    def set_alias(self, model_name: str, alias: str, version: str) -> None:
        self.aliases[alias] = self.moved_by_someone or version

    def set_model_tag(self, model_name: str, key: str, value: str) -> None:
        self.model_tags[key] = value

    def set_version_tags(self, model_name: str, version: str, tags: dict[str, str]) -> None:
        self.version_tags.setdefault(version, {}).update(tags)


class Log:
    """The signed log's side, as a list; ``conflict`` makes the next append lose a race."""

    def __init__(self, records: list[AliasRecord] | None = None) -> None:
        self.records = list(records or [])
        self.conflict = False

    def alias_history(self, model_name: str, alias: str) -> list[AliasRecord]:
        return [record for record in self.records if record.alias == alias]

    def record_alias_move(self, **move) -> AliasRecord:
        if self.conflict:
            raise AliasLogConflict("record 2 was appended by another writer")
        history = self.alias_history(move["model_name"], move["alias"])
        record = AliasRecord(
            sequence=len(history) + 1,
            from_version=history[-1].to_version if history else None,
            **move,
        )
        self.records.append(record)
        return record


def _record(
    sequence: int, to_version: str, from_version: str | None, airflow_run: str = "earlier/run"
) -> AliasRecord:
    return AliasRecord(
        MODEL, "champion", sequence, from_version, to_version, "promotion", "ana", "gate passed", "2026-01-01",
        airflow_run,
    )  # fmt: skip


def _move(
    registry, log, target, expected, kind="promotion", verified=None, passed=True, reason="gate passed"
):
    def verify(version: str) -> bool:
        (verified if verified is not None else []).append(version)
        return passed

    return move_alias(
        registry,
        log,
        model_name=MODEL,
        alias="champion",
        target=target,
        expected=expected,
        kind=kind,
        actor="ana",
        reason=reason,
        airflow_run=RUN,
        verify_target=verify,
    )


def test_a_promotion_is_signed_into_the_log_then_set_and_tagged():
    registry, log = Registry({"champion": "1"}), Log([_record(1, "1", None)])
    verified: list[str] = []
    move = _move(registry, log, "2", expected="1", verified=verified)
    assert verified == ["2"]
    assert [(r.sequence, r.from_version, r.to_version, r.airflow_run) for r in log.records] == [
        (1, None, "1", "earlier/run"),
        (2, "1", "2", RUN),
    ]
    assert registry.aliases["champion"] == "2"
    assert (move.from_version, move.to_version, move.sequence) == ("1", "2", 2)
    assert registry.model_tags == {move.tag_key(): move.to_json()}
    assert PROMOTED in registry.version_tags["2"] and DEMOTED in registry.version_tags["1"]


@pytest.mark.parametrize(
    ("expected", "passed", "kind", "reason", "message"),
    [
        ("3", True, "promotion", "gate passed", "points at version 1, not at version 3"),
        ("1", False, "promotion", "gate passed", "has not passed an evaluation gate"),
        ("1", True, "forced promotion", " ", "needs a reason"),
    ],
)
def test_a_refused_move_changes_nothing(expected, passed, kind, reason, message):
    registry, log = Registry({"champion": "1"}), Log([_record(1, "1", None)])
    with pytest.raises(MoveRefused, match=message):
        _move(registry, log, "2", expected=expected, kind=kind, passed=passed, reason=reason)
    assert len(log.records) == 1 and registry.aliases == {"champion": "1"}
    assert registry.model_tags == {} and registry.version_tags == {}


def test_a_target_that_does_not_verify_changes_nothing():
    registry, log = Registry({"champion": "1"}), Log([_record(1, "1", None)])

    def refuse(version: str) -> bool:
        raise MoveRefused(f"v{version} is not signed")

    with pytest.raises(MoveRefused, match="v2 is not signed"):
        move_alias(
            registry, log, model_name=MODEL, alias="champion", target="2", expected="1", kind="promotion",
            actor="ana", reason="r", airflow_run=RUN, verify_target=refuse,
        )  # fmt: skip
    assert len(log.records) == 1 and registry.aliases == {"champion": "1"}


def test_a_retry_completes_the_move_its_first_try_recorded():
    # The first try signed 1 -> 2 into the log and died before the registry was set.
    registry, log = (
        Registry({"champion": "1"}),
        Log([_record(1, "1", None), _record(2, "2", "1", airflow_run=RUN)]),
    )
    verified: list[str] = []
    move = _move(registry, log, "2", expected="1", verified=verified)
    assert len(log.records) == 2 and verified == []  # no second record; the first try verified it
    assert registry.aliases["champion"] == "2" and move.sequence == 2


def test_a_pointer_moved_outside_the_project_is_set_back_to_what_the_log_records():
    registry, log = Registry({"champion": "7"}), Log([_record(1, "1", None), _record(2, "2", "1")])
    verified: list[str] = []
    move = _move(registry, log, "2", expected="2", verified=verified)
    assert verified == ["2"] and len(log.records) == 2  # verified again; the log needs no record
    assert registry.aliases["champion"] == "2" and move.sequence == 2


def test_a_move_repairs_an_out_of_band_pointer_against_the_log_not_the_registry():
    # The registry says 7 (moved with MlflowClient); the decision was made against the log's 1.
    registry, log = Registry({"champion": "7"}), Log([_record(1, "1", None)])
    move = _move(registry, log, "2", expected="1")
    assert move.from_version == "1" and registry.aliases["champion"] == "2"


def test_losing_a_race_is_refused():
    registry, log = Registry({"champion": "1"}), Log([_record(1, "1", None)])
    log.conflict = True
    with pytest.raises(MoveRefused, match="moved again while v2 was being promoted"):
        _move(registry, log, "2", expected="1")
    assert registry.aliases == {"champion": "1"}

    registry, log = Registry({"champion": "1"}), Log([_record(1, "1", None)])
    registry.moved_by_someone = "9"
    with pytest.raises(MoveRefused, match="moved again while v2 was being promoted"):
        _move(registry, log, "2", expected="1")
    assert registry.model_tags == {}  # no readable copy of a move that did not hold
