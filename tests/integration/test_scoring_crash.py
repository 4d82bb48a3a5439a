"""Kill -9 a scoring process mid-write: the published partition is the old one or the complete new one."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlops_ops.core import scoring, training
from mlops_ops.core.modelspec import ModelSpec
from tests.flights_spec import flights_spec

pytestmark = pytest.mark.integration
PROJECT = Path(__file__).resolve().parents[2]
INTERVAL = scoring.Interval.parse("2013-03-01", "2013-03-08")
# (shards, where the process is killed): inside the first shard's chunks, while merging shards, and just
# before the finished partition is moved into place.
KILL_POINTS = [(1, "chunk:1"), (1, "chunk:4"), (1, "publish"), (2, "chunk:2"), (2, "merge"), (2, "publish")]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """A week of March 2013 features (row groups of 2,000 rows), a fitted model, and a first partition."""
    from include.flights.data import flights
    from include.flights.features import prepare_features

    work = tmp_path_factory.mktemp("crash")
    spec = ModelSpec.from_dict(flights_spec())
    features = prepare_features(flights(3).sort_values("time_hour", kind="stable"))
    model = training.fit(spec, features[features[spec.target].notna()], params={"max_iter": 10}, seed=3)
    (work / "in").mkdir()
    table = pa.Table.from_pandas(features.drop(columns=[spec.target]), preserve_index=False)
    pq.write_table(table, work / "in" / "march.parquet", row_group_size=2000)
    inputs = [(c, "string") for c in spec.categorical_features] + [
        (c, "double") for c in spec.numerical_features
    ]
    (work / "model.pickle").write_bytes(pickle.dumps((model, inputs, INTERVAL)))
    assert _worker(work, "run-1", 1, "none").returncode == 0
    return work


def _command(work: Path, token: str, shards: int, stall_at: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "tests.integration.scoring_crash_worker",
        str(work),
        token,
        str(shards),
        stall_at,
    ]


def _worker(work: Path, token: str, shards: int, stall_at: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        _command(work, token, shards, stall_at), cwd=PROJECT, capture_output=True, text=True, timeout=120
    )


def _partition(work: Path) -> Path:
    return Path(scoring.partition_uri(str(work / "out"), "flight_delay", INTERVAL))


def _expected_rows(work: Path) -> int:
    table = pq.read_table(work / "in" / "march.parquet", columns=["time_hour"]).to_pandas()
    return int(((table["time_hour"] >= INTERVAL.start) & (table["time_hour"] < INTERVAL.end)).sum())


def _kill_at(work: Path, token: str, shards: int, stall_at: str) -> None:
    process = subprocess.Popen(
        _command(work, token, shards, stall_at),
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        for line in process.stdout:  # bounded: the worker stalls (and waits to be killed) or exits
            if line.strip() == "STALLED":
                os.kill(process.pid, signal.SIGKILL)
                break
        assert process.wait(timeout=60) == -signal.SIGKILL, f"the worker never reached {stall_at}"
    finally:
        if process.poll() is None:
            process.kill()
        process.stdout.close()


def test_a_killed_scoring_leaves_the_previous_partition_then_a_rerun_replaces_it(work):
    expected = _expected_rows(work)
    killed = 0
    for number, (shards, stall_at) in enumerate(KILL_POINTS, start=2):
        before = _partition(work).read_bytes()
        _kill_at(work, f"run-{number}", shards, stall_at)
        killed += 1
        # The old partition, byte for byte: nothing half-written is visible where readers look.
        assert _partition(work).read_bytes() == before, stall_at
        visible = [p for p in (work / "out").rglob("*.parquet") if "_staging" not in p.parts]
        assert visible == [_partition(work)], stall_at

        # The next try of the same run (same staging token) completes and replaces the partition.
        finished = _worker(work, f"run-{number}", shards, "none")
        assert finished.returncode == 0, finished.stderr[-2000:]
        published = pq.read_table(_partition(work))
        assert published.num_rows == expected
        assert scoring.read_file_metadata(str(_partition(work)))["model_version"] == str(number)
        assert (
            not published.to_pandas()
            .duplicated(["year", "month", "day", "carrier", "flight", "origin"])
            .any()
        )
    assert killed == len(KILL_POINTS) == 6
