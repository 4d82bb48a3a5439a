"""Batch scoring: pin the champion for a run, score an interval in streamed shards, publish it atomically."""

from __future__ import annotations

import dataclasses
import hashlib
import tempfile
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from mlops_ops.core.contracts import as_mapping
from mlops_ops.core.errors import MlopsError
from mlops_ops.operators.base import ObjectStorageBaseOperator, RegistryOperator
from mlops_ops.operators.inputs import dag_folder_of, load_model_spec

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context

    from mlops_ops.core.model_artifacts import PinnedModel
    from mlops_ops.core.scoring import Interval, PublishedPartition, ScoringConfig, ShardResult
    from mlops_ops.core.tasks import TaskType

DEFAULT_CHUNK_ROWS = 65_536


class BatchScoringFailed(MlopsError, AirflowFailException):
    """The input does not fit the model, or the model failed its integrity check: retrying will not help."""


def run_token(dag_id: str, run_id: str) -> str:
    """The staging name shared by every shard and try of one DAG run (and by no other run)."""
    return hashlib.sha256(f"{dag_id}\0{run_id}".encode()).hexdigest()[:20]


def default_output_root() -> str:
    """``<data root>/predictions``: where predictions go unless ``output_root`` is given."""
    from mlops_ops.core import settings, storage

    return storage.join(settings.data_root(), "predictions")


def announce_partition(operator: BaseOperator, context: Context, published: PublishedPartition) -> None:
    """Set the extras of ``operator``'s outlet events to the partition published (what monitoring reads):
    ``{"model_name", "model_version", "interval", "rows", "uri", "task", "classes"}``; an interval without rows
    sets none."""
    if published.status == "empty":
        return
    for asset in operator.outlets or ():
        extra: dict[str, Any] = {
            "model_name": published.model_name,
            "model_version": published.model_version,
            "interval": published.interval,
            "rows": published.rows,
            "uri": published.uri,
            "task": published.task,
            "classes": published.classes,
        }
        context["outlet_events"][asset].extra = extra


