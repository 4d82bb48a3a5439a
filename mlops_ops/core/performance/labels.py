"""Joining a scored interval with the labels that landed since, and reading both."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops_ops.core.errors import DataError
from mlops_ops.core.tasks import TaskType, output_columns

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import pandas as pd

    from mlops_ops.core.scoring import Interval, ScoredTask
    from mlops_ops.core.storage import ObjectStore


def interval_step(interval: Interval) -> int:
    """The interval's index on a timeline of intervals of its length since the Unix epoch.

    Consecutive daily intervals get consecutive steps, and a re-run of an interval gets the same step.
    """
    from datetime import UTC, datetime

    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return int((interval.start - epoch) // (interval.end - interval.start))


def join_labels(
    predictions: pd.DataFrame,
    labels: pd.DataFrame,
    key_columns: Sequence[str],
    target: str,
    task: TaskType = "binary",
) -> pd.DataFrame:
    """The predictions with a ``target`` column from ``labels`` (NaN where no label arrived), one row each.

    :param task: the model's task: a binary label is made a number (what is not one counts as not arrived);
        a multiclass or regression label is kept as it was read, for the task to judge (a text label of a
        regression model is refused, not taken for a missing one).
    :raises DataError: naming the key columns one side lacks, or the keys that are not unique (a join on them
        would count a row twice).
    """
    import pandas as pd

    keys = list(key_columns)
    if not keys:
        raise DataError("no key columns to join predictions with their labels")
    for side, frame, needed in (("predictions", predictions, keys), ("labels", labels, [*keys, target])):
        missing = [column for column in needed if column not in frame.columns]
        if missing:
            raise DataError(f"the {side} lack column(s) {missing} (they have {list(frame.columns)})")
        duplicated = frame.duplicated(keys)
        if duplicated.any():
            example = frame.loc[duplicated, keys].iloc[0].to_dict()
            raise DataError(
                f"{int(duplicated.sum())} {side} rows repeat a key {keys} (e.g. {example}): the join would "
                "count them twice"
            )
    right = labels[[*keys, target]]
    # Keys read from two files may differ in width (int32 vs int64) or string flavour: align on the
    # predictions' types, so equal values match.
    for column in keys:
        if right[column].dtype != predictions[column].dtype:
            try:
                right = right.assign(**{column: right[column].astype(predictions[column].dtype)})
            except (TypeError, ValueError) as err:
                raise DataError(
                    f"key column {column!r} is {predictions[column].dtype} in the predictions and "
                    f"{labels[column].dtype} in the labels: {err}"
                ) from err
    joined = pd.merge(predictions.drop(columns=[target], errors="ignore"), right, on=keys, how="left")
    if task == "binary":
        joined[target] = pd.to_numeric(joined[target], errors="coerce").astype("float64")
    return joined


def scored_task(metadata: dict[str, Any], uri: str) -> ScoredTask:
    """The task of the model that scored a partition, and its classes (multiclass), from the partition's
    scoring metadata (:meth:`~mlops_ops.core.scoring.ScoredTask.from_metadata`; without a task: binary).

    :raises DataError: naming ``uri`` when the task is unknown or a multiclass partition lists no classes.
    """
    from mlops_ops.core import scoring

    try:
        return scoring.ScoredTask.from_metadata(metadata)
    except DataError as err:
        raise DataError(f"{uri}: {err}") from err


def check_prediction_columns(
    predictions: pd.DataFrame, task: TaskType, classes: Sequence[Any] | None, uri: str
) -> list[str]:
    """The task's prediction columns (:func:`~mlops_ops.core.tasks.output_columns`), all present in the
    partition.

    :raises DataError: naming ``uri`` and the columns it lacks.
    """
    columns = output_columns(task, classes)
    missing = [column for column in columns if column not in predictions.columns]
    if missing:
        raise DataError(
            f"{uri} lacks the {task} prediction column(s) {missing[:5]} (it has {list(predictions.columns)[:20]})"
        )
    return columns


def read_predictions(
    uri: str, object_store: ObjectStore | None = None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A published predictions partition and its scoring metadata (model name and version, interval).

    :raises DataError: when the partition does not exist (the interval was not scored, or had no rows).
    """
    import pyarrow.parquet as pq

    from mlops_ops.core import scoring, storage

    if not storage.exists(uri, object_store):
        raise DataError(f"no published predictions at {uri}: score the interval first")
    filesystem, path = storage.resolve(uri, object_store)
    frame = pq.read_table(path, filesystem=filesystem).to_pandas()
    return frame, scoring.read_file_metadata(uri, object_store)


def read_labels(
    source_uri: str,
    interval: Interval,
    *,
    key_columns: Sequence[str],
    time_column: str,
    target: str,
    prepare: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
    object_store: ObjectStore | None = None,
    task: TaskType = "binary",
) -> pd.DataFrame:
    """The key columns and label of the rows landed under ``source_uri`` in ``interval``.

    Read in record batches and filtered to the interval as batch scoring reads its input; the label is
    ``target`` as ``prepare`` (the model spec's, the one training used) derives it from each raw batch: a number
    for a binary model (NaN where it is not one), as read for the other tasks (see :func:`join_labels`).

    :raises DataError: naming the input or column when the rows cannot give a label.
    """
    import pandas as pd

    from mlops_ops.core import scoring, storage

    # Without a prepare function (which reads whole rows) only the named columns are read: the label among them.
    config = scoring.ScoringConfig(
        features=(), key_columns=key_columns, time_column=time_column, prepare=prepare, also_read=(target,)
    )
    filesystem, _ = storage.resolve(source_uri, object_store)
    try:
        units = scoring.find_input_units(source_uri, interval, time_column, object_store)
    except DataError as err:
        # Its messages speak of the scoring input; here the same files are read for their labels.
        raise DataError(f"labels: {err}".replace("the scoring input", "the labels source")) from err
    parts = []
    for batch, _ in scoring.iter_interval_batches(
        units, config, interval, filesystem, storage.is_remote(source_uri)
    ):
        if batch.num_rows == 0:
            continue
        raw = batch.to_pandas()
        missing = [column for column in key_columns if column not in raw.columns]
        if missing:
            raise DataError(f"the rows under {source_uri} lack key column(s) {missing}")
        prepared = prepare(raw) if prepare is not None else raw
        if target not in prepared.columns:
            raise DataError(
                f"the rows under {source_uri} give no label column {target!r}"
                + (" after the model spec's prepare function" if prepare is not None else "")
            )
        if len(prepared) != len(raw):
            raise DataError(
                f"the prepare function returned {len(prepared)} rows for {len(raw)}; labels need one per row"
            )
        part = raw[list(key_columns)].reset_index(drop=True)
        label = prepared[target]
        part[target] = (
            pd.to_numeric(label, errors="coerce").to_numpy(dtype="float64")
            if task == "binary"
            else label.to_numpy()
        )
        parts.append(part)
    if not parts:
        return pd.DataFrame({**{column: [] for column in key_columns}, target: []})
    return pd.concat(parts, ignore_index=True)
