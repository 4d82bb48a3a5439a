"""Move the ``champion`` alias: promotion of an approved challenger, forced promotion, rollback. Audited."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from mlops_ops.hooks.mlflow import MlflowHook
from mlops_ops.links.mlflow import MlflowModelVersionLink

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlops_ops.core.promotion import AliasMove, MoveKind


class PromotionRefused(AirflowFailException):
    """The move would break the registry's invariants; nothing was changed. Retrying would not help."""


class _AliasMoveOperator(BaseOperator):
    """What promotion and rollback share: compare-and-set of an alias, history, version tags, asset extras."""

    operator_extra_links = (MlflowModelVersionLink(),)

    def __init__(self, *, model_name: str, alias: str, mlflow_conn_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.alias = alias
        self.mlflow_conn_id = mlflow_conn_id

    @cached_property
    def hook(self) -> MlflowHook:
        """The MLflow hook of ``mlflow_conn_id``."""
        return MlflowHook(mlflow_conn_id=self.mlflow_conn_id)

    def _version_tags(self, version: str) -> dict[str, str] | None:
        from mlflow.exceptions import MlflowException

        try:
            return dict(self.hook.client.get_model_version(self.model_name, version).tags)
        except MlflowException:
            return None

    def _scan(self, target: str, kind: MoveKind) -> None:
        """Refuse ``target`` unless its artifact's pickle-based files are safe to load; nothing is changed.

        Every move onto the alias (promotion, forced promotion, rollback) passes here: force overrides the
        gate, never this scan, because a pickle that runs code on load would run it in every scoring task.
        """
        import tempfile

        from mlops_ops.core import artifact_scan

        pinned = self.hook.pin_version(self.model_name, version=target)
        with tempfile.TemporaryDirectory(prefix="mlops-promote-") as folder:
            try:
                local = self.hook.download_model(pinned, folder)
            except Exception as err:
                # Retried (a server may be briefly down): not a PromotionRefused, which is final.
                raise RuntimeError(
                    f"{self.model_name}: {kind} to v{target} refused: its artifact at {pinned.source} could "
                    f"not be downloaded to be scanned ({type(err).__name__}: {err}); nothing was changed"
                ) from err
            try:
                report = artifact_scan.require_safe(local, f"{self.model_name} v{target}")
            except artifact_scan.UnsafeArtifactError as err:
                raise PromotionRefused(
                    f"{self.model_name}: {kind} to v{target} refused; nothing was changed. {err}"
                ) from err
        self.log.info("%s v%s: %s", self.model_name, target, report.describe())

    def _move(
        self, context: Context, *, target: str, expected: str | None, kind: MoveKind, actor: str, reason: str
    ) -> dict[str, Any]:
        from mlops_ops.core import lineage, promotion

        client = self.hook.client
        model_tags = dict(client.get_registered_model(self.model_name).tags)
        current = self.hook.get_aliases(self.model_name).get(self.alias)
        moves = promotion.history(model_tags, self.alias)
        ti = context.get("ti")
        this_run = f"{getattr(ti, 'dag_id', '')}/{getattr(ti, 'run_id', '')}"
        recorded_by_this_run = (
            bool(moves) and moves[-1].to_version == target and moves[-1].airflow_run == this_run
        )
        if current == target and current != expected and recorded_by_this_run:
            self.log.info(
                "%s already points at v%s (an earlier try of this run): completing its version tags",
                self.alias,
                target,
            )
            # That try may have died between the history tag and the version tags: setting them is idempotent.
            self._tag_versions(moves[-1])
            return self._result(moves[-1], context)
        if current == target and current != expected and not (moves and moves[-1].to_version == target):
            # An earlier try set the alias and died before writing the history: complete it.
            self.log.warning(
                "%s points at v%s without history (an interrupted try): recording it", self.alias, target
            )
        else:
            # Includes another run having promoted this same version meanwhile: its expectation was met, not
            # ours, so this one is refused (of two promotions decided against one champion, one wins).
            target_tags = self._version_tags(target)
            try:
                promotion.check_move(
                    alias=self.alias,
                    current=current,
                    expected=expected,
                    target=target,
                    target_exists=target_tags is not None,
                    target_passed_gate=(target_tags or {}).get(lineage.GATE_PASSED) == "true",
                    kind=kind,
                    reason=reason,
                    actor=actor,
                )
            except promotion.MoveRefused as err:
                raise PromotionRefused(f"{self.model_name}: {kind} to v{target} refused: {err}") from err
            self._scan(target, kind)
            self.hook.set_alias(self.model_name, self.alias, target)
            if self.hook.get_aliases(self.model_name).get(self.alias) != target:
                raise PromotionRefused(f"{self.alias} moved again while v{target} was being promoted")

        move = promotion.AliasMove(
            model_name=self.model_name,
            alias=self.alias,
            from_version=expected if current == target else current,
            to_version=target,
            kind=kind,
            actor=actor,
            reason=reason,
            at=datetime.now(UTC).isoformat(timespec="seconds"),
            airflow_run=this_run,
            sequence=promotion.next_sequence(model_tags, self.alias),
        )
        client.set_registered_model_tag(self.model_name, move.tag_key(), move.to_json())
        self._tag_versions(move)
        self.log.info(
            "%s: %s v%s -> v%s by %s (%s)",
            self.model_name,
            self.alias,
            move.from_version,
            target,
            actor,
            reason or kind,
        )
        return self._result(move, context)

    def _tag_versions(self, move: AliasMove) -> None:
        """Tag the versions a recorded ``move`` promoted (``mlops.promoted``) and demoted (``mlops.demoted``)."""
        from mlops_ops.core import promotion

        client = self.hook.client
        client.set_model_version_tag(self.model_name, move.to_version, promotion.PROMOTED, move.version_tag())
        if move.from_version:
            client.set_model_version_tag(
                self.model_name, move.from_version, promotion.DEMOTED, move.version_tag()
            )

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
    Before any move the version's artifact is downloaded and its pickle-based files are scanned (modelscan,
    :mod:`mlops_ops.core.artifact_scan`); an unsafe or unanalysable one is refused with a report naming each
    file and what was found, even with ``force``. Every move is recorded as a registered-model tag
    ``mlops.history.<alias>.<seq>`` (who, when, why, from, to, the Airflow run) and as ``mlops.promoted`` /
    ``mlops.demoted`` tags on the two versions. Run promotions in a one-slot pool (``registry``) so that the
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
    :param model_card: write the model card (Markdown and HTML) to the version's run and link it from the
        version; a retry after the move writes it again without moving anything.
    :param known_limitations: what the model card lists under known limitations.
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
        mlflow_conn_id: str = MlflowHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(model_name=model_name, alias=alias, mlflow_conn_id=mlflow_conn_id, **kwargs)
        self.version = version
        self.expected_version = expected_version
        self.actor = actor
        self.reason = reason
        self.force = force
        self.model_card = model_card
        self.known_limitations = known_limitations

    def execute(self, context: Context) -> dict[str, Any]:
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
            result["model_card"] = self._write_model_card(result)
        return result

    def _write_model_card(self, move: dict[str, Any]) -> dict[str, str]:
        from mlops_ops.core import model_card

        client = self.hook.client
        facts = model_card.build_facts(
            client,
            self.model_name,
            move["to_version"],
            alias=self.alias,
            approver=move["actor"],
            approval_comment=move["reason"],
            forced=move["kind"] == "forced promotion",
            force_reason=move["reason"] if move["kind"] == "forced promotion" else None,
            promoted_at=move["at"],
            previous_champion=move["from_version"],
            known_limitations=list(self.known_limitations),
        )
        uris = model_card.log_model_card(client, self.model_name, move["to_version"], facts)
        self.log.info("Model card of v%s: %s", move["to_version"], uris["html_uri"])
        return uris


