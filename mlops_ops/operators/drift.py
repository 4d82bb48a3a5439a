"""Drift check of a scored interval against the data the model was trained on."""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from airflow.sdk.exceptions import AirflowFailException

from mlops_ops.core.contracts import as_mapping
from mlops_ops.core.errors import MlopsError
from mlops_ops.links.mlflow import REPORT_URL_KEY, XComUrlLink
from mlops_ops.operators.base import ObjectStorageBaseOperator, RegistryOperator
from mlops_ops.operators.inputs import dag_folder_of, load_model_spec

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlops_ops.core.contracts import DriftOutcome
    from mlops_ops.core.drift import DriftResult
    from mlops_ops.core.drift_check import CheckedInterval
    from mlops_ops.core.model_artifacts import PinnedModel
    from mlops_ops.core.modelspec import ModelSpec
    from mlops_ops.core.scoring import Interval

DriftAction = Literal["fail", "warn", "request_retrain"]
DRIFT_ACTIONS = ("fail", "warn", "request_retrain")
#: Tags on the checked model version: the latest verdict, read by the Models view and by people in MLflow.
TAG_PREFIX = "mlops.drift."


class DriftCheckFailed(MlopsError, AirflowFailException):
    """The windows cannot be compared (missing lineage, bad data): retrying will not help."""


class DriftDetected(MlopsError, AirflowFailException):
    """Dataset drift with ``on_drift="fail"``; the evidence was saved before raising."""


def default_report_root() -> str:
    """``<data root>/monitoring``: where drift reports go unless ``report_root`` is given."""
    from mlops_ops.core import settings, storage

    return storage.join(settings.data_root(), "monitoring")


