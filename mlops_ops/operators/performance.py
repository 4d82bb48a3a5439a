"""Performance monitoring: an interval's published predictions joined with the labels that arrived since."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from mlops_ops.core.errors import MlopsError
from mlops_ops.operators.base import ObjectStorageBaseOperator, RegistryOperator
from mlops_ops.operators.inputs import config_source, dag_folder_of, load_model_spec

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlops_ops.core.performance import DecayVerdict, IntervalPerformance, MeasuredInterval
    from mlops_ops.core.scoring import Interval
    from mlops_ops.hooks.prometheus import MetricSample

#: Version tags holding the latest verdict (``mlops.performance.status`` and so on).
TAG_PREFIX = "mlops.performance."
#: Tags of the monitoring run of one model version (one run per version, looked up before it is created).
RUN_MODEL_TAG = "mlops.monitoring.model"
RUN_VERSION_TAG = "mlops.monitoring.model_version"
#: What is pushed to the Pushgateway, all gauges labelled ``model`` and ``version``.
LIVE_METRIC = "mlops_live_metric"  # + label ``metric``: the task's metrics (roc_auc, f1_macro, rmse, ...)
BUSINESS_COST_PER_ROW = "mlops_business_cost_per_row"
BUSINESS_COST_TOTAL = "mlops_business_cost_total"
LABEL_COVERAGE = "mlops_label_coverage"
LABELLED_ROWS = "mlops_labelled_rows"
RETRAIN_REQUESTED = "mlops_retrain_requested"
INTERVAL_END = "mlops_performance_interval_end_timestamp_seconds"
DEFAULT_PUSHGATEWAY_JOB = "mlops_performance"


class PerformanceMonitoringFailed(MlopsError, AirflowFailException):
    """The interval cannot be measured (no predictions, no labels, bad input): retrying will not help."""


class PerformanceMonitorOperator(ObjectStorageBaseOperator, RegistryOperator):
    """Measure a model version on an interval whose labels arrived, log it on its timeline, judge decay.

    The interval's published predictions (``<predictions_root>/model=<name>/interval=<start>_<end>/
    predictions.parquet``, written by :class:`~mlops_ops.operators.scoring.BatchScoreOperator`, which records
    the model's task and classes in them) are joined on
    ``key_columns`` with the rows landed under ``labels_source`` in the same interval, whose label is the model
    spec's ``target`` as its ``prepare`` function derives it (for flights: arrival delay >= 15 minutes).
    Predictions without a label yet are counted (``coverage``) and left out. The decisions are judged as batch
    scoring made them (its ``prediction`` column), with the metrics of the model's task
    (:mod:`mlops_ops.core.tasks`): a partition scored for another task than the model spec's is refused, as are
    a decay rule naming a metric the task does not measure and a cost table of another task. The version
    measured is the one that scored the interval.

    MLflow: one run per model version in experiment ``<model>-monitoring`` (looked up before it is created);
    each metric is logged with ``step`` = the interval's index (:func:`~mlops_ops.core.performance.interval_step`)
    and ``timestamp`` = the interval's end, so MLflow's charts draw the version's timeline. MLflow's metric
    history is append-only, so a metric that has a point at the interval's step already is not logged again: a
    retry or re-run never adds a second point (the first figures stay on the chart; the re-run's are in its
    XCom, in the run's ``performance/interval=<key>.json`` artifact, which it replaces, and in the version
    tags). The version is tagged with the latest interval's verdict (``mlops.performance.*``); an older
    interval measured later does not overwrite a newer verdict.

    A decayed model does not fail the task: the verdict (``decay.retrain_requested``) is for the DAG to act on.

    :param model_name: the registered model. Templated.
    :param labels_source: the landed rows holding the labels' inputs (Parquet file or folder, or ``s3://``).
        Templated.
    :param key_columns: columns identifying a row in both the predictions and the landed rows.
    :param time_column: the UTC timestamp column placing landed rows in the interval.
    :param model_spec: the model spec (YAML path relative to the project, or a mapping): ``target`` and
        ``prepare`` give the label, ``task`` the metrics. Templated.
    :param decay_rule: the :class:`~mlops_ops.core.performance.DecayRule` (YAML path or mapping), naming
        metrics of the model's task. Templated.
    :param business_costs: the :class:`~mlops_ops.core.performance.BusinessCosts` (YAML path or mapping), the
        cost table of the model's task. Templated.
    :param interval_start: inclusive start (ISO-8601 or datetime, naive = UTC); with ``interval_end`` empty,
        the interval is the run's data interval, else the last complete ``period`` (as in batch scoring).
        Templated.
    :param interval_end: exclusive end. Templated.
    :param period: the length of an interval resolved without ``interval_start``/``interval_end``.
    :param predictions_root: where predictions are published (default ``<data root>/predictions``). Templated.
    :param experiment_name: MLflow experiment of the monitoring runs (default ``<model_name>-monitoring``).
        Templated.
    :param pushgateway_conn_id: a ``prometheus_pushgateway`` connection to push the live metrics to; ``None``
        pushes nothing.
    :param pushgateway_job: the ``job`` the metrics are pushed under (grouped by ``model``).
    :param mlflow_conn_id: Airflow connection of the MLflow server.
    :param trust_conn_id: Airflow connection of the deployment's trust rules
        (:class:`~mlops_ops.hooks.trust.TrustHook`): the version must be signed, its alias recorded in the signed
        alias log, and it is loaded only through :func:`~mlops_ops.core.model_artifacts.load_trusted`.
    :param storage_conn_id: the connection of ``s3://``, ``gs://`` or ``abfs://`` data (see
        :class:`~mlops_ops.operators.base.ObjectStorageBaseOperator`).
    :return: (XCom) ``{"model_name", "model_version", "interval": {"start", "end", "key"}, "task", "rows",
        "labelled_rows", "unlabelled_rows", "coverage", "metrics", "confusion", "business_cost", "notes",
        "decay": {"status" ("healthy" | "decayed" | "inconclusive"), "retrain_requested", "summary",
        "reasons": [{"metric", "kind", "value", "threshold", "training_value", "message", ...}],
        "unevaluated"}, "mlflow": {"experiment_id", "run_id", "step", "logged", "already_logged",
        "version_tagged"}, "pushed": samples pushed (0 without a gateway)}``, shaped by the model's task
        (``task``, read from the partition; it must be the model spec's):

        - binary: ``metrics`` {accuracy, precision, recall, f1, roc_auc, log_loss, brier_score, positive_rate,
          predicted_positive_rate}, ``confusion`` {true_positives, false_positives, true_negatives,
          false_negatives}, ``business_cost`` {total, per_row, missed_positives, false_alarms, costs};
        - multiclass: ``classes``, ``metrics`` {accuracy, f1_macro, f1_weighted, log_loss, recall_<class>...},
          ``confusion`` {classes, counts (rows by label, columns by decision)}, ``business_cost`` {total,
          per_row, misclassified, costs};
        - regression: ``metrics`` {rmse, mae, r2, mape, mean_target, mean_prediction}, no ``confusion``,
          ``business_cost`` {total, per_row, under_prediction_units, over_prediction_units, costs}.

        A metric undefined on the interval's rows is ``None``, with the reason in ``notes``. Each defined metric
        is also pushed as ``mlops_live_metric{metric=<name>}``.
    """

    template_fields: Sequence[str] = (
        "model_name",
        "labels_source",
        "model_spec",
        "decay_rule",
        "business_costs",
        "interval_start",
        "interval_end",
        "predictions_root",
        "experiment_name",
    )
    ui_color = "#fde2e4"

    def __init__(
        self,
        *,
        model_name: str,
        labels_source: str,
        key_columns: Sequence[str],
        time_column: str,
        model_spec: str | dict[str, Any],
        decay_rule: str | dict[str, Any],
        business_costs: str | dict[str, Any],
        interval_start: Any = None,
        interval_end: Any = None,
        period: timedelta = timedelta(days=1),
        predictions_root: str | None = None,
        experiment_name: str | None = None,
        pushgateway_conn_id: str | None = None,
        pushgateway_job: str = DEFAULT_PUSHGATEWAY_JOB,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.labels_source = labels_source
        self.key_columns = key_columns
        self.time_column = time_column
        self.model_spec = model_spec
        self.decay_rule = decay_rule
        self.business_costs = business_costs
        self.interval_start = interval_start
        self.interval_end = interval_end
        self.period = period
        self.predictions_root = predictions_root
        self.experiment_name = experiment_name
        self.pushgateway_conn_id = pushgateway_conn_id
        self.pushgateway_job = pushgateway_job

    def execute(self, context: Context) -> dict[str, Any]:
        from dataclasses import replace

        from mlops_ops.core.contracts import PerformanceOutcome

        interval, outcome = self._measure(context)
        version, measured, verdict = outcome.version, outcome.measured, outcome.verdict
        self.log.info(
            "%s v%s on %s: %d of %d predictions labelled (%.1f%%); %s",
            self.model_name,
            version,
            interval.describe(),
            measured.labelled_rows,
            measured.rows,
            100 * measured.coverage,
            json.dumps(measured.metrics),
        )
        (self.log.warning if verdict.status != "healthy" else self.log.info)("%s", verdict.message())
        result = PerformanceOutcome.from_xcom(
            {
                "model_name": self.model_name,
                "model_version": version,
                "interval": {**interval.to_dict(), "key": interval.key},
                **measured.to_dict(),
                "decay": {key: value for key, value in verdict.to_dict().items() if key != "checks"},
            },
            "performance outcome",
        )
        # The interval's JSON on the monitoring run: what was measured, before where it was logged and pushed.
        measured_only = {
            key: value for key, value in result.to_xcom().items() if key not in ("mlflow", "pushed")
        }
        result = replace(result, mlflow=self._record(version, interval, measured, verdict, measured_only))
        gateway = self.pushgateway_conn_id
        if gateway:
            result = replace(result, pushed=self._push(gateway, version, interval, measured, verdict))
        return result.to_xcom()

    def _measure(self, context: Context) -> tuple[Interval, MeasuredInterval]:
        """The interval and what was measured on it: predictions joined to labels, metrics, the decay verdict.
        What cannot be measured (no predictions, a bad rule, a version without its training run) fails the task,
        not retried, naming the model and the interval."""
        from mlops_ops.core import performance, scoring
        from mlops_ops.core.errors import DataError, ModelIntegrityError
        from mlops_ops.operators.scoring import default_output_root

        try:
            interval = self._interval(context)
            dag_folder = dag_folder_of(context)
            uri = scoring.partition_uri(
                self.predictions_root or default_output_root(), self.model_name, interval
            )
            return interval, performance.measure_interval(
                predictions_uri=uri,
                labels_source=self.labels_source,
                interval=interval,
                model_name=self.model_name,
                spec=load_model_spec(self.model_spec, dag_folder),
                rule=performance.DecayRule.load(config_source(self.decay_rule, dag_folder)),
                costs=performance.BusinessCosts.load(config_source(self.business_costs, dag_folder)),
                key_columns=list(self.key_columns),
                time_column=self.time_column,
                training_metrics_of=self._training_metrics,
                object_store=self.object_store([uri, self.labels_source]),
            )
        except (DataError, ValueError, FileNotFoundError, LookupError, ModelIntegrityError) as err:
            raise PerformanceMonitoringFailed(
                f"cannot measure {self.model_name} on {self._describe(context)}: {err}"
            ) from err

    def _describe(self, context: Context) -> str:
        try:
            return f"interval {self._interval(context).describe()}"
        except ValueError:  # the interval itself may be what failed (DataError is a ValueError)
            return f"interval {self.interval_start!r} - {self.interval_end!r}"

    def _interval(self, context: Context) -> Interval:
        from mlops_ops.core import scoring

        return scoring.resolve_interval(
            requested_start=self.interval_start,
            requested_end=self.interval_end,
            data_interval_start=context.get("data_interval_start"),
            data_interval_end=context.get("data_interval_end"),
            run_after=getattr(context.get("dag_run"), "run_after", None),
            period=self.period,
        )

    def _training_metrics(self, version: str) -> dict[str, float]:
        """The metrics of the training run that the version's signed registration names."""
        pinned = self.trust.pin(self.hook, self.model_name, version=version)
        if not pinned.run_id:
            raise LookupError(f"{self.model_name} v{version} names no training run to compare against")
        return self.hook.get_run_metrics(pinned.run_id)

    def _record(
        self,
        version: str,
        interval: Interval,
        measured: IntervalPerformance,
        verdict: DecayVerdict,
        result: dict[str, Any],
    ) -> dict[str, Any]:
        """Log the interval on the version's monitoring run and tag the version with the latest verdict."""
        from mlops_ops.core import performance
        from mlops_ops.core.performance import interval_step

        run_id = self.hook.monitoring_run(self.model_name, version, self.experiment_name)
        step = interval_step(interval)
        timeline = {name: value for name, value in measured.metrics.items() if value is not None}
        timeline.update(
            business_cost_per_row=measured.business_cost.per_row,
            business_cost_total=measured.business_cost.total,
            rows=measured.rows,
            labelled_rows=measured.labelled_rows,
            label_coverage=measured.coverage,
            retrain_requested=float(verdict.retrain_requested),
        )
        timeline.update(performance.observed_class_shares(measured))
        timestamp_ms = int(interval.end.timestamp() * 1000)
        logged = self.hook.log_metrics_once_at_step(run_id, timeline, step, timestamp_ms)
        if logged["already_logged"]:
            self.log.warning(
                "Interval %s is on the timeline of run %s already (step %d): %s not logged again",
                interval.key,
                run_id,
                step,
                ", ".join(logged["already_logged"]),
            )
        self.hook.log_json(run_id, result, f"performance/interval={interval.key}.json")

        tagged = self.hook.get_version_tags(self.model_name, version).get(TAG_PREFIX + "interval_end")
        newest = tagged is None or tagged <= interval.end.isoformat()
        if newest:
            self.hook.set_version_tags(
                self.model_name,
                version,
                {
                    TAG_PREFIX + "status": verdict.status,
                    TAG_PREFIX + "retrain_requested": str(verdict.retrain_requested).lower(),
                    TAG_PREFIX + "summary": verdict.summary(),
                    TAG_PREFIX + "reasons": json.dumps([check.describe() for check in verdict.violations]),
                    TAG_PREFIX + "limits": json.dumps(verdict.limits()),
                    TAG_PREFIX + "interval": interval.key,
                    TAG_PREFIX + "interval_end": interval.end.isoformat(),
                    TAG_PREFIX + "coverage": f"{measured.coverage:.4f}",
                    TAG_PREFIX + "metrics": json.dumps(result["metrics"], sort_keys=True),
                    TAG_PREFIX + "monitoring_run_id": run_id,
                },
            )
        return {
            "experiment_id": self.hook.get_run_experiment_id(run_id),
            "run_id": run_id,
            "step": step,
            **logged,
            "version_tagged": newest,
        }

    def _push(
        self,
        pushgateway_conn_id: str,
        version: str,
        interval: Interval,
        measured: IntervalPerformance,
        verdict: DecayVerdict,
    ) -> int:
        from mlops_ops.hooks.prometheus import PushgatewayHook

        samples = performance_samples(self.model_name, version, interval, measured, verdict)
        hook = PushgatewayHook(pushgateway_conn_id=pushgateway_conn_id)
        return hook.push(self.pushgateway_job, samples, {"model": self.model_name})


def performance_samples(
    model_name: str, version: str, interval: Interval, measured: IntervalPerformance, verdict: DecayVerdict
) -> list[MetricSample]:
    """The gauges of one measured interval, labelled ``model`` and ``version`` (undefined metrics left out)."""
    from mlops_ops.hooks.prometheus import MetricSample

    labels = {"model": model_name, "version": str(version)}
    samples = [
        MetricSample(
            LIVE_METRIC,
            "Live performance of the model version on the latest interval's labelled rows, by metric.",
            float(value),
            {**labels, "metric": name},
        )
        for name, value in measured.metrics.items()
        if value is not None
    ]
    for name, documentation, value in (
        (BUSINESS_COST_PER_ROW, "Cost of wrong decisions per labelled row.", measured.business_cost.per_row),
        (BUSINESS_COST_TOTAL, "Cost of the interval's wrong decisions.", measured.business_cost.total),
        (LABEL_COVERAGE, "Share of the interval's predictions whose label arrived.", measured.coverage),
        (LABELLED_ROWS, "Predictions of the interval with a label.", measured.labelled_rows),
        (RETRAIN_REQUESTED, "1 when the decay rule requested a retrain.", float(verdict.retrain_requested)),
        (INTERVAL_END, "End of the interval measured, Unix seconds.", interval.end.timestamp()),
    ):
        samples.append(MetricSample(name, documentation, float(value), dict(labels)))
    return samples
