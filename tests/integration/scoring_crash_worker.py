"""Scores one interval in a child process that the crash test kills with SIGKILL at a chosen point.

Usage: ``python -m tests.integration.scoring_crash_worker <workdir> <token> <shards> <stall_at>``, where
``stall_at`` is ``chunk:<n>`` (stall after writing chunk n of the first shard), ``merge`` (stall while
merging shards into the partition) or ``publish`` (stall just before the partition is moved into place), or
``none``. At the stall point it prints ``STALLED`` and sleeps, so the parent can kill it there.
"""

from __future__ import annotations

import pickle
import sys
import time
from pathlib import Path

from mlops_ops.core import scoring
from mlops_ops.core.model_artifacts import ModelInput, PinnedModel

KEYS = ["year", "month", "day", "carrier", "flight", "origin"]


def stall() -> None:
    print("STALLED", flush=True)
    time.sleep(60)


def main(workdir: str, token: str, shards: int, stall_at: str) -> None:
    work = Path(workdir)
    model, inputs, interval = pickle.loads((work / "model.pickle").read_bytes())
    pinned = PinnedModel("flight_delay", token.removeprefix("run-"), "champion", None, "", "sha256:test")
    config = scoring.ScoringConfig(
        features=[ModelInput(*spec) for spec in inputs],
        key_columns=KEYS,
        time_column="time_hour",
        chunk_rows=500,
    )
    staging = scoring.staging_folder(str(work / "out"), pinned.name, interval, token)

    def progress(chunk: int, rows: int, rate: float) -> None:
        print(f"chunk {chunk} {rows}", flush=True)
        if stall_at == f"chunk:{chunk}":
            stall()

    for index in range(shards):
        scoring.score_shard(
            model=model,
            pinned=pinned,
            config=config,
            interval=interval,
            source_uri=str(work / "in"),
            destination_uri=scoring.shard_uri(staging, index, shards),
            shard_index=index,
            shard_count=shards,
            progress=progress if index == 0 else None,
        )
    if stall_at == "merge":
        write = scoring._StagedWriter.write

        def stalling_write(self, batch):
            write(self, batch)
            stall()

        scoring._StagedWriter.write = stalling_write
    if stall_at == "publish":
        # Patched where scoring and publishing look it up at call time: the batch module.
        from mlops_ops.core.scoring import batch as scoring_batch

        move = scoring_batch.move

        def stalling_move(source, destination, object_store=None):
            if destination.endswith(scoring.PARTITION_FILE):
                stall()
            move(source, destination, object_store)

        scoring_batch.move = stalling_move
    published = scoring.publish(
        staging=staging,
        destination_uri=scoring.partition_uri(str(work / "out"), pinned.name, interval),
        pinned=pinned,
        interval=interval,
        shard_count=shards,
    )
    print(f"PUBLISHED {published.rows}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])
