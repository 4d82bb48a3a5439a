"""Batch scoring that streams Parquet to Parquet and publishes one interval's predictions atomically.

The input is read in record batches (never the whole interval in memory), filtered to the interval on its time
column, checked against the model's signature, scored, and written batch by batch to a staging file. Publishing
then replaces the interval's partition in one step: ``os.replace`` locally, a server-side copy of one object on
S3. A reader therefore sees the previous partition or the complete new one, never part of a file, and a re-run of
an interval replaces its rows instead of adding to them.

Layout under the output root::

    <root>/model=<name>/interval=<start>_<end>/predictions.parquet     the published partition
    <root>/_staging/<name>/interval=<...>/<run token>/shard-<i>-of-<n>.parquet

The model version is a column and a file property, not a path segment: a re-run under a newer champion must
replace the interval's predictions, not sit beside them. Readers such as ``pyarrow.dataset`` (hive
partitioning) skip ``_staging`` because of its leading underscore.

The prediction columns are the model's task's (:class:`ScoredTask`): binary ``prediction`` (0/1) and
``probability``; multiclass ``prediction`` (the class) and ``probability_<class>`` per class; regression
``prediction``. Each file's metadata records the task (and a multiclass model's classes).

Large intervals split into shards scored in parallel (Airflow mapped task instances); the unit of a shard is a
Parquet row group, so an interval held in a single row group is scored by one shard and the others stay empty.

The package's seams: :mod:`.interval` (the interval and its paths), :mod:`.inputs` (files, row groups, the shard
plan), :mod:`.batch` (scoring one shard to a staging file) and :mod:`.publish` (one partition, replaced at once).
"""

from __future__ import annotations

from mlops_ops.core.scoring.batch import (
    DEFAULT_CHUNK_ROWS,
    MAX_UNSEEN_VALUES,
    METADATA_KEY,
    PREFETCH_BATCHES,
    RECORD_COLUMNS,
    SUMMARY_KEY,
    ScoredTask,
    ScoringConfig,
    ShardResult,
    UnseenCategories,
    _StagedWriter,
    iter_interval_batches,
    move,
    output_schema,
    prefetch,
    score_shard,
    temporary_uri,
    training_categories,
)
from mlops_ops.core.scoring.inputs import (
    InputScan,
    InputUnit,
    find_input_units,
    list_parquet_files,
    plan_shards,
    scan_input,
)
from mlops_ops.core.scoring.interval import (
    PARTITION_FILE,
    STAGING_FOLDER,
    Interval,
    partition_uri,
    resolve_interval,
    shard_uri,
    staging_folder,
)
from mlops_ops.core.scoring.publish import (
    PublishedPartition,
    UnseenCategoriesRejected,
    publish,
    read_file_metadata,
    read_file_summary,
)

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "InputScan",
    "InputUnit",
    "Interval",
    "MAX_UNSEEN_VALUES",
    "METADATA_KEY",
    "PARTITION_FILE",
    "PREFETCH_BATCHES",
    "PublishedPartition",
    "RECORD_COLUMNS",
    "STAGING_FOLDER",
    "SUMMARY_KEY",
    "ScoredTask",
    "ScoringConfig",
    "ShardResult",
    "UnseenCategories",
    "UnseenCategoriesRejected",
    "_StagedWriter",
    "find_input_units",
    "iter_interval_batches",
    "list_parquet_files",
    "move",
    "output_schema",
    "partition_uri",
    "plan_shards",
    "prefetch",
    "publish",
    "read_file_metadata",
    "read_file_summary",
    "resolve_interval",
    "scan_input",
    "score_shard",
    "shard_uri",
    "staging_folder",
    "temporary_uri",
    "training_categories",
]
