"""Score each day (or hour) of flights with the flight_delay champion: pinned, verified, streamed, atomic."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, task

from mlops_ops.assets import model_alias_asset, predictions_asset
from mlops_ops.core import settings, storage
from mlops_ops.notifiers.webhook import WebhookNotifier
from mlops_ops.operators.scoring import (
    BatchScoreOperator,
    PinModelVersionOperator,
    PublishPredictionsOperator,
)
from mlops_ops.operators.validation import DataValidationOperator
from mlops_ops.retry_policy import retry_default_args

MODEL_NAME = "flight_delay"
CHAMPION = model_alias_asset(MODEL_NAME, "champion")
PREDICTIONS = predictions_asset(MODEL_NAME)
#: What is scored: the landed flights (a folder or an s3:// prefix), rows placed in the interval by time_hour.
SOURCE = storage.join(settings.data_root(), "flights")
#: Where the partitions go: <root>/model=flight_delay/interval=<start>_<end>/predictions.parquet.
OUTPUT_ROOT = storage.join(settings.data_root(), "predictions")
#: "daily" (default) or "hourly"; read when the DAG file is parsed, so set it in the scheduler's environment.
CADENCE = os.environ.get("MLOPS_BATCH_SCORE_CADENCE", "daily")
CADENCES = {"daily": ("0 0 * * *", timedelta(days=1)), "hourly": ("0 * * * *", timedelta(hours=1))}
if CADENCE not in CADENCES:
    raise ValueError(f"MLOPS_BATCH_SCORE_CADENCE must be one of {sorted(CADENCES)}, got {CADENCE!r}")
CRON, PERIOD = CADENCES[CADENCE]
#: Mapped scoring tasks per interval; each takes a contiguous range of Parquet row groups.
SHARDS = int(os.environ.get("MLOPS_BATCH_SCORE_SHARDS", "2"))
KEY_COLUMNS = ["year", "month", "day", "carrier", "flight", "origin"]
#: What a flight reports only once flown (its label among them): the scoring input need not hold it yet.
NOT_KNOWN_BEFORE_DEPARTURE = ["dep_time", "dep_delay", "arr_time", "arr_delay", "air_time"]
#: An interval is refused when more of its rows than this hold a category the champion never saw in training.
MAX_UNSEEN_SHARE = 0.05
PLAN = "ti.xcom_pull(task_ids='plan_interval')"
PINNED = "{{ ti.xcom_pull(task_ids='pin_champion') }}"
#: The trigger form's check of an interval bound: empty, a date, or a date and time with an optional zone.
ISO_DATE_OR_TIME = r"^(\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?)?$"

DOC = f"""
### Batch-score `{MODEL_NAME}`

`plan_interval` -> `validate_input` -> `build_feature_sources` -> `pin_champion` -> `score` (x {SHARDS} shards)
-> `publish`

Runs {CADENCE} (`MLOPS_BATCH_SCORE_CADENCE=daily|hourly`), and whenever `{CHAMPION.name}` moves (re-scoring
the last complete {CADENCE} interval with the new champion).

1. **plan_interval**: the interval to score: the `interval_start`/`interval_end` params of a manual run, else
   the run's data interval, else the last complete {CADENCE} period; lists the landed files under
   `{SOURCE}` whose rows may fall in it.
2. **validate_input** (`DataValidationOperator`): those files against
   `include/flights/expectations/flights_raw.json` (less what is known only after the flight: labels may
   arrive later), each file reported; a flight key already in another file (a row landed twice) fails too;
   an interval without input is recorded as empty.
3. **build_feature_sources**: the feature repository's offline sources from the landed flights (the
   `features` DAG does this hourly; here it makes the interval's rolling delays current before scoring).
4. **pin_champion** (`PinModelVersionOperator`): resolves `champion` once; every shard and retry of this run
   scores with that version, even if the alias moves meanwhile.
5. **score** (`BatchScoreOperator`, mapped over {SHARDS} shards, `MLOPS_BATCH_SCORE_SHARDS`): verifies the model
   artifact's sha256, streams the interval's flights in 64k-row chunks, joins each point-in-time with the
   model spec's feature service (as training did; every row kept), prepares the training features, checks
   them against the model signature (a mismatch fails naming the columns and the version), writes each shard
   to staging (logs rows and rows/s per chunk), and counts categories the model never saw in training
   (scored as missing).
6. **publish** (`PublishPredictionsOperator`): merges the shards and replaces
   `{OUTPUT_ROOT}/model={MODEL_NAME}/interval=<start>_<end>/predictions.parquet` in one step; updates
   `{PREDICTIONS.name}` with the interval, rows and model version. Reports the unseen categories, and refuses
   the interval (nothing published) when more than {MAX_UNSEEN_SHARE:.0%} of its rows hold one.

