"""DataVersionTrigger run for real on tmp_path."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mlops_ops.core.versions import local_version
from mlops_ops.triggers.data_version import DataVersionTrigger


async def first_event(trigger: DataVersionTrigger, timeout: float = 10.0):
    async def take():
        async for event in trigger.run():
            return event
        return None

    return await asyncio.wait_for(take(), timeout)


def test_serialize_round_trips():
    trigger = DataVersionTrigger(
        source="s3://bucket/prefix",
        kind="s3",
        seen_fingerprints=["sha256:a"],
        storage_conn_id="aws_test",
        poke_interval=2.5,
        timeout_seconds=30,
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "mlops_ops.triggers.data_version.DataVersionTrigger"
    assert kwargs["storage_conn_id"] == "aws_test" and "aws_conn_id" not in kwargs
    assert DataVersionTrigger(**kwargs).serialize() == (classpath, kwargs)


def test_a_trigger_serialized_before_the_rename_keeps_its_connection():
    """Triggers deferred by an older release are stored with ``aws_conn_id``; ``None`` (boto3's chain) included."""
    old = {"source": "s3://bucket/prefix", "kind": "s3", "seen_fingerprints": [], "poke_interval": 1.0}
    assert DataVersionTrigger(**old, aws_conn_id="aws_landing").storage_conn_id == "aws_landing"
    assert DataVersionTrigger(**old, aws_conn_id=None).storage_conn_id is None
    assert DataVersionTrigger(**old).storage_conn_id == "aws_default"


def test_fires_when_a_new_file_appears(tmp_path: Path):
    folder = tmp_path / "data"
    (folder).mkdir()
    (folder / "part-0.csv").write_text("x\n1\n")
    seen = local_version(str(folder)).fingerprint
    trigger = DataVersionTrigger(
        source=str(folder), kind="auto", seen_fingerprints=[seen], poke_interval=0.05
    )

    async def scenario():
        waiting = asyncio.create_task(first_event(trigger))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        (folder / "part-1.csv").write_text("x\n2\n")
        return await waiting

    event = asyncio.run(scenario())
    assert event.payload["status"] == "success"
    version = event.payload["version"]
    assert version["fingerprint"] != seen
    assert version["fingerprint"] == local_version(str(folder)).fingerprint
    assert version["files"] == [str(folder / "part-0.csv"), str(folder / "part-1.csv")]


def test_error_event_on_a_bad_source(tmp_path: Path):
    (tmp_path / "broken.dvc").write_text("outs: [unclosed")
    trigger = DataVersionTrigger(source=str(tmp_path / "broken.dvc"), poke_interval=0.05)
    event = asyncio.run(first_event(trigger))
    assert event.payload["status"] == "error"
    assert "broken.dvc" in event.payload["message"]


def test_timeout_event(tmp_path: Path):
    trigger = DataVersionTrigger(source=str(tmp_path / "missing"), poke_interval=0.05, timeout_seconds=0.2)
    event = asyncio.run(first_event(trigger))
    assert event.payload["status"] == "timeout"
    assert "missing" in event.payload["message"]


@pytest.mark.parametrize("kind", ["nonsense"])
def test_unknown_kind_is_an_error_event(tmp_path: Path, kind: str):
    event = asyncio.run(first_event(DataVersionTrigger(source=str(tmp_path), kind=kind)))
    assert event.payload["status"] == "error"
    assert "nonsense" in event.payload["message"]