class PinModelVersionOperator(RegistryOperator):
    """Resolve a registry alias once and pin that version for the rest of the DAG run.

    Downstream tasks take the pinned version from XCom, so an alias that moves while the run is in progress
    (a promotion, a rollback) never mixes two models in one run, and retries score with the same version.

    :param model_name: the registered model. Templated.
    :param alias: the alias to resolve (``champion``). Templated.
    The alias must be what the signed alias log says it is, and the version must carry a valid signed
    registration (see :class:`~mlops_ops.hooks.trust.TrustHook`): a version set or moved outside the project
    fails this task (not retried) and nothing is scored.

    :param mlflow_conn_id: Airflow connection of the MLflow server (see :class:`~mlops_ops.hooks.mlflow.MlflowHook`).
    :param trust_conn_id: Airflow connection of the deployment's trust rules
        (:class:`~mlops_ops.hooks.trust.TrustHook`).
    :return: (XCom) ``{"name", "version", "alias", "run_id", "source", "artifact_sha256", "signature"}``.
    """

    template_fields: Sequence[str] = ("model_name", "alias")
    ui_color = "#fdf0d5"

    def __init__(
        self,
        *,
        model_name: str,
        alias: str = "champion",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.alias = alias

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_ops.core.errors import ModelIntegrityError

        try:
            with self.hook.unreachable_as(f"pinning {self.model_name}@{self.alias}"):
                pinned = self.trust.pin(self.hook, self.model_name, alias=self.alias)
        except LookupError as err:
            raise AirflowFailException(f"nothing to pin: {err}; promote a model first") from err
        except ModelIntegrityError as err:
            raise BatchScoringFailed(str(err)) from err
        self.log.info(
            "Pinned %s@%s = version %s (artifact %s)",
            pinned.name,
            self.alias,
            pinned.version,
            pinned.artifact_sha256 or "without a recorded sha256",
        )
        return pinned.to_dict()


class _ScoringOperator(ObjectStorageBaseOperator, RegistryOperator):
    """What scoring and publishing share: the model, the interval, where predictions go."""

    failure = BatchScoringFailed

    def __init__(
        self,
        *,
        model_name: str,
        interval_start: Any,
        interval_end: Any,
        model: dict[str, Any] | str | None = None,
        output_root: str | None = None,
        shard_count: int = 1,
        max_unseen_share: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.interval_start = interval_start
        self.interval_end = interval_end
        self.model = model
        self.output_root = output_root
        self.shard_count = shard_count
        self.max_unseen_share = max_unseen_share

    def _interval(self) -> Any:
        from mlops_ops.core.errors import DataError
        from mlops_ops.core.scoring import Interval

        try:
            return Interval.parse(self.interval_start, self.interval_end)
        except DataError as err:
            raise BatchScoringFailed(f"invalid scoring interval: {err}") from err

    def _pinned(self) -> PinnedModel:
        """The pinned version given in ``model``."""
        from mlops_ops.core.model_artifacts import PinnedModel

        try:
            pinned = PinnedModel.from_dict(as_mapping(self.model, "model"))
        except ValueError as err:
            raise AirflowFailException(f"{err} (did the pin task push a model version?)") from err
        if pinned.name != self.model_name:
            raise AirflowFailException(f"the pinned model is {pinned.name!r}, not {self.model_name!r}")
        return pinned

    def _staging(self, context: Context, interval: Any) -> tuple[str, str]:
        from mlops_ops.core import scoring

        root = self.output_root or default_output_root()
        ti = context["ti"]
        token = run_token(ti.dag_id, ti.run_id)
        return root, scoring.staging_folder(root, self.model_name, interval, token)

    def _check_shard_count(self) -> int:
        try:
            count = int(self.shard_count)
        except (TypeError, ValueError) as err:
            raise AirflowFailException(f"shard_count must be an integer, got {self.shard_count!r}") from err
        if count < 1:
            raise AirflowFailException(f"shard_count must be >= 1, got {count}")
        return count

    def _publish(
        self, context: Context, pinned: PinnedModel, interval: Any, shard_count: int
    ) -> dict[str, Any]:
        from mlops_ops.core import scoring
        from mlops_ops.core.errors import DataError
        from mlops_ops.hooks.object_storage import store_unreachable_as

        root, staging = self._staging(context, interval)
        destination = scoring.partition_uri(root, self.model_name, interval)
        object_store = self.object_store(root)
        try:
            with store_unreachable_as(object_store, f"publishing the predictions of {interval.describe()}"):
                published = scoring.publish(
                    staging=staging,
                    destination_uri=destination,
                    pinned=pinned,
                    interval=interval,
                    shard_count=shard_count,
                    object_store=object_store,
                    max_unseen_share=None if self.max_unseen_share is None else float(self.max_unseen_share),
                )
        except scoring.UnseenCategoriesRejected as err:
            # Evidence first: what was unseen stays readable although the task fails.
            context["ti"].xcom_push(
                key="return_value",
                value={
                    "status": "rejected",
                    "uri": None,
                    "interval": interval.to_dict(),
                    "model": pinned.to_dict(),
                    "unseen_categories": err.unseen,
                    "max_unseen_share": None
                    if self.max_unseen_share is None
                    else float(self.max_unseen_share),
                },
            )
            raise BatchScoringFailed(str(err)) from err
        except DataError as err:
            raise BatchScoringFailed(str(err)) from err
        unseen = published.unseen_categories
        if unseen.get("rows"):
            self.log.warning(
                "%d of %d rows (%.2f%%) hold categories %s v%s never saw in training (scored as missing): %s",
                unseen["rows"],
                published.rows,
                100 * unseen["share"],
                pinned.name,
                pinned.version,
                scoring.UnseenCategories(unseen["rows"], unseen["columns"]).describe(),
            )
        if published.status == "empty":
            self.log.warning(
                "Interval %s has no rows to score: nothing published (recorded as an empty result)",
                interval.describe(),
            )
        else:
            self.log.info(
                "Published %d predictions of %s v%s for %s at %s (%s)",
                published.rows,
                pinned.name,
                pinned.version,
                interval.describe(),
                published.uri,
                published.status,
            )
        announce_partition(self, context, published)
        return {**published.to_dict(), "model": pinned.to_dict()}


class BatchScoreOperator(_ScoringOperator):
    """Score the rows of one time interval with a pinned model version, streaming Parquet to Parquet.

    The input (a Parquet file, or a folder/prefix of them, local or ``s3://``) is read in record batches of
    ``chunk_rows`` rows filtered to ``[interval_start, interval_end)`` on ``time_column``, so memory is bounded
    by the chunk size, not the interval's size. Each batch is prepared with the model spec's ``prepare``
    function (the one used in training), checked against the model's MLflow signature (missing columns, wrong
    types, nulls the model was not trained with fail naming the column and interval), scored, and written.
    When the spec has a ``feature_store``, each batch is first joined point-in-time with its feature service
    (the offline sources read once per task, every row kept), as the training set was: training and scoring
    features cannot diverge. A spec without one needs no feature store.

    The prediction columns follow the model's task (see :class:`~mlops_ops.core.scoring.ScoredTask`): binary
    ``prediction`` (0/1 at ``threshold``) and ``probability``; multiclass ``prediction`` (the class) and one
    ``probability_<class>`` per class; regression ``prediction``. The task is the model spec's (a model of
    another task fails the task, not retried, naming both), else the loaded model's own; it is recorded in the
    partition's metadata, the result and the asset event (``task``, ``classes``).

    Before loading, the model artifact is downloaded and its sha256 compared with the digest recorded when it
    was trained; a mismatch fails the task and nothing is scored.

    A categorical value the model never saw in training (a new destination, a new carrier) is scored as the
    model's encoder treats it (as missing) and counted per column and value, in the shard's result and file;
    publishing totals the interval's count and refuses it above ``max_unseen_share``.

    With ``shard_count == 1`` the task publishes the interval itself; otherwise map it over
    ``shard_index`` (``BatchScoreOperator.partial(...).expand(shard_index=[0, 1, ...])``) and publish with
    :class:`PublishPredictionsOperator`. The published partition replaces the interval's previous one in one
    step (see :mod:`mlops_ops.core.scoring`), so re-running an interval never duplicates rows.

    :param model_name: the registered model. Templated.
    :param source: the input Parquet file or folder (``s3://`` through ``storage_conn_id``). Templated.
    :param interval_start: inclusive start, a datetime or ISO-8601 string (naive = UTC). Templated.
    :param interval_end: exclusive end. Templated.
    :param key_columns: input columns that identify a row, copied to the output.
    :param time_column: the UTC timestamp column placing rows in the interval.
    :param model: the pinned version from :class:`PinModelVersionOperator` (a dict, or its rendered JSON); when
        empty the ``alias`` is resolved by this task. Templated.
    :param alias: the alias resolved when ``model`` is empty.
    :param model_spec: the model spec (YAML path, relative to the project, or a dict) whose ``prepare`` function
        turns raw input rows into features (after its ``feature_store`` join, if any); ``None`` when the input
        already holds the features. Templated.
    :param feast_conn_id: Feast connection of the spec's feature service (only used when it has one).
    :param output_root: where partitions go (default ``<data root>/predictions``). Templated.
    :param chunk_rows: rows per batch.
    :param threshold: a binary model's probability at or above which ``prediction`` is 1 (other tasks ignore it).
    :param shard_index: which shard this task scores (map over it). Templated.
    :param shard_count: how many shards the interval is split into (by Parquet row group).
    :param max_unseen_share: with ``shard_count == 1``, the largest share of the interval's rows that may hold
        categories the model never saw in training, else nothing is published; ``None``: report only.
    :param mlflow_conn_id: Airflow connection of the MLflow server.
    :param storage_conn_id: the connection of ``s3://``, ``gs://`` or ``abfs://`` data (see
        :class:`~mlops_ops.operators.base.ObjectStorageBaseOperator`).
    :param trust_conn_id: Airflow connection of the deployment's trust rules: the model is loaded only through
        :func:`~mlops_ops.core.model_artifacts.load_trusted` (signature, digest, allow-list scan).
    :return: (XCom) with ``shard_count == 1`` the published partition ``{"uri", "rows", "model_name",
        "model_version", "interval", "shards", "status" ("published" | "empty" | "already published"),
        "unseen_categories" ({"rows", "share", "columns": {column: {value: rows}}}), "task", "classes",
        "model", "scoring"}``; otherwise the shard ``{"uri", "shard_index", "shard_count", "rows", "rows_read",
        "chunks", "seconds", "rows_per_second", "positive_rate" (binary), "unseen_categories", "task",
        "classes", "model"}``.
    """

    template_fields: Sequence[str] = (
        "model_name",
        "source",
        "interval_start",
        "interval_end",
        "model",
        "model_spec",
        "output_root",
        "shard_index",
    )
    ui_color = "#dcecf9"

    def __init__(
        self,
        *,
        source: str,
        key_columns: Sequence[str],
        time_column: str,
        model_spec: str | dict[str, Any] | None = None,
        alias: str = "champion",
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        threshold: float = 0.5,
        shard_index: int = 0,
        feast_conn_id: str = "feast_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.feast_conn_id = feast_conn_id
        self.source = source
        self.key_columns = key_columns
        self.time_column = time_column
        self.model_spec = model_spec
        self.alias = alias
        self.chunk_rows = chunk_rows
        self.threshold = threshold
        self.shard_index = shard_index

    def execute(self, context: Context) -> dict[str, Any]:
        interval = self._interval()
        shard_index, shard_count = self._shard()
        pinned = self._pinned()
        config = self._config(
            context
        )  # the spec's prepare and feature join fail before the model is downloaded
        model, config = self._load_model(pinned, config)
        self.log.info(
            "Scoring %s with %s v%s (signature, sha256 and scan verified), shard %d of %d, %d-row chunks",
            interval.describe(),
            pinned.name,
            pinned.version,
            shard_index + 1,
            shard_count,
            self.chunk_rows,
        )
        result = self._score_shard(context, model, pinned, config, interval, (shard_index, shard_count))
        self._log_shard(result, pinned)
        if shard_count > 1:
            return {**result.to_dict(), "model": pinned.to_dict()}
        return {**self._publish(context, pinned, interval, 1), "scoring": result.to_dict()}

    def _shard(self) -> tuple[int, int]:
        """This task's shard and the shard count, the index checked against the count."""
        shard_count = self._check_shard_count()
        shard_index = int(self.shard_index)
        if not 0 <= shard_index < shard_count:
            raise AirflowFailException(f"shard_index {shard_index} is outside 0..{shard_count - 1}")
        return shard_index, shard_count

    def _score_shard(
        self,
        context: Context,
        model: Any,
        pinned: PinnedModel,
        config: ScoringConfig,
        interval: Interval,
        shard: tuple[int, int],
    ) -> ShardResult:
        """Score this task's shard of ``interval`` into the run's staging folder; data refused fails the task."""
        from mlops_ops.core import scoring
        from mlops_ops.core.errors import DataError
        from mlops_ops.core.tasks import TaskMismatchError
        from mlops_ops.hooks.object_storage import store_unreachable_as

        shard_index, shard_count = shard
        _, staging = self._staging(context, interval)
        ti = context["ti"]
        object_store = self.object_store([self.source, staging])
        action = f"scoring shard {shard_index + 1} of {shard_count} of {interval.describe()}"
        try:
            with store_unreachable_as(object_store, action):
                return scoring.score_shard(
                    model=model,
                    pinned=pinned,
                    config=config,
                    interval=interval,
                    source_uri=self.source,
                    destination_uri=scoring.shard_uri(staging, shard_index, shard_count),
                    shard_index=shard_index,
                    shard_count=shard_count,
                    metadata={"dag_id": ti.dag_id, "run_id": ti.run_id, "try_number": ti.try_number},
                    object_store=object_store,
                    progress=self._log_progress,
                )
        except (DataError, TaskMismatchError) as err:
            raise BatchScoringFailed(str(err)) from err

    def _config(self, context: Context) -> ScoringConfig:
        """How rows are read and scored, from the arguments and the model spec (its task, its ``prepare`` and
        feature-store join); the model's inputs are added by :meth:`_load_model`."""
        from mlops_ops.core import scoring
        from mlops_ops.core.modelspec import load_callable
        from mlops_ops.hooks.feast import FeastHook

        prepare = join = None
        task: TaskType | None = None
        if self.model_spec:
            spec = load_model_spec(self.model_spec, dag_folder_of(context))
            task = spec.task
            prepare = load_callable(spec.prepare) if spec.prepare else None
            if spec.feature_store:
                join = FeastHook(self.feast_conn_id).feature_store_join(
                    spec.feature_store, open_error=BatchScoringFailed, join_error=BatchScoringFailed
                )
        return scoring.ScoringConfig(
            features=[],
            key_columns=list(self.key_columns),
            time_column=self.time_column,
            prepare=prepare,
            join=join,
            threshold=float(self.threshold),
            chunk_rows=int(self.chunk_rows),
            task=task,
        )

    def _load_model(self, pinned: PinnedModel, config: ScoringConfig) -> tuple[Any, ScoringConfig]:
        """The pinned model, loaded only through the trust rules, and ``config`` with its input signature and
        the categories it saw in training."""
        from mlops_ops.core import scoring
        from mlops_ops.core.errors import ModelIntegrityError
        from mlops_ops.core.model_artifacts import model_inputs

        with tempfile.TemporaryDirectory(prefix="mlops-model-") as folder:
            try:
                with self.hook.unreachable_as(f"downloading {pinned.name} v{pinned.version}"):
                    trusted, local = self.trust.load(self.hook, pinned, folder)
            except ModelIntegrityError as err:
                raise BatchScoringFailed(str(err)) from err
            features = model_inputs(local)
        if not features:
            raise BatchScoringFailed(
                f"{pinned.name} v{pinned.version} has no input signature: batch scoring cannot check its inputs"
            )
        categories = scoring.training_categories(trusted.model)
        return trusted.model, dataclasses.replace(config, features=features, categories=categories)

    def _log_shard(self, result: ShardResult, pinned: PinnedModel) -> None:
        self.log.info(
            "Shard %d: %d rows scored of %d read in %.2f s (%.0f rows/s)",
            result.shard_index,
            result.rows,
            result.rows_read,
            result.seconds,
            result.rows_per_second,
        )
        unseen = result.unseen_categories
        if unseen["rows"]:
            from mlops_ops.core.scoring import UnseenCategories

            self.log.warning(
                "Shard %d: %d row(s) hold categories %s v%s never saw in training (scored as missing): %s",
                result.shard_index,
                unseen["rows"],
                pinned.name,
                pinned.version,
                UnseenCategories(unseen["rows"], unseen["columns"]).describe(),
            )

    def _pinned(self) -> PinnedModel:
        """The version in ``model``, or ``alias`` resolved now when no pin task ran."""
        if self.model not in (None, ""):
            return super()._pinned()
        from mlops_ops.core.errors import ModelIntegrityError

        try:
            return self.trust.pin(self.hook, self.model_name, alias=self.alias)
        except LookupError as err:
            raise AirflowFailException(f"nothing to score with: {err}") from err
        except ModelIntegrityError as err:
            raise BatchScoringFailed(str(err)) from err

    def _log_progress(self, chunk: int, rows: int, rows_per_second: float) -> None:
        self.log.info("chunk %d: %d rows scored so far (%.0f rows/s)", chunk, rows, rows_per_second)


class PublishPredictionsOperator(_ScoringOperator):
    """Merge the shards that mapped :class:`BatchScoreOperator` tasks staged and publish the interval at once.

    When the task has outlets and rows were published, each asset event carries ``{"model_name",
    "model_version", "interval", "rows", "uri", "task", "classes"}`` in its extras (what monitoring reads;
    ``task`` and ``classes`` say which prediction columns the partition holds, ``classes`` is ``None`` unless
    the task is multiclass).

    Publishing checks that every shard is there and was scored by the pinned version for this interval in this
    DAG run, merges them into one Parquet file and replaces the interval's partition in one step. An interval
    without rows publishes nothing and says so (``status: "empty"``). Retrying after a successful publish
    returns the published partition.

    The shards' counts of categories the model never saw in training are totalled, reported (XCom, log, the
    partition's footer) and, above ``max_unseen_share`` of the interval's rows, refused: nothing is published,
    the count is pushed (``status: "rejected"``) and the task fails naming the columns and values.

    :param model_name: the registered model. Templated.
    :param interval_start: inclusive start. Templated.
    :param interval_end: exclusive end. Templated.
    :param model: the pinned version the shards were scored with (from :class:`PinModelVersionOperator`).
        Templated.
    :param shard_count: how many shards were scored.
    :param output_root: where partitions go (default ``<data root>/predictions``). Templated.
    :param max_unseen_share: the largest share of the interval's rows that may hold categories the model never
        saw in training (0.05 = 5%); ``None``: count and report only.
    :param mlflow_conn_id: Airflow connection of the MLflow server (only used when ``model`` is empty).
    :param storage_conn_id: the connection of ``s3://``, ``gs://`` or ``abfs://`` data (see
        :class:`~mlops_ops.operators.base.ObjectStorageBaseOperator`).
    :param trust_conn_id: Airflow connection of the deployment's trust rules (only used when ``model`` is empty).
    :return: (XCom) ``{"uri", "rows", "model_name", "model_version", "interval", "shards", "status",
        "unseen_categories" ({"rows", "share", "columns": {column: {value: rows}}}), "task", "classes",
        "model"}``; when refused
        for unseen categories, ``{"status": "rejected", "uri": None, "interval", "model", "unseen_categories",
        "max_unseen_share"}`` is pushed before the task fails.
    """

    template_fields: Sequence[str] = ("model_name", "interval_start", "interval_end", "model", "output_root")
    ui_color = "#dcecf9"

    def execute(self, context: Context) -> dict[str, Any]:
        interval = self._interval()
        shard_count = self._check_shard_count()
        if self.model in (None, ""):
            raise AirflowFailException("publishing needs the pinned model the shards were scored with")
        return self._publish(context, self._pinned(), interval, shard_count)
