"""The production store of the signed alias log: a table in PostgreSQL (the machine's server, 127.0.0.1:5432)."""

from __future__ import annotations

import os
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from mlops_ops.core import alias_log
from mlops_ops.core.signing import SigningKey, VerificationKeys

pytestmark = pytest.mark.integration


@pytest.fixture
def database():
    """A database of its own, dropped afterwards."""
    import psycopg2

    try:
        admin = psycopg2.connect(
            host="127.0.0.1", port=5432, user="postgres", dbname="postgres", connect_timeout=3
        )
    except psycopg2.OperationalError as err:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL is not reachable at 127.0.0.1:5432: {err}")
    admin.autocommit = True
    name = f"mlops_alias_log_{uuid.uuid4().hex[:10]}"
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def test_moves_are_kept_verified_and_concurrent_appends_cannot_both_win(database):
    key = SigningKey.generate()
    keys = VerificationKeys.from_texts([key.public_text])
    store = alias_log.open_store(database)
    assert isinstance(store, alias_log.SqlAliasLog) and "postgres@127.0.0.1" in store.describe()

    def move(version):
        return alias_log.append(
            store,
            key,
            keys,
            model_name="m",
            alias="champion",
            to_version=version,
            move="promotion",
            actor="ana",
            reason="why",
            at="2026-12-05T00:00:00+00:00",
        )

    move("1")
    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(lambda v: _outcome(move, v), ["2", "3"]))
    moves = alias_log.history(store, keys, "m", "champion")
    # Both read sequence 1 as the newest: one appended #2, the other may have lost the race or come after.
    assert [m.sequence for m in moves] == list(range(1, len(moves) + 1))
    assert len(moves) == 1 + outcomes.count("appended")
    assert moves[-1].from_version == moves[-2].to_version


def _outcome(move, version):
    try:
        move(version)
    except alias_log.AliasLogConflict:
        return "conflict"
    return "appended"
