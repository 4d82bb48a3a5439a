"""One measurement of the batch-scoring benchmark, in a fresh process (so its peak RSS is its own).

``python -m benchmarks.scoring_worker MODE DATA MODEL OUTPUT [SHARD SHARDS]`` prints one JSON line:
``{"rows", "seconds", "start", "end", "peak_rss_mb", "ready_rss_mb"}``. ``start``/``end`` are
``time.monotonic()`` readings, comparable between processes on one Linux machine; ``ready_rss_mb`` is the RSS once
libraries and the model are loaded, before any data is touched. With ``--wait`` the worker loads everything,
prints ``READY`` and waits for a line on stdin before it starts (so parallel shards start together).

Modes:
- ``baseline``: the bare pyarrow loop: read a record batch, ``predict_proba``, write keys + prediction +
  probability; nothing else.
- ``operator``: what BatchScoreOperator runs: :func:`mlops_ops.core.scoring.score_shard` then ``publish``.
- ``shard``: ``score_shard`` alone for shard SHARD of SHARDS (publishing is measured separately).
- ``publish``: ``publish`` alone, merging the staged shards.
- ``naive``: pandas ``read_parquet`` of everything, ``predict_proba``, ``to_parquet``.
- ``in_memory``: ``predict_proba`` on rows already in memory as a DataFrame (only the prediction is timed).
"""

from __future__ import annotations

import json
import pickle
import sys
import time

KEYS = ["year", "month", "day", "carrier", "flight", "origin"]
INTERVAL = ("2000-01-01", "2100-01-01")
CHUNK_ROWS = 65_536


def _status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status, in MiB.

    ``VmHWM`` (peak RSS) rather than ``getrusage``'s ``ru_maxrss``: the latter survives ``exec`` and would report
    the parent's peak when it was higher.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def main(argv: list[str]) -> None:
    wait = "--wait" in argv
    argv = [a for a in argv if a != "--wait"]
    mode, data, model_path, output = argv[:4]
    shard, shards = (int(argv[4]), int(argv[5])) if len(argv) > 5 else (0, 1)

    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlops_ops.core import scoring
    from mlops_ops.core.model_artifacts import ModelInput, PinnedModel

    with open(model_path, "rb") as handle:
        model, categorical, numerical = pickle.load(handle)
    features = [*categorical, *numerical]
    pinned = PinnedModel("bench", "1", None, None, "", "sha256:bench")
    interval = scoring.Interval.parse(*INTERVAL)
    staging = scoring.staging_folder(output, "bench", interval, "bench-run")
    destination = scoring.partition_uri(output, "bench", interval)
    config = scoring.ScoringConfig(
        features=[ModelInput(c, "string") for c in categorical]
        + [ModelInput(c, "double") for c in numerical],
        key_columns=KEYS,
        time_column="time_hour",
        chunk_rows=CHUNK_ROWS,
    )
    frame = None
    if mode == "in_memory":
        frame = pq.read_table(data, columns=features).to_pandas()
        frame[list(numerical)] = frame[list(numerical)].astype("float64")
    ready = _status_mb("VmRSS")
    if wait:
        print("READY", flush=True)
        sys.stdin.readline()

    start = time.monotonic()
    rows = 0
    if mode == "baseline":
        parquet = pq.ParquetFile(data)
        schema = pa.schema(
            [parquet.schema_arrow.field(k) for k in KEYS]
            + [pa.field("prediction", pa.int8()), pa.field("probability", pa.float64())]
        )
        with pq.ParquetWriter(f"{output}/baseline.parquet", schema) as writer:
            for batch in parquet.iter_batches(batch_size=CHUNK_ROWS, columns=[*KEYS, *features]):
                inputs = batch.to_pandas()[features]
                probability = model.predict_proba(inputs)[:, 1]
                columns = [batch.column(k) for k in KEYS]
                columns += [pa.array((probability >= 0.5).astype("int8")), pa.array(probability)]
                writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=schema))
                rows += batch.num_rows
    elif mode in ("operator", "shard"):
        result = scoring.score_shard(
            model=model,
            pinned=pinned,
            config=config,
            interval=interval,
            source_uri=data,
            destination_uri=scoring.shard_uri(staging, shard, shards),
            shard_index=shard,
            shard_count=shards,
        )
        rows = result.rows
        if mode == "operator":
            scoring.publish(
                staging=staging,
                destination_uri=destination,
                pinned=pinned,
                interval=interval,
                shard_count=shards,
            )
    elif mode == "publish":
        rows = scoring.publish(
            staging=staging, destination_uri=destination, pinned=pinned, interval=interval, shard_count=shards
        ).rows
    elif mode == "naive":
        table = pd.read_parquet(data)
        probability = model.predict_proba(table[features])[:, 1]
        result = table[KEYS].assign(prediction=(probability >= 0.5).astype("int8"), probability=probability)
        result.to_parquet(f"{output}/naive.parquet", index=False)
        rows = len(result)
    elif mode == "in_memory":
        probability = model.predict_proba(frame)[:, 1]
        rows = int(np.asarray(probability).shape[0])
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    end = time.monotonic()
    peak = _status_mb("VmHWM")
    print(
        json.dumps(
            {
                "rows": rows,
                "seconds": end - start,
                "start": start,
                "end": end,
                "peak_rss_mb": round(peak, 1),
                "ready_rss_mb": round(ready, 1),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
