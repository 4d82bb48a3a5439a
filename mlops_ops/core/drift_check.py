"""The windows of a drift check, read in chunks, and its Evidently report on a sample of them.

The reference window is the data a model version was trained on (the files its training run recorded); the
current window is one interval of the landed data (the rows a batch-scoring run scored). Both are read in
record batches, turned into features by the model spec's ``prepare`` (the same function as in training and
scoring), scored by the model for the prediction's drift, and counted by :class:`~mlops_ops.core.drift.WindowSummary`:
memory is bounded by the chunk size and the per-column value counts, never by the window's rows.

While counting, a uniform sample of each window is kept (a bottom-k sample on random keys, so it is uniform
over all chunks): Evidently's HTML report is rendered from the samples, since Evidently on the full windows
takes minutes and gigabytes at a million rows. The report says so at its top; the verdicts come from the full
windows.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops_ops.core import drift, scoring, services, storage, training
from mlops_ops.core.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

    from mlops_ops.core.contracts import DriftOutcome
    from mlops_ops.core.modelspec import ModelSpec
    from mlops_ops.core.storage import ObjectStore

#: The column holding the model's prediction in both windows (and in the report): what
#: :attr:`~mlops_ops.core.tasks.Predictions.drift_value` gives, the probability of class 1 (binary), the predicted
#: class (multiclass) or the predicted value (regression).
PREDICTION_COLUMN = "prediction"
DEFAULT_SAMPLE_ROWS = 20_000
DEFAULT_CHUNK_ROWS = 65_536


def iter_file_chunks(
    files: Sequence[str], object_store: ObjectStore | None, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> Iterator[pd.DataFrame]:
    """The rows of Parquet ``files`` (local or ``s3://``) as DataFrames of at most ``chunk_rows`` rows.

    :raises DataError: naming the file that is missing or not Parquet.
    """
    import pyarrow.parquet as pq

    if not files:
        raise DataError("no files to read")
    for uri in files:
        try:
            filesystem, path = storage.resolve(uri, object_store)
            parquet = pq.ParquetFile(path, filesystem=filesystem)
        except FileNotFoundError as err:
            raise DataError(f"{uri} no longer exists: {err}") from err
        except (OSError, ValueError) as err:
            if services.is_unreachable(err):
                raise  # the S3 endpoint is down, not the file broken: Airflow retries it
            if "not found" in str(err).lower() or "does not exist" in str(err).lower():
                raise DataError(f"{uri} no longer exists: {err}") from err
            raise DataError(f"{uri} is not readable Parquet: {err}") from err
        for batch in parquet.iter_batches(batch_size=chunk_rows):
            yield batch.to_pandas()


def iter_interval_chunks(
    source: str,
    interval: scoring.Interval,
    time_column: str,
    object_store: ObjectStore | None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> Iterator[pd.DataFrame]:
    """The rows of ``source`` (a Parquet file or folder/prefix) whose ``time_column`` falls in ``interval``."""
    units = scoring.find_input_units(source, interval, time_column, object_store)
    config = scoring.ScoringConfig(
        features=(), key_columns=(), time_column=time_column, prepare=lambda raw: raw, chunk_rows=chunk_rows
    )
    filesystem, _ = storage.resolve(source, object_store)
    for batch, _rows_read in scoring.iter_interval_batches(
        units, config, interval, filesystem, pre_buffer=True
    ):
        if batch.num_rows:
            yield batch.to_pandas()


class RowSample:
    """A uniform sample of at most ``size`` rows over all the chunks offered (bottom-k on random keys).

    :param size: rows to keep.
    :param seed: seeds the keys, so a re-run over the same data keeps the same rows.
    """

    def __init__(self, size: int, seed: int = 0) -> None:
        import numpy as np

        if size < 1:
            raise ValueError(f"sample size must be >= 1, got {size}")
        self.size = size
        self._random = np.random.default_rng(seed)
        self._kept: pd.DataFrame | None = None
        self._keys: Any = None

    def offer(self, frame: pd.DataFrame) -> None:
        import numpy as np
        import pandas as pd

        if frame.empty:
            return
        keys = self._random.random(len(frame))
        if self._kept is not None:
            frame = pd.concat([self._kept, frame], ignore_index=True)
            keys = np.concatenate([self._keys, keys])
        if len(frame) > self.size:
            keep = np.argpartition(keys, self.size - 1)[: self.size]
            frame, keys = frame.iloc[keep].reset_index(drop=True), keys[keep]
        self._kept, self._keys = frame, keys

    @property
    def rows(self) -> pd.DataFrame | None:
        return self._kept


def drift_columns(spec: ModelSpec, with_prediction: bool) -> tuple[list[str], list[str]]:
    """The numerical and the categorical columns a drift check tests: the spec's features and, with
    ``with_prediction``, :data:`PREDICTION_COLUMN`, numerical for a binary (the probability) or regression model,
    categorical for a multiclass one (the predicted class).

    :raises DataError: when a feature has the prediction column's name.
    """
    numerical, categorical = list(spec.numerical_features), list(spec.categorical_features)
    if PREDICTION_COLUMN in spec.features:
        raise DataError(
            f"a feature is named {PREDICTION_COLUMN!r}, the name the drift check gives predictions"
        )
    if with_prediction:
        (categorical if spec.task == "multiclass" else numerical).append(PREDICTION_COLUMN)
    return numerical, categorical


@dataclass
class Window:
    """One window's counts (for the verdicts) and its sample (for the report)."""

    summary: drift.WindowSummary
    sample: RowSample


def read_window(
    chunks: Iterable[pd.DataFrame],
    spec: ModelSpec,
    name: str,
    *,
    model: Any = None,
    model_columns: list[str] | None = None,
    join: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
    max_distinct: int = drift.MAX_DISTINCT,
    seed: int = 0,
) -> Window:
    """Prepare, score and count every chunk of one window.

    :param chunks: raw rows, chunk by chunk (see :func:`iter_file_chunks`, :func:`iter_interval_chunks`).
    :param spec: the model spec: its ``prepare`` makes the features, its declared numerical and categorical
        features are the columns tested.
    :param name: ``"reference"`` or ``"current"``, for messages.
    :param model: the model whose prediction is counted as :data:`PREDICTION_COLUMN` (see :func:`drift_columns`);
        ``None`` for no prediction drift. It must do the spec's task.
    :param model_columns: the model's input columns (its signature) when they differ from the spec's features.
    :param join: adds feature-store columns to raw rows before ``prepare`` (the spec's feature service, joined
        point-in-time, every row kept), as batch scoring does.
    :param sample_rows: rows kept for the Evidently report.
    :raises DataError: naming the window and the problem (a missing column, a failing ``prepare``).
    :raises TaskMismatchError: when ``model`` does not do the spec's task.
    """
    numerical, categorical = drift_columns(spec, with_prediction=model is not None)
    task = spec.prediction_task
    if model is not None:
        task.check_model(model, f"the model of the {name} window")
    summary = drift.WindowSummary(numerical, categorical, name, max_distinct)
    sample = RowSample(sample_rows, seed)
    for chunk in chunks:
        try:
            prepared = training.prepare(join(chunk) if join is not None else chunk, spec)
        except DataError as err:
            raise DataError(f"the {name} window: {err}") from err
        frame = prepared[list(spec.features)].copy()
        if model is not None:
            inputs = training.features_frame(prepared, spec, model_columns)
            frame[PREDICTION_COLUMN] = task.predict(model, inputs).drift_value
        summary.add(frame)
        sample.offer(frame)
    return Window(summary, sample)


def evidently_report_html(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numerical: Sequence[str],
    categorical: Sequence[str],
    *,
    drift_share: float,
    note: str,
) -> str:
    """Evidently's ``DataDriftPreset`` report on two samples, as one HTML page with ``note`` at its top.

    :raises RuntimeError: naming the ``drift`` extra when Evidently is not installed.
    """
    import os
    import tempfile

    from mlops_ops.core.optional import import_optional

    import_optional("evidently", "drift")
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=list(numerical), categorical_columns=list(categorical))
    snapshot = Report([DataDriftPreset(drift_share=drift_share)]).run(
        current_data=Dataset.from_pandas(current, data_definition=definition),
        reference_data=Dataset.from_pandas(reference, data_definition=definition),
    )
    with tempfile.TemporaryDirectory(prefix="mlops-drift-") as folder:
        path = os.path.join(folder, "report.html")
        snapshot.save_html(path)
        with open(path, encoding="utf-8") as page:
            text = page.read()
    banner = (
        '<div style="font-family:sans-serif;padding:12px;background:#fff4d6;border-bottom:1px solid #e0c060">'
        f"{html.escape(note)}</div>"
    )
    at = text.find("<body")
    at = text.find(">", at) + 1 if at >= 0 else 0
    return text[:at] + banner + text[at:]