class RollbackOperator(_AliasMoveOperator):
    """
    Move ``alias`` back: to the version it pointed at before the current one (from the history), or to a
    chosen version, which must have passed a gate. Requires a reason; audited like a promotion.

    :param model_name: the registered model.
    :param reason: why (required: an empty reason is refused).
    :param target_version: the version to roll back to; empty: the previous one from the history.
    :param alias: the alias to move.
    :param actor: who asked for the rollback.
    :param mlflow_conn_id: MLflow connection.
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
        mlflow_conn_id: str = MlflowHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(model_name=model_name, alias=alias, mlflow_conn_id=mlflow_conn_id, **kwargs)
        self.reason = reason
        self.target_version = target_version
        self.actor = actor

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_ops.core import promotion

        current = self.hook.get_aliases(self.model_name).get(self.alias)
        if current is None:
            raise PromotionRefused(f"{self.model_name} has no {self.alias!r} alias: nothing to roll back")
        chosen = str(self.target_version).strip() if self.target_version not in (None, "", "None") else None
        if chosen is None:
            moves = promotion.history(
                dict(self.hook.client.get_registered_model(self.model_name).tags), self.alias
            )
            try:
                chosen = promotion.rollback_target(moves, current)
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


class PromotionRequestOperator(BaseOperator):
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
        mlflow_conn_id: str = MlflowHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.version = version
        self.policy = policy
        self.candidate_alias = candidate_alias
        self.champion_alias = champion_alias
        self.mlflow_conn_id = mlflow_conn_id

    @cached_property
    def hook(self) -> MlflowHook:
        """The MLflow hook of ``mlflow_conn_id``."""
        return MlflowHook(mlflow_conn_id=self.mlflow_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        import mlflow
        from mlflow.exceptions import MlflowException

        from mlops_ops.core import lineage

        policy = str(self.policy or "manual").strip().lower()
        if policy not in ("manual", "auto"):
            raise PromotionRefused(f"promotion policy must be 'manual' or 'auto', got {self.policy!r}")
        aliases = self.hook.get_aliases(self.model_name)
        version = str(self.version).strip() if self.version not in (None, "", "None") else None
        version = version or aliases.get(self.candidate_alias)
        if not version:
            raise PromotionRefused(
                f"{self.model_name} has no {self.candidate_alias!r} alias and no version was given"
            )
        try:
            candidate = self.hook.client.get_model_version(self.model_name, version)
        except MlflowException as err:
            raise PromotionRefused(f"{self.model_name} v{version} does not exist: {err}") from err
        decision = None
        if candidate.run_id:
            run = self.hook.client.get_run(candidate.run_id)
            try:
                decision = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/gate/decision.json")
            except (MlflowException, OSError):
                decision = None
        gate_passed = candidate.tags.get(lineage.GATE_PASSED) == "true"
        # The gate compared against a champion: that is the expectation of the compare-and-set. With no
        # decision on record, expect the champion as it is now.
        expected = (decision or {}).get("champion_version") if decision else aliases.get(self.champion_alias)
        champion_tags = {}
        if expected:
            try:
                champion_tags = dict(self.hook.client.get_model_version(self.model_name, str(expected)).tags)
            except MlflowException:
                champion_tags = {}
        subject = f"Promote {self.model_name} v{version} to {self.champion_alias}?"
        body = approval_body(
            self.model_name,
            version,
            str(expected) if expected else None,
            decision,
            candidate.tags.get(lineage.DATA_VERSION),
            champion_tags.get(lineage.DATA_VERSION),
        )
        return {
            "model_name": self.model_name,
            "version": str(version),
            "expected_version": str(expected) if expected else None,
            "gate_passed": gate_passed,
            "policy": policy,
            "approval_needed": policy == "manual" or not gate_passed,
            "subject": subject,
            "body": body,
            "data_version": candidate.tags.get(lineage.DATA_VERSION),
            "champion_data_version": champion_tags.get(lineage.DATA_VERSION),
        }


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
            both = isinstance(mine, int | float) and isinstance(theirs, int | float)
            count = name == "rows"
            difference = "n/a"
            if both:
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