Re-running or backfilling an interval replaces its partition: no duplicates, never a partial file.
Backfill the 2013 flights: `airflow backfill create --dag-id batch_score --from-date 2013-07-01
--to-date 2013-07-07`, or trigger with `interval_start`/`interval_end`.
"""


@dag(
    dag_id="batch_score",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(CRON, timezone="UTC", interval=PERIOD), assets=CHAMPION
    ),
    # The reference data is the 2013 flights: backfills start there; catchup stays off for scheduled runs.
    start_date=datetime(2013, 1, 1),
    catchup=False,
    max_active_runs=4,
    tags=["mlops", "inference", MODEL_NAME],
    doc_md=DOC,
    render_template_as_native_obj=True,
    default_args=retry_default_args(timedelta(seconds=30)),
    on_failure_callback=WebhookNotifier(f"{MODEL_NAME}: batch scoring run {{{{ run_id }}}} FAILED"),
    params={
        "interval_start": Param(
            None,
            # Nullable: the trigger form marks a plain "string" required and refuses it empty.
            type=["null", "string"],
            pattern=ISO_DATE_OR_TIME,
            title="Interval start",
            description="ISO-8601, e.g. 2013-07-01 or 2013-07-01T06:00:00+00:00 (no zone = UTC); "
            "empty: the run's data interval",
        ),
        "interval_end": Param(
            None,
            type=["null", "string"],
            pattern=ISO_DATE_OR_TIME,
            title="Interval end",
            description="Exclusive, ISO-8601 like the start; give both or neither",
        ),
    },
)
def batch_score():
    @task(task_id="plan_interval")
    def plan_interval(params=None, dag_run=None, data_interval_start=None, data_interval_end=None):
        """The interval to score and the landed files that may hold its rows."""
        from airflow.sdk.exceptions import AirflowFailException

        from mlops_ops.core import scoring
        from mlops_ops.core.errors import DataError
        from mlops_ops.hooks.object_storage import object_store_for

        try:
            interval = scoring.resolve_interval(
                requested_start=params.get("interval_start"),
                requested_end=params.get("interval_end"),
                data_interval_start=data_interval_start,
                data_interval_end=data_interval_end,
                run_after=dag_run.run_after,
                period=PERIOD,
            )
            scan = scoring.scan_input(SOURCE, interval, "time_hour", object_store_for(SOURCE, "aws_default"))
        except DataError as err:
            raise AirflowFailException(str(err)) from err
        # A file that cannot be placed in time may hold the interval's rows: validate_input judges it.
        for problem in scan.unplaceable.values():
            print(f"Cannot place in time, left to validate_input: {problem}")
        scheme = storage.scheme_of(SOURCE)
        files = [f"{scheme}://{path}" if scheme else path for path in scan.files]
        print(
            f"Interval {interval.describe()}: {len(files)} file(s), "
            f"at most {sum(u.rows for u in scan.units)} rows"
        )
        # The landing root lets validate_input refuse a file swapped for a link leading out of it since the scan.
        details = {} if scheme else {"details": {"root": SOURCE}}
        return {
            **interval.to_dict(),
            "key": interval.key,
            "fingerprint": interval.key,
            "files": files,
            **details,
        }

    plan = plan_interval()
    validate = DataValidationOperator(
        task_id="validate_input",
        data_version="{{ " + PLAN + " }}",
        suite="include/flights/expectations/flights_raw.json",
        allow_empty=True,
        exclude_columns=NOT_KNOWN_BEFORE_DEPARTURE,
        unique_key=KEY_COLUMNS,
    )

    @task(task_id="build_feature_sources")
    def build_feature_sources() -> dict:
        from include.flights.feature_sources import build_deployment_sources

        return build_deployment_sources()

    pin = PinModelVersionOperator(
        task_id="pin_champion",
        model_name=MODEL_NAME,
        alias="champion",
        # The message carries the refusal: an alias moved outside the project, an unsigned or altered version.
        on_failure_callback=WebhookNotifier(
            f"{MODEL_NAME}: the champion could not be pinned; nothing was scored"
        ),
    )
    interval = {"interval_start": "{{ " + PLAN + "['start'] }}", "interval_end": "{{ " + PLAN + "['end'] }}"}
    score = BatchScoreOperator.partial(
        task_id="score",
        model_name=MODEL_NAME,
        model=PINNED,
        source=SOURCE,
        output_root=OUTPUT_ROOT,
        model_spec="include/flights/model_spec.yaml",
        key_columns=KEY_COLUMNS,
        time_column="time_hour",
        shard_count=SHARDS,
        max_unseen_share=MAX_UNSEEN_SHARE,
        **interval,
    ).expand(shard_index=list(range(SHARDS)))
    publish = PublishPredictionsOperator(
        task_id="publish",
        model_name=MODEL_NAME,
        model=PINNED,
        output_root=OUTPUT_ROOT,
        shard_count=SHARDS,
        max_unseen_share=MAX_UNSEEN_SHARE,
        outlets=[PREDICTIONS],
        **interval,
    )
    plan >> validate >> build_feature_sources() >> pin >> score >> publish


batch_score()