@dataclass(frozen=True)
class CheckedInterval:
    """The verdict on one interval, and the two windows it was reached on (their counts and samples)."""

    result: drift.DriftResult
    current: Window
    reference: Window


def check_interval(
    spec: ModelSpec,
    interval: scoring.Interval,
    *,
    source: str,
    time_column: str,
    reference_files: Sequence[str],
    reference_joined: bool = False,
    model: Any = None,
    model_columns: list[str] | None = None,
    join: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
    drift_share: float = 0.5,
    thresholds: dict[str, float] | None = None,
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    source_store: ObjectStore | None = None,
    reference_store: ObjectStore | None = None,
) -> CheckedInterval:
    """Compare the interval's rows of ``source`` with the data a model version was trained on: the workflow of
    :class:`~mlops_ops.operators.drift.DriftCheckOperator`, callable without Airflow.

    The current window is read first, so an interval without data fails before the larger reference is read.

    :param source: the landed data (Parquet file or folder, local or ``s3://``).
    :param reference_files: the version's training data (what its run recorded).
    :param reference_joined: the reference files hold the feature-store columns already (a recorded
        point-in-time training set): ``join`` is applied to the current window only.
    :param model: the version's model, for the prediction's drift (``None``: features only).
    :param join: adds the feature service's columns to raw rows (see :func:`read_window`).
    :param sample_rows: rows of each window kept for Evidently's report (at least 1).
    :param source_store: how to reach ``source`` when it is in an object store; ``reference_store`` the
        reference files.
    :raises DataError: a window without rows (naming the interval and ``source`` for the current one), a column
        missing or of the wrong type, a failing ``prepare``.
    :raises TaskMismatchError: when ``model`` does not do the spec's task.
    """
    windows: dict[str, Window] = {}
    for name, chunks in (
        ("current", iter_interval_chunks(source, interval, time_column, source_store, chunk_rows)),
        ("reference", iter_file_chunks(list(reference_files), reference_store, chunk_rows)),
    ):
        windows[name] = window = read_window(
            chunks,
            spec,
            name,
            model=model,
            model_columns=model_columns,
            join=None if name == "reference" and reference_joined else join,
            sample_rows=max(int(sample_rows), 1),
        )
        if window.summary.rows == 0:
            where = f" in {interval.describe()} under {source}" if name == "current" else ""
            raise DataError(f"the {name} window has no rows{where}")
    result = drift.compare(
        windows["reference"].summary,
        windows["current"].summary,
        drift_share=float(drift_share),
        thresholds=thresholds,
        prediction_column=PREDICTION_COLUMN if model is not None else None,
    )
    return CheckedInterval(result, current=windows["current"], reference=windows["reference"])


