"""The signed alias log: appends chain and verify; an edited, reordered or foreign record breaks it."""

from __future__ import annotations

import json

import pytest

from mlops_ops.core import alias_log
from mlops_ops.core.signing import SigningKey, VerificationKeys


@pytest.fixture(scope="module")
def key():
    return SigningKey.generate()


@pytest.fixture(params=["file", "sqlite"])
def store(request, tmp_path):
    if request.param == "file":
        return alias_log.open_store(str(tmp_path / "log.jsonl"))
    return alias_log.open_store(f"sqlite:///{tmp_path}/log.db")


def move(store, key, version, kind="promotion"):
    keys = VerificationKeys.from_texts([key.public_text])
    return alias_log.append(
        store,
        key,
        keys,
        model_name="m",
        alias="champion",
        to_version=version,
        move=kind,
        actor="ana",
        reason="why",
        at="2026-12-05T00:00:00+00:00",
    )


def test_moves_chain_and_the_newest_names_the_alias(store, key):
    move(store, key, "1")
    second = move(store, key, "2")
    moves = alias_log.history(store, VerificationKeys.from_texts([key.public_text]), "m", "champion")
    assert [(m.sequence, m.from_version, m.to_version) for m in moves] == [(1, None, "1"), (2, "1", "2")]
    assert moves[-1] == second and second.key_id == key.key_id
    assert alias_log.check_alias(moves, "m", "champion", "2") == second
    with pytest.raises(alias_log.AliasLogError, match=r"points at version 7, but the last signed move \(#2"):
        alias_log.check_alias(moves, "m", "champion", "7")
    with pytest.raises(
        alias_log.AliasLogError, match="has no move of 'champion': it was set outside the project"
    ):
        alias_log.check_alias([], "m", "champion", "7")


def test_an_edited_record_breaks_the_log(tmp_path, key):
    store = alias_log.FileAliasLog(tmp_path / "log.jsonl")
    move(store, key, "1")
    move(store, key, "2")
    lines = [json.loads(line) for line in store.path.read_text().splitlines()]
    envelope = json.loads(lines[1]["envelope"])
    envelope["payload"]["to_version"] = "9"  # a forged move to v9
    lines[1]["envelope"] = json.dumps(envelope)
    store.path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    with pytest.raises(alias_log.AliasLogError, match="record 2 is refused: the signature .* does not match"):
        alias_log.history(store, VerificationKeys.from_texts([key.public_text]), "m", "champion")


def test_a_deleted_middle_record_or_a_record_signed_elsewhere_breaks_the_log(tmp_path, key):
    store = alias_log.FileAliasLog(tmp_path / "log.jsonl")
    for version in ("1", "2", "3"):
        move(store, key, version)
    lines = store.path.read_text().splitlines()
    store.path.write_text(lines[0] + "\n" + lines[2] + "\n")
    with pytest.raises(alias_log.AliasLogError, match="record 2 is signed for m@champion #3"):
        alias_log.history(store, VerificationKeys.from_texts([key.public_text]), "m", "champion")
    other = alias_log.FileAliasLog(tmp_path / "other.jsonl")
    move(other, SigningKey.generate(), "1")
    with pytest.raises(alias_log.AliasLogError, match="which is not among the trusted keys"):
        alias_log.history(other, VerificationKeys.from_texts([key.public_text]), "m", "champion")


def test_two_appends_of_the_same_sequence_cannot_both_win(store, key):
    move(store, key, "1")
    with pytest.raises(alias_log.AliasLogConflict):
        store.append("m", "champion", 1, "{}")
