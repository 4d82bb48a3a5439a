"""One measurement of the drift benchmark in a fresh process: ``python -m benchmarks.drift_worker MODE REF CUR``.

Prints one JSON line: ``{"seconds", "peak_rss_mb", "columns": {name: {"method", "score", "drifted"}}}``.
``seconds`` covers the drift computation (for ``engine`` also reading the Parquet files, in chunks).
"""

from __future__ import annotations

import json
import sys
import time
import warnings

from benchmarks.drift import COLUMNS_CATEGORICAL, COLUMNS_NUMERICAL
from benchmarks.scoring_worker import _status_mb

CHUNK_ROWS = 65_536


def _engine(reference: str, current: str) -> dict:
    import pyarrow.compute  # noqa: F401  (imports outside the timing, as Evidently's are)
    import pyarrow.parquet as pq
    import scipy.spatial.distance  # noqa: F401
    import scipy.stats  # noqa: F401

    from mlops_ops.core import drift

    start = time.perf_counter()
    summaries = []
    for name, path in (("reference", reference), ("current", current)):
        summary = drift.WindowSummary(COLUMNS_NUMERICAL, COLUMNS_CATEGORICAL, name)
        for batch in pq.ParquetFile(path).iter_batches(batch_size=CHUNK_ROWS):
            summary.add(batch)
        summaries.append(summary)
    result = drift.compare(*summaries)
    seconds = time.perf_counter() - start
    columns = {
        c.column: {"method": c.method_name, "score": c.score, "drifted": c.drifted} for c in result.columns
    }
    return {"seconds": seconds, "columns": columns}


def _evidently(reference: str, current: str) -> dict:
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    reference_frame, current_frame = pd.read_parquet(reference), pd.read_parquet(current)
    definition = DataDefinition(numerical_columns=COLUMNS_NUMERICAL, categorical_columns=COLUMNS_CATEGORICAL)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = (
            Report([DataDriftPreset()])
            .run(
                current_data=Dataset.from_pandas(current_frame, data_definition=definition),
                reference_data=Dataset.from_pandas(reference_frame, data_definition=definition),
            )
            .dict()
        )
    seconds = time.perf_counter() - start
    columns = {}
    for metric in report["metrics"][1:]:
        config = metric["config"]
        method, threshold, score = config["method"], config["threshold"], metric["value"]
        if "p_value" in method:
            drifted = score <= threshold if "K-S" in method else score < threshold
        else:
            drifted = score >= threshold
        columns[config["column"]] = {"method": method, "score": float(score), "drifted": bool(drifted)}
    return {"seconds": seconds, "columns": columns}


def main(argv: list[str]) -> None:
    mode, reference, current = argv
    result = {"engine": _engine, "evidently": _evidently}[mode](reference, current)
    print(json.dumps({**result, "peak_rss_mb": _status_mb("VmHWM")}))


if __name__ == "__main__":
    main(sys.argv[1:])