def drift_reason(result: drift.DriftResult, model_name: str, version: str, interval: scoring.Interval) -> str:
    """One short line on what drifted (it becomes a retrain's trigger reason); the JSON result holds the rest."""
    parts = []
    if result.dataset_drift:
        names = [column.column for column in result.drifted_columns]
        shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
        parts.append(
            f"{len(names)} of {len(result.columns)} feature columns drifted "
            f"(share {result.share:.2f} >= {result.drift_share:g}): {shown}"
        )
    if result.prediction is not None and result.prediction.drifted:
        parts.append(f"the prediction drifted ({result.prediction.method} {result.prediction.score:.3g})")
    if result.new_categories:
        parts.append(
            "new categories in "
            + ", ".join(f"{column} ({len(values)})" for column, values in result.new_categories.items())
        )
    return f"data drift on {interval.key} for {model_name} v{version}: " + "; ".join(parts)


def drift_outcome(
    checked: CheckedInterval,
    *,
    model_name: str,
    version: str,
    interval: scoring.Interval,
    on_drift: str = "warn",
    airflow_run: str | None = None,
) -> DriftOutcome:
    """The check's result as the step passes it on. The dataset's share decides, as in Evidently; the
    prediction's drift is evidence, not a trigger (a week's weather alone moves the predictions of a model that
    reads the weather)."""
    from mlops_ops.core.contracts import DriftOutcome

    result = checked.result
    detected = result.dataset_drift
    return DriftOutcome.from_xcom(
        {
            **result.to_dict(),
            "model_name": model_name,
            "model_version": str(version),
            "interval": interval.to_dict(),
            "prediction_drift": bool(result.prediction and result.prediction.drifted),
            "drift_detected": detected,
            "on_drift": on_drift,
            "retrain_requested": detected and on_drift == "request_retrain",
            "reason": drift_reason(result, model_name, str(version), interval) if detected else None,
            "prediction_distribution": (
                checked.current.summary.distribution(PREDICTION_COLUMN)
                if result.prediction is not None
                else None
            ),
            "airflow_run": airflow_run,
        },
        "drift outcome",
    )