class DriftCheckOperator(ObjectStorageBaseOperator, RegistryOperator):
    """Compare one interval of data, and the model's predictions on it, with the data the model was trained on.

    The reference window is the training data of the model version (the files recorded by its training run,
    ``mlops.data_files``); the current window is the interval's rows of ``source``. Both go through the model spec's
    ``prepare`` (the features the model sees) and the model (its prediction, tested as the prediction's drift: the
    probability of class 1 of a binary model and the value a regression model predicts, as numerical columns; the
    class a multiclass model predicts, as a categorical column), in chunks. Each declared numerical and categorical
    feature is tested the way Evidently's ``DataDriftPreset`` tests it by default (see :mod:`mlops_ops.core.drift`:
    same methods, thresholds and verdicts, computed from value counts in bounded memory); new categories are listed
    by name. Evidently's own HTML report, rendered on a uniform sample of each window, is saved beside the JSON
    result under ``report_root`` and logged to MLflow; the model version is tagged with the latest verdict
    (``mlops.drift.*``), and the scores are logged as metrics on the version's monitoring run (experiment
    ``<model>-monitoring``), one point per interval.

    Drift is detected when the dataset drifts (the share of drifting feature columns reaches ``drift_share``);
    the prediction's drift is reported with it, not counted. With ``on_drift``: ``"warn"`` logs the drift and
    succeeds; ``"fail"`` fails the task (after saving the evidence); ``"request_retrain"`` succeeds and marks the
    result ``retrain_requested`` with the reason, for
    :class:`~mlops_ops.operators.monitoring.RequestRetrainOperator`. Data that cannot be compared (a column
    missing or all-null in a window, an empty window, a type mismatch) fails the task naming the column: there
    is no "no drift" verdict on data that was not compared.

    :param model_name: the registered model. Templated.
    :param source: the landed data the interval's rows come from (Parquet file or folder, local or
        ``s3://``). Templated.
    :param interval_start: inclusive start (datetime or ISO-8601; naive = UTC). Templated.
    :param interval_end: exclusive end. Templated.
    :param time_column: the UTC timestamp column that places rows in the interval.
    :param model_spec: the model spec (YAML path in the project, or a dict): ``prepare`` and the declared
        column types. Templated.
    :param model: the pinned version (:class:`~mlops_ops.operators.scoring.PinModelVersionOperator`'s XCom, a dict
        or its JSON); when empty, ``alias`` is resolved here. Templated.
    :param alias: the alias resolved when ``model`` is empty.
    :param predictions_root: where batch scoring publishes (``<root>/model=<name>/interval=.../``); when the
        scored interval's partition exists, the version that scored it is the one checked. Templated.
    :param scored_interval: the scored interval (``{"start", "end"}``) whose partition names the version, when
        the drift window is not that interval (a week up to a scored day); default the drift window. Templated.
    :param drift_share: the share of drifting columns that makes the dataset drift (Evidently's default 0.5).
        Templated.
    :param thresholds: per-column thresholds replacing the method's default.
    :param prediction_drift: also test the model's prediction (needs the model artifact; sha256 verified); the
        model must do the spec's task.
    :param on_drift: ``"warn"``, ``"fail"`` or ``"request_retrain"``.
    :param report_root: where reports go (default ``<data root>/monitoring``). Templated.
    :param report_sample_rows: rows of each window in Evidently's report; 0 for no report.
    :param chunk_rows: rows read per chunk.
    :param pushgateway_conn_id: push the drift share and per-column scores to this Prometheus pushgateway.
    :param mlflow_conn_id: Airflow connection of the MLflow server.
    :param trust_conn_id: Airflow connection of the deployment's trust rules
        (:class:`~mlops_ops.hooks.trust.TrustHook`): the version must be signed, its alias recorded in the signed
        alias log, and it is loaded only through :func:`~mlops_ops.core.model_artifacts.load_trusted`.
    :param storage_conn_id: the connection of ``s3://``, ``gs://`` or ``abfs://`` data (see
        :class:`~mlops_ops.operators.base.ObjectStorageBaseOperator`).
    :param feast_conn_id: Feast connection of the spec's feature service, when the spec has a ``feature_store``:
        the current window is joined with it point-in-time, as batch scoring does; the reference window is the
        training set the version recorded (``mlops.feature_set``), already joined.
    Extra link "Drift report": the version's monitoring run in the MLflow UI (where the report is an artifact),
    when an MLflow UI URL is known (see :meth:`MlflowHook.ui_url`).

    :return: (XCom) :meth:`DriftResult.to_dict` plus ``model_name``, ``model_version``, ``interval``,
        ``report_uri``, ``result_uri``, ``report_sample_rows``, ``on_drift``, ``retrain_requested``, ``reason``,
        ``prediction_distribution`` (:meth:`WindowSummary.distribution` of the interval's predictions, also logged
        per interval as ``prediction.*`` metrics; ``None`` without ``prediction_drift``) and ``airflow_run``
        (``dag_id/run_id`` of the check, which the Models view links each interval to).
    """

    template_fields: Sequence[str] = (
        "model_name",
        "source",
        "interval_start",
        "interval_end",
        "model_spec",
        "model",
        "predictions_root",
        "scored_interval",
        "drift_share",
        "report_root",
    )
    ui_color = "#f9e0dc"
    operator_extra_links = (XComUrlLink("Drift report", REPORT_URL_KEY),)

    def __init__(
        self,
        *,
        model_name: str,
        source: str,
        interval_start: Any,
        interval_end: Any,
        model_spec: str | dict[str, Any],
        time_column: str,
        model: dict[str, Any] | str | None = None,
        alias: str = "champion",
        predictions_root: str | None = None,
        scored_interval: dict[str, Any] | str | None = None,
        drift_share: float = 0.5,
        thresholds: dict[str, float] | None = None,
        prediction_drift: bool = True,
        on_drift: DriftAction = "warn",
        report_root: str | None = None,
        report_sample_rows: int = 20_000,
        chunk_rows: int = 65_536,
        pushgateway_conn_id: str | None = None,
        feast_conn_id: str = "feast_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if on_drift not in DRIFT_ACTIONS:
            raise ValueError(f"on_drift must be one of {DRIFT_ACTIONS}, got {on_drift!r}")
        self.model_name = model_name
        self.source = source
        self.interval_start = interval_start
        self.interval_end = interval_end
        self.model_spec = model_spec
        self.time_column = time_column
        self.model = model
        self.alias = alias
        self.predictions_root = predictions_root
        self.scored_interval = scored_interval
        self.drift_share = drift_share
        self.thresholds = thresholds
        self.prediction_drift = prediction_drift
        self.on_drift = on_drift
        self.report_root = report_root
        self.report_sample_rows = report_sample_rows
        self.chunk_rows = chunk_rows
        self.pushgateway_conn_id = pushgateway_conn_id
        self.feast_conn_id = feast_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_ops.core import drift_check
        from mlops_ops.core.errors import DataError
        from mlops_ops.core.scoring import Interval

        try:
            interval = Interval.parse(self.interval_start, self.interval_end)
            spec = load_model_spec(self.model_spec, dag_folder_of(context))
        except (DataError, FileNotFoundError) as err:
            raise DriftCheckFailed(f"invalid drift check: {err}") from err
        pinned = self._pinned(interval)
        reference_files, reference_joined = self._training_files(pinned)
        self.log.info(
            "Drift of %s v%s on %s against its %d training file(s)",
            pinned.name,
            pinned.version,
            interval.describe(),
            len(reference_files),
        )
        checked = self._check(spec, interval, pinned, reference_files, reference_joined)
        result = checked.result
        self.log.info("%s", result.summary())
        for column in result.columns + ((result.prediction,) if result.prediction else ()):
            self.log.info("  %s", column.describe())
        outcome = drift_check.drift_outcome(
            checked,
            model_name=pinned.name,
            version=pinned.version,
            interval=interval,
            on_drift=self.on_drift,
            airflow_run=f"{context['ti'].dag_id}/{context['run_id']}",
        )
        run_id = self.hook.monitoring_run(pinned.name, pinned.version)
        outcome = self._save(checked, outcome, spec, interval, run_id)
        self._record(pinned, interval, outcome, result, run_id)
        if self.pushgateway_conn_id:
            self._push(self.pushgateway_conn_id, pinned, result)
        return self._verdict(context, outcome, run_id)

    def _check(
        self,
        spec: ModelSpec,
        interval: Interval,
        pinned: PinnedModel,
        reference_files: list[str],
        reference_joined: bool,
    ) -> CheckedInterval:
        """Both windows read, prepared, scored (with ``prediction_drift``) and compared; data that cannot be
        compared fails the task, not retried, naming the model and the interval."""
        from mlops_ops.core import drift_check
        from mlops_ops.core.errors import DataError
        from mlops_ops.core.tasks import TaskMismatchError

        with tempfile.TemporaryDirectory(prefix="mlops-model-") as folder:
            model, model_columns = self._load_model(pinned, folder) if self.prediction_drift else (None, None)
            try:
                return drift_check.check_interval(
                    spec,
                    interval,
                    source=self.source,
                    time_column=self.time_column,
                    reference_files=reference_files,
                    reference_joined=reference_joined,
                    model=model,
                    model_columns=model_columns,
                    join=self._feature_store_join(spec),
                    drift_share=float(self.drift_share),
                    thresholds=self.thresholds,
                    sample_rows=self.report_sample_rows,
                    chunk_rows=self.chunk_rows,
                    source_store=self.object_store(self.source),
                    reference_store=self.object_store(reference_files),
                )
            except (DataError, TaskMismatchError) as err:
                raise DriftCheckFailed(
                    f"cannot check drift of {pinned.name} v{pinned.version} on {interval.describe()}: {err}"
                ) from err

    def _feature_store_join(self, spec: Any) -> Any:
        """The spec's feature service joined point-in-time onto raw rows, as batch scoring does; ``None``
        without a feature store."""
        from mlops_ops.core.errors import DataError
        from mlops_ops.hooks.feast import FeastHook

        if not spec.feature_store:
            return None
        return FeastHook(self.feast_conn_id).feature_store_join(
            spec.feature_store, open_error=DriftCheckFailed, join_error=DataError
        )

    def _verdict(self, context: Context, outcome: DriftOutcome, run_id: str) -> dict[str, Any]:
        """Push the report links; fail with ``on_drift="fail"`` once the evidence is saved, else return it."""
        result = outcome.to_xcom()
        context["ti"].xcom_push(key="report_uri", value=outcome.report_uri)
        # The task's "Drift report" link: the monitoring run in the MLflow UI, where the report is an artifact.
        report_url = self.hook.run_url(run_id)
        if report_url:
            context["ti"].xcom_push(key=REPORT_URL_KEY, value=report_url)
        if outcome.drift_detected:
            if self.on_drift == "fail":
                context["ti"].xcom_push(key="return_value", value=result)
                raise DriftDetected(f"{outcome.reason}; report: {outcome.report_uri}")
            self.log.warning("%s (report: %s)", outcome.reason, outcome.report_uri)
        return result

    def _pinned(self, interval: Interval) -> PinnedModel:
        """The version to check: the one that scored the interval's published partition, else ``model``/``alias``."""
        from mlops_ops.core import scoring, storage
        from mlops_ops.core.errors import ModelIntegrityError
        from mlops_ops.core.model_artifacts import PinnedModel, verify_registration

        try:
            if self.predictions_root:
                if self.scored_interval:
                    scored = as_mapping(self.scored_interval, "scored_interval")
                    interval = scoring.Interval.parse(scored.get("start"), scored.get("end"))
                partition = scoring.partition_uri(self.predictions_root, self.model_name, interval)
                options = self.object_store(partition)
                if storage.exists(partition, options):
                    version = scoring.read_file_metadata(partition, options).get("model_version")
                    if version:
                        self.log.info("Interval %s was scored by v%s (%s)", interval.key, version, partition)
                        return self.trust.pin(self.hook, self.model_name, version=str(version))
            if self.model:
                pinned = PinnedModel.from_dict(as_mapping(self.model, "model"))
                if pinned.name != self.model_name:
                    raise ValueError(f"the pinned model is {pinned.name!r}, not {self.model_name!r}")
                verify_registration(pinned, self.trust.verification_keys)
                return pinned
            return self.trust.pin(self.hook, self.model_name, alias=self.alias)
        except (LookupError, ValueError) as err:  # DataError is a ValueError
            raise DriftCheckFailed(f"no model version to check: {err}") from err
        except ModelIntegrityError as err:
            raise DriftCheckFailed(str(err)) from err

    def _training_files(self, pinned: PinnedModel) -> tuple[list[str], bool]:
        """The reference window: the point-in-time training set the version's run recorded
        (``mlops.feature_set``), else the data files it read (``mlops.data_files``); and whether the files hold
        the feature-store columns already."""
        from mlops_ops.core import lineage

        if not pinned.run_id:
            raise DriftCheckFailed(
                f"{pinned.name} v{pinned.version} has no source run: no training data to compare"
            )
        tags = self.hook.get_run_tags(pinned.run_id)
        feature_set = _json_tag(tags.get(lineage.FEATURE_SET))
        if isinstance(feature_set, dict) and feature_set.get("uri"):
            return [str(feature_set["uri"])], True
        files = _json_tag(tags.get(lineage.DATA_FILES))
        if not isinstance(files, list) or not files:
            raise DriftCheckFailed(
                f"run {pinned.run_id} of {pinned.name} v{pinned.version} records no readable "
                f"{lineage.DATA_FILES} tag (data version {tags.get(lineage.DATA_VERSION, 'unknown')}): "
                "the reference window cannot be found"
            )
        return [str(file) for file in files], False

    def _load_model(self, pinned: PinnedModel, folder: str) -> tuple[Any, list[str] | None]:
        from mlops_ops.core.errors import ModelIntegrityError
        from mlops_ops.core.model_artifacts import model_inputs

        try:
            trusted, local = self.trust.load(self.hook, pinned, folder)
        except ModelIntegrityError as err:
            raise DriftCheckFailed(str(err)) from err
        model = trusted.model
        return model, [column.name for column in model_inputs(local)] or None

    def _save(
        self, checked: CheckedInterval, outcome: DriftOutcome, spec: Any, interval: Interval, run_id: str
    ) -> DriftOutcome:
        """Write the JSON result and Evidently's report under ``report_root`` (the report also to the
        monitoring run); return the outcome with their URIs."""
        from mlops_ops.core import drift_check

        root = self.report_root or default_report_root()
        outcome, page = drift_check.write_evidence(
            checked,
            outcome,
            spec,
            interval,
            report_root=root,
            report_sample_rows=int(self.report_sample_rows),
            object_store=self.object_store(root),
        )
        if page is not None:  # also on the monitoring run, where the task's "Drift report" link leads
            self.hook.log_text(run_id, page, f"drift/interval={interval.key}/drift_report.html")
        return outcome

    def _record(
        self,
        pinned: PinnedModel,
        interval: Interval,
        outcome: DriftOutcome,
        result: DriftResult,
        run_id: str,
    ) -> None:
        """Metrics on the version's monitoring run (one point per interval), the latest verdict as version tags."""
        from mlops_ops.core import drift_check, lineage
        from mlops_ops.core.performance import interval_step

        metrics = {
            "drift.share": result.share,
            "drift.dataset_drift": float(result.dataset_drift),
            "drift.current_rows": float(result.current_rows),
        }
        for column in result.columns + ((result.prediction,) if result.prediction else ()):
            if column.score == column.score and abs(column.score) != float("inf"):
                metrics[f"drift.{column.column}.score"] = column.score
        metrics.update(drift_check.prediction_metrics(outcome.prediction_distribution))
        logged = self.hook.log_metrics_once_at_step(
            run_id, metrics, interval_step(interval), int(interval.end.timestamp() * 1000)
        )
        if logged["already_logged"]:
            self.log.info("Interval %s is on the monitoring timeline already: not logged again", interval.key)
        latest = self.hook.get_version_tags(pinned.name, pinned.version).get(TAG_PREFIX + "interval_end")
        if latest and latest > interval.end.isoformat():
            self.log.info("Version tags keep the later drift check of %s", latest)
            return
        tags = {
            "verdict": "drift" if outcome.drift_detected else "no drift",
            "share": f"{result.share:.4f}",
            "drifted_columns": ",".join(column.column for column in result.drifted_columns),
            "interval": interval.key,
            "interval_end": interval.end.isoformat(),
            "report_uri": outcome.report_uri or "",
            "summary": result.summary(),
        }
        self.hook.set_version_tags(
            pinned.name,
            pinned.version,
            {TAG_PREFIX + key: lineage.clip_tag(value) for key, value in tags.items()},
        )

    def _push(self, pushgateway_conn_id: str, pinned: PinnedModel, result: DriftResult) -> None:
        from mlops_ops.hooks.prometheus import MetricSample, PushgatewayHook

        labels = {"model": pinned.name, "version": pinned.version}
        samples = [
            MetricSample("mlops_drift_share", "Share of drifting feature columns", result.share, labels),
            MetricSample(
                "mlops_dataset_drift",
                "1 when the dataset drifts, else 0",
                float(result.dataset_drift),
                labels,
            ),
        ]
        for column in result.columns + ((result.prediction,) if result.prediction else ()):
            if not math.isfinite(column.score):  # the gateway takes no NaN; the JSON result keeps it as null
                continue
            samples.append(
                MetricSample(
                    "mlops_column_drift_score",
                    "Drift score per column (p-value or distance, see method)",
                    column.score,
                    {**labels, "column": column.column, "method": column.method},
                )
            )
        PushgatewayHook(pushgateway_conn_id).push(
            job="mlops_drift", samples=samples, grouping_key={"model": pinned.name}
        )


def _json_tag(value: str | None) -> Any:
    try:
        return json.loads(value) if value else None
    except json.JSONDecodeError:
        return None
