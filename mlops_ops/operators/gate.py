"""Score the challenger against the champion on the same held-out rows and decide whether it may go on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from mlops_ops.core.contracts import GateVerdict, TrainingResult
from mlops_ops.core.errors import RefusedByPolicy
from mlops_ops.links.mlflow import MlflowRunLink
from mlops_ops.operators.base import ObjectStorageBaseOperator, RegistryOperator
from mlops_ops.operators.inputs import config_source, dag_folder_of, load_model_spec

if TYPE_CHECKING:
    import pandas as pd
    from airflow.sdk import Context

    from mlops_ops.core.gate import GateDecision, GatePolicy
    from mlops_ops.core.model_artifacts import PinnedModel
    from mlops_ops.core.modelspec import ModelSpec


class GateFailed(RefusedByPolicy, AirflowFailException):
    """The challenger failed its evaluation gate; the message lists each failing check and its threshold."""


class EvaluateGateOperator(ObjectStorageBaseOperator, RegistryOperator):
    """
    Decide whether a freshly trained challenger may be registered, against the current champion.

    Both models are scored on the same held-out rows (saved by ``TrainOperator``); the decision applies
    absolute floors/ceilings per metric, a maximum regression and a minimum improvement against the champion,
    the user's behavioural checks, and the first-model policy when no champion exists. The decision is
    evidence: it is pushed to XCom and logged to the challenger's MLflow run (tags, metrics and
    ``gate/decision.json``) before a failing gate stops the DAG with :class:`GateFailed`.

    :param training: the result of ``TrainOperator`` (mapping or JSON): ``run_id``, ``model_uri``,
        ``evaluation_uri``, ``metrics``.
    :param model_spec: the model spec (path relative to the project root, or mapping) naming target,
        features and the registered model.
    :param policy: gate thresholds: a YAML path (relative to the project root) or a mapping, see
        :class:`mlops_ops.core.gate.GatePolicy`.
    :param champion_alias: the alias of the model to beat.
    :param registered_model_name: registered model; default the spec's name.
    :param mlflow_conn_id: MLflow connection.
    :param storage_conn_id: the connection of ``s3://``, ``gs://`` or ``abfs://`` data (see
        :class:`~mlops_ops.operators.base.ObjectStorageBaseOperator`).
    :param trust_conn_id: the deployment's trust connection: the champion is the one the signed alias log names,
        loaded like every consumer loads it; the challenger is checked against its training's digest and scanned.
    :return: the decision: ``{"passed", "checks": [{"name", "passed", "value", "threshold", "comparison",
        "detail"}], "challenger_metrics", "champion_metrics", "champion_version", "policy", "run_id"}``.
    """

    failure = GateFailed

    template_fields: Sequence[str] = (
        "training",
        "model_spec",
        "policy",
        "champion_alias",
        "registered_model_name",
    )
    template_fields_renderers = {"training": "json", "policy": "json"}
    ui_color = "#fcf3cf"
    operator_extra_links = (MlflowRunLink(),)

    def __init__(
        self,
        *,
        training: str | dict[str, Any],
        model_spec: str | dict[str, Any],
        policy: str | dict[str, Any],
        champion_alias: str = "champion",
        registered_model_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.training = training
        self.model_spec = model_spec
        self.policy = policy
        self.champion_alias = champion_alias
        self.registered_model_name = registered_model_name

    def execute(self, context: Context) -> dict[str, Any]:
        import tempfile

        from mlops_ops.core import gate
        from mlops_ops.core import training as training_core

        training, spec, policy, evaluation = self._inputs(context)
        model_name = self.registered_model_name or spec.name
        self.hook.get_conn()
        # A policy naming a metric nobody computes, rows the champion cannot be scored on, a model the trust rules
        # refuse: no decision can be made, and the next try would fail the same way.
        with self.failing(f"the gate could not decide on run {training.run_id}"):
            # The champion as the signed alias log names it, loaded like every consumer loads it; the challenger
            # from this run's training, checked against the digest the training task computed.
            champion_version = self._champion(model_name)
            with tempfile.TemporaryDirectory(prefix="mlops-gate-") as folder:
                challenger, challenger_columns = self._challenger(training, model_name, folder)
            challenger_metrics = training_core.evaluate(
                challenger, evaluation, spec, input_columns=challenger_columns
            )
            champion_metrics = self._champion_metrics(model_name, champion_version, evaluation, spec, policy)
            decision = gate.decide(
                challenger_metrics,
                champion_metrics,
                policy,
                champion_version=str(champion_version.version) if champion_version is not None else None,
                extra_checks=tuple(gate.run_behavioural_checks(policy.checks, challenger, evaluation, spec)),
                task=spec.prediction_task,
            )
        result = GateVerdict(run_id=training.run_id, **decision.to_dict()).to_xcom()
        self._record(training.run_id, decision, result)
        for check in decision.checks:
            self.log.info("%s %s", "PASS" if check.passed else "FAIL", check.describe())
        if not decision.passed:
            context["ti"].xcom_push(key="return_value", value=result)
            raise GateFailed(decision.failure_message())
        return result

    def _inputs(self, context: Context) -> tuple[TrainingResult, ModelSpec, GatePolicy, pd.DataFrame]:
        """The training result, the model spec, the gate policy (checked against the spec's task) and the held-out
        evaluation rows; a missing or malformed one fails the task, not retried."""
        from mlops_ops.core import gate, storage

        dag_folder = dag_folder_of(context)
        # ValueError covers pyarrow's ArrowInvalid; other OSErrors (network) are left to Airflow's retries.
        with self.failing("cannot evaluate the challenger", ValueError, KeyError, FileNotFoundError):
            training = TrainingResult.from_xcom(self.training, "training", require=("evaluation_uri",))
            spec = load_model_spec(self.model_spec, dag_folder)
            policy = gate.GatePolicy.load(config_source(self.policy, dag_folder))
            policy.check_for(spec.prediction_task, f"the gate policy of {spec.task} model {spec.name!r}")
            evaluation = storage.read_parquet(
                [training.evaluation_uri], self.object_store(training.evaluation_uri)
            )
        return training, spec, policy, evaluation

    def _champion_metrics(
        self,
        model_name: str,
        champion_version: PinnedModel | None,
        evaluation: pd.DataFrame,
        spec: ModelSpec,
        policy: GatePolicy,
    ) -> dict[str, float] | None:
        """The champion's metrics on the challenger's evaluation rows, or ``None`` when there is no champion."""
        import tempfile

        from mlops_ops.core import training as training_core
        from mlops_ops.core.model_artifacts import model_inputs

        if champion_version is None:
            self.log.info(
                "No %r alias on %s: first-model policy %r",
                self.champion_alias,
                model_name,
                policy.first_model,
            )
            return None
        with tempfile.TemporaryDirectory(prefix="mlops-gate-") as folder:
            trusted, local = self.trust.load(self.hook, champion_version, folder)
            columns = [column.name for column in model_inputs(local)] or None
        self.log.info("Champion: %s v%s", model_name, champion_version.version)
        return training_core.evaluate(trusted.model, evaluation, spec, input_columns=columns)

    def _champion(self, model_name: str) -> PinnedModel | None:
        """The champion pinned through the signed alias log, or ``None`` when there is none yet."""
        try:
            return self.trust.pin(self.hook, model_name, alias=self.champion_alias)
        except LookupError:
            return None

    def _challenger(
        self, training: TrainingResult, model_name: str, folder: str
    ) -> tuple[Any, list[str] | None]:
        """This run's trained model, loaded by the fixed recipe after its digest is checked against the one its
        training task recorded (a registry writer could otherwise rewrite it between training and the gate)."""
        import mlflow

        from mlops_ops.core.model_artifacts import load_checked, model_inputs

        self.hook.get_conn()
        local = mlflow.artifacts.download_artifacts(training.model_uri, dst_path=folder)
        model, _, _ = load_checked(
            local,
            model_name,
            f"the challenger of run {training.run_id}",
            training.artifact_sha256,
            self.trust.policy,
            training.model_uri,
        )
        return model, [column.name for column in model_inputs(local)] or None

    def _record(self, run_id: str, decision: GateDecision, result: dict[str, Any]) -> None:
        """Log the decision on the challenger's run before anything can fail."""
        from mlops_ops.core import lineage

        self.hook.set_run_tags(
            run_id,
            {
                lineage.GATE_PASSED: str(decision.passed).lower(),
                lineage.GATE_SUMMARY: lineage.clip_tag(decision.summary()),
            },
        )
        self.hook.log_run_metrics(
            run_id,
            {
                **{f"gate_challenger_{name}": value for name, value in decision.challenger_metrics.items()},
                **{
                    f"gate_champion_{name}": value
                    for name, value in (decision.champion_metrics or {}).items()
                },
            },
        )
        self.hook.log_json(run_id, result, "gate/decision.json")
