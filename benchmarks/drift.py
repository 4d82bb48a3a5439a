"""Drift check at 1M rows x 25 columns: the engine (streamed from Parquet) vs Evidently's DataDriftPreset.

Real flights: 17 numerical columns (schedule, delays, times, origin weather) and 4 categorical ones (carrier,
origin, dest, tailnum) plus 4 more weather columns = 25; the reference window is January-June resampled to
the size, the current window July-December (the seasons differ: real drift). Each measurement runs in a fresh
process (``python -m benchmarks.drift_worker``) so its peak RSS (VmHWM) is its own:

- ``evidently``: read both windows into pandas, run ``Report([DataDriftPreset()])`` with declared column types.
- ``engine``: :func:`mlops_ops.core.drift.compare` of two summaries built chunk by chunk (65,536 rows) straight
  from the Parquet files, as DriftCheckOperator does. Its time includes reading the files; Evidently's does not.

Goals (issue 5): >= 40x faster, identical per-column verdicts, peak memory <= 0.5x Evidently's; at 10M rows the
engine's memory stays bounded (reported against 1M; it levels off: the counts do not grow with the rows, the
allocator's heap grows a little with the number of batches and then stays). ``MLOPS_BENCH_SCALE`` scales the
row counts.
"""

from __future__ import annotations

import os
import statistics
import tempfile
from pathlib import Path

from benchmarks.worker_process import run_worker

COLUMNS_NUMERICAL = [
    "month", "day", "dep_time", "sched_dep_time", "dep_delay", "arr_time", "sched_arr_time", "arr_delay",
    "air_time", "distance", "hour", "minute", "day_of_week", "dep_minute_of_day",
    "temp", "humid", "wind_speed", "pressure", "visib", "precip", "dewp",
]  # fmt: skip
COLUMNS_CATEGORICAL = ["carrier", "origin", "dest", "tailnum"]


def _rows(count: int) -> int:
    return max(int(count * float(os.environ.get("MLOPS_BENCH_SCALE", "1"))), 2_000)


def _frames():
    import pandas as pd

    from include.flights import data

    flights = data.flights()
    weather = data.weather()[
        ["origin", "time_hour", "temp", "humid", "wind_speed", "pressure", "visib", "precip", "dewp"]
    ]
    frame = flights.merge(weather, on=["origin", "time_hour"], how="left")
    frame["day_of_week"] = pd.to_datetime(frame[["year", "month", "day"]]).dt.dayofweek
    frame["dep_minute_of_day"] = (frame["sched_dep_time"] // 100) * 60 + frame["sched_dep_time"] % 100
    for column in COLUMNS_NUMERICAL:
        frame[column] = frame[column].astype("float64")
    for column in COLUMNS_CATEGORICAL:
        frame[column] = frame[column].astype(object)
    frame = frame[COLUMNS_NUMERICAL + COLUMNS_CATEGORICAL]
    return frame[frame["month"] <= 6], frame[frame["month"] > 6]


def _write(frame, rows: int, path: Path, seed: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sample = frame.sample(n=rows, replace=True, random_state=seed).reset_index(drop=True)
    pq.write_table(pa.Table.from_pandas(sample, preserve_index=False), path, row_group_size=65_536)


def _worker(mode: str, reference: Path, current: Path) -> dict:
    return run_worker(
        "benchmarks.drift_worker",
        mode,
        str(reference),
        str(current),
        environment={**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"},
    )


def run(repeats: int = 3) -> dict:
    rows, large = _rows(1_000_000), _rows(10_000_000)
    reference_frame, current_frame = _frames()
    with tempfile.TemporaryDirectory(prefix="mlops-bench-drift-") as folder:
        paths = {
            name: Path(folder) / f"{name}.parquet"
            for name in ("reference", "current", "reference_10x", "current_10x")
        }
        _write(reference_frame, rows, paths["reference"], 1)
        _write(current_frame, rows, paths["current"], 2)
        engine = [_worker("engine", paths["reference"], paths["current"]) for _ in range(repeats)]
        evidently = [_worker("evidently", paths["reference"], paths["current"]) for _ in range(repeats)]
        _write(reference_frame, large, paths["reference_10x"], 3)
        _write(current_frame, large, paths["current_10x"], 4)
        engine_large = _worker("engine", paths["reference_10x"], paths["current_10x"])

    ours, theirs = engine[0]["columns"], evidently[0]["columns"]
    same_verdicts = {c: ours[c]["drifted"] for c in ours} == {c: theirs[c]["drifted"] for c in theirs}
    same_methods = {c: ours[c]["method"] for c in ours} == {c: theirs[c]["method"] for c in theirs}
    score_gap = max(
        abs(ours[c]["score"] - theirs[c]["score"]) / max(1.0, abs(theirs[c]["score"])) for c in ours
    )
    engine_s = statistics.median(r["seconds"] for r in engine)
    evidently_s = statistics.median(r["seconds"] for r in evidently)
    engine_mb = statistics.median(r["peak_rss_mb"] for r in engine)
    evidently_mb = statistics.median(r["peak_rss_mb"] for r in evidently)
    speedup = evidently_s / engine_s
    memory_ratio = engine_mb / evidently_mb
    large_ratio = engine_large["peak_rss_mb"] / engine_mb
    return {
        "benchmark": "drift",
        "repeats": repeats,
        "rows": rows,
        "columns": len(COLUMNS_NUMERICAL) + len(COLUMNS_CATEGORICAL),
        "engine": {
            "median_s": round(engine_s, 2),
            "peak_rss_mb": round(engine_mb),
            "runs_s": [r["seconds"] for r in engine],
        },
        "evidently": {
            "median_s": round(evidently_s, 2),
            "peak_rss_mb": round(evidently_mb),
            "runs_s": [r["seconds"] for r in evidently],
        },
        "engine_10x_rows": {
            "rows": large,
            "seconds": engine_large["seconds"],
            "peak_rss_mb": round(engine_large["peak_rss_mb"]),
        },
        "drifted_columns": sorted(c for c in ours if ours[c]["drifted"]),
        "max_relative_score_difference": score_gap,
        "checks": [
            {"name": "speed vs Evidently", "value": round(speedup, 1), "goal": ">= 40", "ok": speedup >= 40},
            {
                "name": "peak memory vs Evidently",
                "value": round(memory_ratio, 3),
                "goal": "<= 0.5",
                "ok": memory_ratio <= 0.5,
            },
            {
                "name": "identical methods and verdicts",
                "value": int(same_verdicts and same_methods),
                "goal": "== 1",
                "ok": same_verdicts and same_methods,
            },
            {
                "name": "peak memory 10x rows vs 1x",
                "value": round(large_ratio, 2),
                "goal": "<= 2 (bounded)",
                "ok": large_ratio <= 2,
            },
        ],
    }
