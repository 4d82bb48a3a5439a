"""Register a gate-approved model version and point an alias (``challenger``) at it, idempotently."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from mlops_ops.core.contracts import GateVerdict, RegisteredVersion, TrainingResult, as_mapping
from mlops_ops.core.errors import RefusedByPolicy
from mlops_ops.links.mlflow import MlflowModelVersionLink, MlflowRunLink
from mlops_ops.operators.base import RegistryOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class RegistrationRefused(RefusedByPolicy, AirflowFailException):
    """The model may not be registered (its gate did not pass); retrying would not change that."""


class RegisterOperator(RegistryOperator):
    """
    Register the trained model as a version of a registered model and point ``alias`` at it.

    Idempotent under Airflow's at-least-once execution: a retry finds the version already made from the same
    MLflow run, and a later training with the same training key (same code revision, data version, spec,
    params, seed, training function, library versions and device, hence the same model) reuses the version
    registered for it; neither creates a new version. Two DAG runs registering at the same instant are not
    serialised (MLflow has no conditional create): keep ``max_active_runs=1`` on the DAG, as ``retrain`` does.
    The version is tagged with its lineage: data version, training run, training key, artifact sha256, code
    revision, seed, gate summary, trigger reason and the Airflow dag/run/try that registered it.

    Before anything is signed, the version's artifact is downloaded and checked as every consumer will check it
    (:func:`~mlops_ops.core.model_artifacts.check_loadable`: the digest the training recorded, the allow-list
    scan, a format this deployment loads). Then its registration (name, version, artifact digest, run, data
    version, gate verdict) is signed with the deployment's key (tag ``mlops.signature``, see
    :class:`~mlops_ops.hooks.trust.TrustHook`), and the move of ``alias`` is appended to the signed alias log.
    A version that fails the check is left unsigned (no consumer will load it) and the task fails.

    When the task has outlets, each asset event carries ``{"model_name", "version", "alias", "model_uri"}``
    in its extras, so a promotion DAG scheduled on it knows what to promote.

    :param training: the result of ``TrainOperator`` (mapping or JSON).
    :param decision: the result of ``EvaluateGateOperator`` (mapping or JSON); registration is refused
        unless it passed. ``None`` registers without a gate (only with ``require_gate=False``).
    :param registered_model_name: registered model; default the training's ``model_name``.
    :param alias: alias pointed at the version.
    :param trigger_reason: why the model was made, recorded on the version.
    :param require_gate: refuse to register without a passed gate decision.
    :param mlflow_conn_id: MLflow connection.
    :param trust_conn_id: the deployment's trust connection (it must hold the signing key).
    :return: ``{"model_name", "version", "alias", "model_uri", "run_id", "registered_new", "data_version",
        "signed_by"}`` (``signed_by``: the id of the key that signed the registration).
    """

    failure = RegistrationRefused

    template_fields: Sequence[str] = (
        "training",
        "decision",
        "registered_model_name",
        "alias",
        "trigger_reason",
    )
    template_fields_renderers = {"training": "json", "decision": "json"}
    ui_color = "#d5f5e3"
    operator_extra_links = (
        MlflowModelVersionLink(),
        MlflowRunLink(),
    )

    def __init__(
        self,
        *,
        training: str | dict[str, Any],
        decision: str | dict[str, Any] | None,
        registered_model_name: str | None = None,
        alias: str = "challenger",
        trigger_reason: str = "",
        require_gate: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.training = training
        self.decision = decision
        self.registered_model_name = registered_model_name
        self.alias = alias
        self.trigger_reason = trigger_reason
        self.require_gate = require_gate

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_ops.core import lineage

        training, decision = self._approved_training()
        model_name = self.registered_model_name or training.model_name
        with self.hook.unreachable_as(f"registering {model_name}"):
            version, registered_new = self._find_or_register(model_name, training, decision, context)
            signed_by = self._sign(model_name, version, training, decision, context)
            self._move_alias(model_name, str(version.version), context)
        self.log.info(
            "%s v%s is now %r (%s)",
            model_name,
            version.version,
            self.alias,
            "registered now" if registered_new else "registered before",
        )
        registered = RegisteredVersion(
            model_name=model_name,
            version=str(version.version),
            alias=self.alias,
            model_uri=f"models:/{model_name}/{version.version}",
            run_id=training.run_id,
            registered_new=registered_new,
            data_version=version.tags.get(lineage.DATA_VERSION, training.data_version or None),
            signed_by=signed_by,
        )
        for asset in self.outlets or ():
            context["outlet_events"][asset].extra = registered.asset_extra()
        return registered.to_xcom()

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the trained MLflow model (input) and the registered model version (output).

        :return: an ``OperatorLineage``, or ``None`` without the OpenLineage provider.
        """
        from mlops_ops.operators.openlineage import operator_lineage, task_result

        result = task_result(task_instance)
        if not result.get("version"):
            return operator_lineage([], [])
        # Lenient: lineage describes what the task did, it does not judge its input again.
        model_uri = as_mapping(self.training, "training").get("model_uri")
        return operator_lineage(
            [(self.hook.tracking_uri, str(model_uri))] if model_uri else [],
            [(self.hook.registry_uri, f"{result['model_name']}/versions/{result['version']}")],
        )

    def _sign(
        self,
        model_name: str,
        version: Any,
        training: TrainingResult,
        decision: GateVerdict | None,
        context: Context,
    ) -> str:
        """Check the version's artifact as consumers will, then sign its registration (once: a retry finds a
        valid signature and keeps it). :return: the id of the signing key."""
        import tempfile
        from datetime import UTC, datetime

        from mlops_ops.core import lineage
        from mlops_ops.core.errors import ModelIntegrityError
        from mlops_ops.core.model_artifacts import (
            SIGNATURE_TAG,
            Registration,
            check_loadable,
            verify_registration,
        )

        pinned = self.hook.pin_version(model_name, version=str(version.version))
        if pinned.signature:
            try:
                existing = verify_registration(pinned, self.trust.verification_keys)
                self.log.info("%s v%s is signed already (a retry)", model_name, pinned.version)
                return json.loads(pinned.signature).get("key_id", "") if existing else ""
            except ModelIntegrityError as err:
                self.log.warning("%s v%s: its signature is replaced: %s", model_name, pinned.version, err)
        # The digest the training task computed from the artifact it logged: what is signed must be that.
        expected = training.artifact_sha256
        if str(version.run_id or "") != training.run_id:
            raise RegistrationRefused(
                f"{model_name} v{pinned.version} was made from run {version.run_id}, not from training run "
                f"{training.run_id}: refusing to sign it"
            )
        with tempfile.TemporaryDirectory(prefix="mlops-register-") as folder:
            local = self.hook.download_model(pinned, folder)
            try:
                _, _, file_format, report = check_loadable(
                    local, model_name, f"{model_name} version {pinned.version}", expected, self.trust.policy
                )
            except ModelIntegrityError as err:
                raise RegistrationRefused(f"{model_name} v{pinned.version} is not signed: {err}") from err
        ti = context.get("ti")
        registration = Registration(
            model_name=model_name,
            version=pinned.version,
            artifact_sha256=expected,
            run_id=str(version.run_id or training.run_id),
            data_version=str((version.tags or {}).get(lineage.DATA_VERSION, training.data_version)),
            gate_passed=bool(decision and decision.passed),
            training_key=training.training_key,
            airflow_run=f"{getattr(ti, 'dag_id', '')}/{getattr(ti, 'run_id', '')}",
            signed_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        key = self.trust.signing_key()
        self.hook.set_version_tags(model_name, pinned.version, {SIGNATURE_TAG: registration.sign(key)})
        self.log.info(
            "%s v%s signed by key %s (%s model file; %s)",
            model_name,
            pinned.version,
            key.key_id,
            file_format,
            report.describe(),
        )
        return key.key_id

    def _move_alias(self, model_name: str, version: str, context: Context) -> None:
        """Record the move of ``alias`` in the signed alias log, then set it (a retry finds it recorded)."""
        from datetime import UTC, datetime

        moves = self.trust.alias_history(model_name, self.alias)
        if not moves or moves[-1].to_version != version:
            ti = context.get("ti")
            self.trust.record_alias_move(
                model_name=model_name,
                alias=self.alias,
                to_version=version,
                move="registration",
                actor="RegisterOperator",
                reason=lineage_reason(self.trigger_reason),
                at=datetime.now(UTC).isoformat(timespec="seconds"),
                airflow_run=f"{getattr(ti, 'dag_id', '')}/{getattr(ti, 'run_id', '')}",
            )
        self.hook.set_alias(model_name, self.alias, version)

    def _signed(self, model_name: str, version: Any) -> bool:
        from mlops_ops.core.errors import ModelIntegrityError
        from mlops_ops.core.model_artifacts import verify_registration

        try:
            verify_registration(
                self.hook.pin_version(model_name, version=str(version.version)), self.trust.verification_keys
            )
        except ModelIntegrityError:
            return False
        return True

    def _approved_training(self) -> tuple[TrainingResult, GateVerdict | None]:
        """The training result and the gate decision that approves it; refused without a decision (unless
        ``require_gate`` is off) or with one about another run or that did not pass."""
        with self.failing("cannot register"):
            # The model's name comes from the training unless the task names the registered model itself.
            needed = () if self.registered_model_name else ("model_name",)
            training = TrainingResult.from_xcom(self.training, "training", require=needed)
            decision = (
                GateVerdict.from_xcom(self.decision, "decision")
                if self.decision not in (None, "", "None")
                else None
            )
        if decision is None and self.require_gate:
            raise RegistrationRefused("no gate decision given: refusing to register an unevaluated model")
        if decision is not None and not decision.approves(training):
            raise RegistrationRefused(
                f"the gate decision for run {decision.run_id} (passed={decision.passed}) does not "
                f"approve training run {training.run_id}: refusing to register"
            )
        return training, decision

    def _find_or_register(
        self, model_name: str, training: TrainingResult, decision: GateVerdict | None, context: Context
    ) -> tuple[Any, bool]:
        from mlops_ops.core import lineage

        # The tag can be written by anyone: only a version really made from this run counts as a retry's.
        same_run = [
            version
            for version in self.hook.search_versions(model_name, {lineage.TRAINING_RUN: training.run_id})
            if str(version.run_id or "") == training.run_id
        ]
        if same_run:
            self.log.info(
                "Run %s was already registered as v%s (a retry)", training.run_id, same_run[-1].version
            )
            return same_run[-1], False
        # Code of unknown origin (no git, no MLOPS_CODE_REVISION) may differ between two trainings with the
        # same key, so only a known revision makes two trainings identical.
        if training.training_key and training.code_revision != lineage.UNKNOWN_REVISION:
            same_model = [
                version
                for version in self.hook.search_versions(
                    model_name, {lineage.TRAINING_KEY: training.training_key}
                )
                # Reused only when its own signature holds: an unsigned or forged one gets a new version.
                if self._signed(model_name, version)
            ]
            if same_model:
                self.log.info(
                    "An identical training (same code, data, spec, params, seed, libraries) is v%s: "
                    "not registering again",
                    same_model[-1].version,
                )
                return same_model[-1], False

        tags = {
            lineage.TRAINING_RUN: training.run_id,
            lineage.TRAINING_KEY: training.training_key,
            lineage.DATA_VERSION: training.data_version,
            lineage.ARTIFACT_SHA256: training.artifact_sha256,
            lineage.SEED: "" if training.seed is None else str(training.seed),
            lineage.TRIGGER_REASON: lineage.clip_tag(str(self.trigger_reason or "")),
            **lineage.airflow_tags_of(context.get("ti")),
        }
        run_tags = self.hook.get_run_tags(training.run_id)
        tags[lineage.CODE_REVISION] = run_tags.get(lineage.CODE_REVISION, lineage.UNKNOWN_REVISION)
        if lineage.FEATURE_SET in run_tags:
            tags[lineage.FEATURE_SET] = run_tags[lineage.FEATURE_SET]
        if decision is not None:
            tags[lineage.GATE_PASSED] = str(decision.passed).lower()
            tags[lineage.GATE_SUMMARY] = lineage.clip_tag(
                json.dumps({check["name"]: check.get("value") for check in decision.checks})
            )
        return self.hook.register_model(training.model_uri, model_name, tags), True


def lineage_reason(trigger_reason: str) -> str:
    """The reason recorded with a registration's alias move: the trigger reason, cut to a tag's length."""
    from mlops_ops.core import lineage

    return lineage.clip_tag(str(trigger_reason or "registered"))