def prediction_metrics(distribution: dict[str, Any] | None) -> dict[str, float]:
    """The interval's prediction distribution as monitoring-run metrics (what the Models view charts per
    interval): ``prediction.mean``/``p10``/``p50``/``p90`` of a probability or a regression value, or
    ``prediction.share.<class>`` per predicted class (names reduced to the characters MLflow takes)."""
    from mlops_ops.core.performance import metric_name_part

    if not distribution:
        return {}
    if distribution.get("kind") == "categorical":
        return {
            f"prediction.share.{metric_name_part(str(value))}": float(share)
            for value, share in (distribution.get("shares") or {}).items()
        }
    return {
        f"prediction.{name}": float(distribution[name])
        for name in ("mean", "p10", "p50", "p90")
        if isinstance(distribution.get(name), (int, float)) and math.isfinite(distribution[name])
    }


def write_evidence(
    checked: CheckedInterval,
    outcome: DriftOutcome,
    spec: ModelSpec,
    interval: scoring.Interval,
    *,
    report_root: str,
    report_sample_rows: int,
    object_store: ObjectStore | None = None,
) -> tuple[DriftOutcome, str | None]:
    """Write Evidently's report (unless ``report_sample_rows`` is 0) and the JSON result under
    ``<report_root>/model=<name>/interval=<key>/``, the report first; return the outcome with their URIs, and the
    report's page (to log elsewhere too), ``None`` without one."""
    from dataclasses import replace

    result = checked.result
    folder = storage.join(report_root, f"model={outcome.model_name}", f"interval={interval.key}")
    version = outcome.model_version
    page = None
    if int(report_sample_rows) > 0:
        reference, current = checked.reference.sample.rows, checked.current.sample.rows
        if reference is None or current is None:  # check_interval refuses an empty window
            raise DataError("a drift report needs rows in both windows")
        numerical, categorical = drift_columns(spec, with_prediction=result.prediction is not None)
        whole = len(reference) >= result.reference_rows and len(current) >= result.current_rows
        note = (
            f"mlops-ops drift check of {outcome.model_name} v{version} on {interval.describe()}. "
            f"Verdict on all rows ({result.reference_rows:,} reference, {result.current_rows:,} current): "
            f"{result.summary()}. This Evidently report is computed on a uniform sample of "
            f"{len(reference):,} reference and {len(current):,} current rows"
            + (" (all rows)." if whole else "; its per-column figures may differ from the verdict's.")
        )
        page = evidently_report_html(
            reference, current, numerical, categorical, drift_share=result.drift_share, note=note
        )
        outcome = replace(
            outcome,
            report_uri=storage.write_bytes_atomic(
                page.encode(), storage.join(folder, f"drift_report_v{version}.html"), object_store
            ),
            report_sample_rows={"reference": len(reference), "current": len(current)},
        )
    result_uri = storage.join(folder, f"drift_v{version}.json")
    outcome = replace(outcome, result_uri=result_uri)
    storage.write_bytes_atomic(json.dumps(outcome.to_xcom(), indent=2).encode(), result_uri, object_store)
    return outcome, page
