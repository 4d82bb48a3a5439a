"""Move the ``champion`` alias: promotion of an approved challenger, forced promotion, rollback. Audited."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from mlops_ops.core.errors import RefusedByPolicy
from mlops_ops.links.mlflow import MlflowModelVersionLink
from mlops_ops.operators.base import RegistryOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlops_ops.core.alias_log import AliasRecord
    from mlops_ops.core.model_artifacts import Registration
    from mlops_ops.core.promotion import AliasMove, MoveKind


class PromotionRefused(RefusedByPolicy, AirflowFailException):
    """The move would break the registry's invariants; nothing was changed. Retrying would not help."""


class _AliasMoveOperator(RegistryOperator):
    """What promotion and rollback share: compare-and-set of an alias, history, version tags, asset extras."""

    failure = PromotionRefused

    operator_extra_links = (MlflowModelVersionLink(),)

    def __init__(self, *, model_name: str, alias: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.alias = alias

    def _history(self) -> list[AliasRecord]:
        """The signed moves of the alias; a log that does not verify refuses every move."""
        from mlops_ops.core.alias_log import AliasLogError

        try:
            return self.trust.alias_history(self.model_name, self.alias)
        except AliasLogError as err:
            raise PromotionRefused(f"{self.model_name}: no move is made: {err}") from err

    def _verify_target(self, target: str, kind: MoveKind) -> Registration:
        """Load ``target`` as every consumer will (:func:`~mlops_ops.core.model_artifacts.load_trusted`: its
        signature, digest, allow-list scan and format); refuse it, changing nothing, unless it loads.

        Every move onto the alias passes here: force overrides the gate, never this check, because a model
        that cannot be trusted would be loaded by every scoring task.
        """
        import tempfile

        from mlops_ops.core.errors import ModelIntegrityError

        try:
            pinned = self.trust.pin(self.hook, self.model_name, version=target)
        except LookupError as err:
            raise PromotionRefused(
                f"{self.model_name}: {kind} to v{target} refused: version {target} does not exist ({err})"
            ) from err
        except ModelIntegrityError as err:
            raise PromotionRefused(
                f"{self.model_name}: {kind} to v{target} refused; nothing was changed. {err}"
            ) from err
        with tempfile.TemporaryDirectory(prefix="mlops-promote-") as folder:
            try:
                with self.hook.unreachable_as(f"downloading {self.model_name} v{target} to verify it"):
                    trusted, _ = self.trust.load(self.hook, pinned, folder)
            except ModelIntegrityError as err:
                raise PromotionRefused(
                    f"{self.model_name}: {kind} to v{target} refused; nothing was changed. {err}"
                ) from err
        self.log.info(
            "%s v%s: signed registration verified; %s", self.model_name, target, trusted.scan.describe()
        )
        return trusted.registration

    def _move(
        self, context: Context, *, target: str, expected: str | None, kind: MoveKind, actor: str, reason: str
    ) -> dict[str, Any]:
        """The guarded move (:func:`~mlops_ops.core.alias_moves.move_alias`: the signed log first, the registry
        second), refused with :class:`PromotionRefused`; the task's result and asset extras."""
        from mlops_ops.core.alias_log import AliasLogError
        from mlops_ops.core.alias_moves import move_alias
        from mlops_ops.core.promotion import MoveRefused

        ti = context.get("ti")
        try:
            move = move_alias(
                self.hook,
                self.trust,
                model_name=self.model_name,
                alias=self.alias,
                target=target,
                expected=expected,
                kind=kind,
                actor=actor,
                reason=reason,
                airflow_run=f"{getattr(ti, 'dag_id', '')}/{getattr(ti, 'run_id', '')}",
                verify_target=lambda version: self._verify_target(version, kind).gate_passed,
            )
        except AliasLogError as err:  # a log that does not verify refuses every move
            raise PromotionRefused(f"{self.model_name}: no move is made: {err}") from err
        except MoveRefused as err:
            raise PromotionRefused(f"{self.model_name}: {kind} to v{target} refused: {err}") from err
        return self._result(move, context)

    def _result(self, move: AliasMove, context: Context) -> dict[str, Any]:
        from mlops_ops.core import promotion

        result = promotion.summary(move)
        result["model_uri"] = f"models:/{self.model_name}/{move.to_version}"
        for asset in self.outlets or ():
            context["outlet_events"][asset].extra = {
                "model_name": self.model_name,
                "version": move.to_version,
                "alias": self.alias,
                "model_uri": result["model_uri"],
                "previous_version": move.from_version,
                "kind": move.kind,
            }
        return result


class PromoteOperator(_AliasMoveOperator):
    """
    Point ``alias`` (``champion``) at an approved version, with compare-and-set and an audit trail.

    The move happens only if ``alias`` still points at ``expected_version``, the champion the gate compared
    the candidate against; if another move happened in between, the task fails and changes nothing
    (:class:`PromotionRefused`, not retried). The version must exist and have passed its gate, unless
    ``force`` is set, which requires a ``reason`` and an ``actor`` and is recorded as a forced promotion.
    Before any move the version is loaded as every consumer will load it
    (:func:`~mlops_ops.core.model_artifacts.load_trusted`): its signed registration (whose gate verdict is the
    one that counts, not the ``mlops.gate.passed`` tag), its digest, the allow-list scan of every file; a
    version that fails is refused with the reason, even with ``force``. The current champion is the one the
    signed alias log names: an alias moved outside the project is repaired by the next promotion or rollback.
    Every move is appended to the signed alias log (:class:`~mlops_ops.hooks.trust.TrustHook`), and copied for
    reading to a registered-model tag ``mlops.history.<alias>.<seq>`` and ``mlops.promoted`` / ``mlops.demoted``
    tags on the two versions. Run promotions in a one-slot pool (``registry``) so that the
    read-check-set is not interleaved with another.

    A retry after the alias was moved completes the history instead of failing. With outlets, each asset event
    carries ``{"model_name", "version", "alias", "model_uri", "previous_version", "kind"}``.

    :param model_name: the registered model.
    :param version: the version to promote (templated, e.g. from the asset event or an XCom).
    :param expected_version: the version ``alias`` must point at now; ``None`` or ``""`` for "no champion".
    :param alias: the alias to move.
    :param actor: who decided (the approver's name, or ``"auto"``).
    :param reason: why (the approval comment, or the force reason).
    :param force: promote although the version did not pass a gate (needs ``reason`` and ``actor``).
    :param trust_conn_id: the deployment's trust connection (signing key, alias log).
    :param model_card: write the model card (Markdown and HTML) to the version's run and link it from the
        version; a retry after the move writes it again without moving anything.
    :param known_limitations: what the model card lists under known limitations.
    :param model_card_templates: the team's own Jinja2 templates of the card, ``{"markdown": path, "html":
        path}`` (either or both, paths relative to the project root; the wheel's ``mlops_ops/templates/`` for
        the rest). Checked before the alias moves, by rendering them on the target version's facts: an unknown
        format, a template that does not compile or fails to render refuses the promotion and changes nothing.
    :param mlflow_conn_id: MLflow connection.
    :return: ``{"model_name", "alias", "from_version", "to_version", "kind", "actor", "reason", "at",
        "airflow_run", "sequence", "model_uri", "model_card"}`` (``model_card``: the card's artifact URIs).
    """

    template_fields: Sequence[str] = ("model_name", "version", "expected_version", "actor", "reason", "force")

    def __init__(
        self,
        *,
        model_name: str,
        version: str,
        expected_version: str | None,
        alias: str = "champion",
        actor: str = "",
        reason: str = "",
        force: bool | str = False,
        model_card: bool = True,
        known_limitations: Sequence[str] = (),
        model_card_templates: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            model_name=model_name,
            alias=alias,
            **kwargs,
        )
        self.model_card_templates = model_card_templates
        self.version = version
        self.expected_version = expected_version
        self.actor = actor
        self.reason = reason
        self.force = force
        self.model_card = model_card
        self.known_limitations = known_limitations

    def execute(self, context: Context) -> dict[str, Any]:
        templates = self._card_templates(context) if self.model_card else None
        forced = str(self.force).strip().lower() in ("1", "true", "yes")
        expected = (
            str(self.expected_version).strip() if self.expected_version not in (None, "", "None") else None
        )
        result = self._move(
            context,
            target=str(self.version).strip(),
            expected=expected,
            kind="forced promotion" if forced else "promotion",
            actor=str(self.actor or ""),
            reason=str(self.reason or ""),
        )
        if self.model_card:
            result["model_card"] = self._write_model_card(result, templates)
        return result

    def _card_templates(self, context: Context) -> dict[str, Any] | None:
        """The team's card templates found in the project and compiled, before anything moves."""
        from mlops_ops.core import model_card
        from mlops_ops.operators.inputs import dag_folder_of, project_path

        if not self.model_card_templates:
            return None
        with self.failing(f"{self.model_name}: promotion refused, nothing was changed", FileNotFoundError):
            dag_folder = dag_folder_of(context)
            found = {kind: project_path(path, dag_folder) for kind, path in self.model_card_templates.items()}
            templates = dict(model_card.check_templates(found))
            # Rendered once on the target's facts: what only shows at render time fails now, not after the move.
            self.hook.preview_model_card(
                self.model_name,
                str(self.version).strip(),
                templates,
                alias=self.alias,
                approver=str(self.actor or ""),
                approval_comment=str(self.reason or ""),
                known_limitations=list(self.known_limitations),
            )
            return templates

    def _write_model_card(self, move: dict[str, Any], templates: dict[str, Any] | None) -> dict[str, str]:
        uris = self.hook.write_model_card(
            self.model_name,
            move["to_version"],
            templates=templates,
            alias=self.alias,
            approver=move["actor"],
            approval_comment=move["reason"],
            forced=move["kind"] == "forced promotion",
            force_reason=move["reason"] if move["kind"] == "forced promotion" else None,
            promoted_at=move["at"],
            previous_champion=move["from_version"],
            known_limitations=list(self.known_limitations),
        )
        self.log.info("Model card of v%s: %s", move["to_version"], uris["html_uri"])
        return uris


class RollbackOperator(_AliasMoveOperator):
    """
    Move ``alias`` back: to the version it pointed at before the current one (from the signed alias log), or
    to a chosen version, which must have passed a gate (by its signed registration). Requires a reason; audited
    like a promotion. It also repairs an alias moved outside the project.

    :param model_name: the registered model.
    :param reason: why (required: an empty reason is refused).
    :param target_version: the version to roll back to; empty: the previous one from the history.
    :param alias: the alias to move.
    :param actor: who asked for the rollback.
    :param mlflow_conn_id: MLflow connection.
    :param trust_conn_id: the deployment's trust connection (signing key, alias log).
    :return: the move, as :class:`PromoteOperator` returns it (``kind`` is ``"rollback"``).
    """

    template_fields: Sequence[str] = ("model_name", "reason", "target_version", "actor")

    def __init__(
        self,
        *,
        model_name: str,
        reason: str,
        target_version: str | None = None,
        alias: str = "champion",
        actor: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(
            model_name=model_name,
            alias=alias,
            **kwargs,
        )
        self.reason = reason
        self.target_version = target_version
        self.actor = actor

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_ops.core import promotion

        # Where the alias is and was, by the signed log (the registry's alias and tags can be rewritten).
        moves = self._history()
        current = moves[-1].to_version if moves else None
        if current is None:
            raise PromotionRefused(
                f"{self.model_name} has no recorded {self.alias!r} move in the signed alias log: nothing to roll back"
            )
        chosen = str(self.target_version).strip() if self.target_version not in (None, "", "None") else None
        if chosen is None:
            try:
                chosen = promotion.rollback_target(
                    [promotion.AliasMove(**record.as_move()) for record in moves], current
                )
            except promotion.MoveRefused as err:
                raise PromotionRefused(f"{self.model_name}: rollback refused: {err}") from err
        return self._move(
            context,
            target=chosen,
            expected=current,
            kind="rollback",
            actor=str(self.actor or ""),
            reason=str(self.reason or ""),
        )


class PromotionRequestOperator(RegistryOperator):
    """
    Gather the evidence an approver needs to promote a candidate version, and decide if a human must answer.

    The candidate is ``version``, or the version ``candidate_alias`` points at. Its gate decision (logged by
    ``EvaluateGateOperator`` as ``gate/decision.json`` on the training run) names the champion it was compared
    against, which becomes the compare-and-set expectation of the promotion. ``body`` is Markdown for the
    approval form: each metric for challenger and champion with the difference, every gate check with its
    threshold and verdict, and the data versions both were trained on.

    :param model_name: the registered model.
    :param version: the candidate version (templated); empty: the one ``candidate_alias`` points at.
    :param policy: ``"manual"`` (a human approves) or ``"auto"`` (promote when the gate passed) (templated).
    :param candidate_alias: the alias naming the candidate when ``version`` is empty.
    :param champion_alias: the alias the promotion moves.
    :param mlflow_conn_id: MLflow connection.
    :param trust_conn_id: the deployment's trust connection: the candidate must carry a valid signed
        registration (whose gate verdict is shown), the aliases are read from the signed alias log.
    :return: ``{"model_name", "version", "expected_version", "gate_passed", "policy", "approval_needed",
        "subject", "body", "data_version", "champion_data_version"}``.
    """

    template_fields: Sequence[str] = ("model_name", "version", "policy")

    def __init__(
        self,
        *,
        model_name: str,
        version: str | None = None,
        policy: str = "manual",
        candidate_alias: str = "challenger",
        champion_alias: str = "champion",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.version = version
        self.policy = policy
        self.candidate_alias = candidate_alias
        self.champion_alias = champion_alias

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_ops.core import lineage

        policy = str(self.policy or "manual").strip().lower()
        if policy not in ("manual", "auto"):
            raise PromotionRefused(f"promotion policy must be 'manual' or 'auto', got {self.policy!r}")
        version, candidate, gate_passed = self._candidate()
        decision = (
            self.hook.load_run_json(candidate.run_id, "gate/decision.json") if candidate.run_id else None
        )
        expected, champion_tags = self._expected_champion(decision)
        body = approval_body(
            self.model_name,
            version,
            expected,
            decision,
            candidate.tags.get(lineage.DATA_VERSION),
            champion_tags.get(lineage.DATA_VERSION),
        )
        return {
            "model_name": self.model_name,
            "version": version,
            "expected_version": expected,
            "gate_passed": gate_passed,
            "policy": policy,
            "approval_needed": policy == "manual" or not gate_passed,
            "subject": f"Promote {self.model_name} v{version} to {self.champion_alias}?",
            "body": body,
            "data_version": candidate.tags.get(lineage.DATA_VERSION),
            "champion_data_version": champion_tags.get(lineage.DATA_VERSION),
        }

    def _candidate(self) -> tuple[str, Any, bool]:
        """The version to promote (``version``, else the candidate alias as the signed alias log recorded it), its
        registry entry and whether its signed registration says it passed the gate; refused when it does not exist
        or its registration does not verify."""
        from mlflow.exceptions import MlflowException

        from mlops_ops.core.errors import ModelIntegrityError
        from mlops_ops.core.model_artifacts import verify_registration

        version = str(self.version).strip() if self.version not in (None, "", "None") else None
        try:
            if version is None:
                version = self.trust.pin(self.hook, self.model_name, alias=self.candidate_alias).version
            candidate = self.hook.get_model_version(self.model_name, version)
            pinned = self.hook.pin_version(self.model_name, version=version)
            registration = verify_registration(pinned, self.trust.verification_keys)
        except LookupError as err:
            raise PromotionRefused(f"{err}; and no version was given") from err
        except MlflowException as err:
            raise PromotionRefused(f"{self.model_name} v{version} does not exist: {err}") from err
        except ModelIntegrityError as err:
            raise PromotionRefused(str(err)) from err
        return str(version), candidate, registration.gate_passed

    def _expected_champion(self, decision: dict[str, Any] | None) -> tuple[str | None, dict[str, str]]:
        """The champion the promotion expects to replace (the compare-and-set's expectation) and its tags.

        The gate compared against a champion: that is the expectation. With no decision on record, the champion
        as the signed alias log says it is now."""
        from mlflow.exceptions import MlflowException

        if decision:
            expected = decision.get("champion_version")
        else:
            champions = self.trust.alias_history(self.model_name, self.champion_alias)
            expected = champions[-1].to_version if champions else None
        if not expected:
            return None, {}
        try:
            return str(expected), self.hook.get_version_tags(self.model_name, str(expected))
        except MlflowException:
            return str(expected), {}


def approval_body(
    model_name: str,
    version: str,
    champion: str | None,
    decision: dict[str, Any] | None,
    data_version: str | None,
    champion_data_version: str | None,
) -> str:
    """Markdown for the approval form: metrics side by side, gate checks, data versions."""

    def number(value: Any, count: bool = False) -> str:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "n/a"
        # Counts read as counts (a decision read back from JSON may hold 10017.0), scores with four decimals.
        return f"{int(value):,}" if count else f"{value:.4f}"

    lines = [f"**{model_name} v{version}** vs champion **{f'v{champion}' if champion else 'none'}**", ""]
    if decision:
        verdict = "PASSED" if decision.get("passed") else "FAILED"
        lines += [
            f"Gate: **{verdict}**",
            "",
            "| metric | challenger | champion | difference |",
            "|---|---|---|---|",
        ]
        challenger_metrics = decision.get("challenger_metrics") or {}
        champion_metrics = decision.get("champion_metrics") or {}
        for name in ("roc_auc", "log_loss", "brier_score", "accuracy", "precision", "recall", "f1", "rows"):
            if name not in challenger_metrics:
                continue
            mine, theirs = challenger_metrics.get(name), champion_metrics.get(name)
            count = name == "rows"
            difference = "n/a"
            if isinstance(mine, int | float) and isinstance(theirs, int | float):
                difference = f"{int(mine - theirs):+,}" if count else f"{mine - theirs:+.4f}"
            lines.append(f"| {name} | {number(mine, count)} | {number(theirs, count)} | {difference} |")
        lines += ["", "| check | value | threshold | verdict |", "|---|---|---|---|"]
        for check in decision.get("checks") or []:
            threshold = f"{check.get('comparison', '')} {number(check.get('threshold'))}".strip()
            lines.append(
                f"| {check.get('name')} | {number(check.get('value'))} | {threshold} | "
                f"{'PASS' if check.get('passed') else 'FAIL'} |"
            )
    else:
        lines.append("No gate decision is recorded for this version: promoting it needs force and a reason.")
    # A list, not two lines: Markdown would join consecutive lines into one paragraph.
    lines += [
        "",
        f"- Data version: `{data_version or 'n/a'}`",
        f"- Champion's data version: `{champion_data_version or 'n/a'}`",
    ]
    return "\n".join(lines)
