"""Move the ``champion`` alias: promotion of an approved challenger, forced promotion, rollback. Audited."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from mlops_ops.hooks.mlflow import MlflowHook

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlops_ops.core.promotion import AliasMove, MoveKind


class PromotionRefused(AirflowFailException):
    """The move would break the registry's invariants; nothing was changed. Retrying would not help."""


class _AliasMoveOperator(BaseOperator):
    """What promotion and rollback share: compare-and-set of an alias, history, version tags, asset extras."""

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

    def _move(
        self, context: Context, *, target: str, expected: str | None, kind: MoveKind, actor: str, reason: str
    ) -> dict[str, Any]:
        from mlops_ops.core import lineage, promotion

        client = self.hook.client
        model_tags = dict(client.get_registered_model(self.model_name).tags)
        current = self.hook.get_aliases(self.model_name).get(self.alias)
        moves = promotion.history(model_tags, self.alias)
        if current == target and current != expected:
            # An earlier try of this task set the alias and died before (or after) writing the history.
            if moves and moves[-1].to_version == target:
                self.log.info("%s already points at v%s (an earlier try): nothing to do", self.alias, target)
                return self._result(moves[-1], context)
            self.log.warning(
                "%s points at v%s without history (an interrupted try): recording it", self.alias, target
            )
        else:
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
            self.hook.set_alias(self.model_name, self.alias, target)
            if self.hook.get_aliases(self.model_name).get(self.alias) != target:
                raise PromotionRefused(f"{self.alias} moved again while v{target} was being promoted")

        ti = context.get("ti")
        move = promotion.AliasMove(
            model_name=self.model_name,
            alias=self.alias,
            from_version=expected if current == target else current,
            to_version=target,
            kind=kind,
            actor=actor,
            reason=reason,
            at=datetime.now(UTC).isoformat(timespec="seconds"),
            airflow_run=f"{getattr(ti, 'dag_id', '')}/{getattr(ti, 'run_id', '')}",
            sequence=promotion.next_sequence(model_tags, self.alias),
        )
        client.set_registered_model_tag(self.model_name, move.tag_key(), move.to_json())
        client.set_model_version_tag(self.model_name, target, promotion.PROMOTED, move.version_tag())
        if move.from_version:
            client.set_model_version_tag(
                self.model_name, move.from_version, promotion.DEMOTED, move.version_tag()
            )
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
    Every move is recorded as a registered-model tag ``mlops.history.<alias>.<seq>`` (who, when, why, from,
    to, the Airflow run) and as ``mlops.promoted`` / ``mlops.demoted`` tags on the two versions. Run promotions
    in a one-slot pool (``registry``) so that the read-check-set is not interleaved with another.

    A retry after the alias was moved completes the history instead of failing. With outlets, each asset event
    carries ``{"model_name", "version", "alias", "model_uri", "previous_version", "kind"}``.

    :param model_name: the registered model.
    :param version: the version to promote (templated, e.g. from the asset event or an XCom).
    :param expected_version: the version ``alias`` must point at now; ``None`` or ``""`` for "no champion".
    :param alias: the alias to move.
    :param actor: who decided (the approver's name, or ``"auto"``).
    :param reason: why (the approval comment, or the force reason).
    :param force: promote although the version did not pass a gate (needs ``reason`` and ``actor``).
    :param mlflow_conn_id: MLflow connection.
    :return: ``{"model_name", "alias", "from_version", "to_version", "kind", "actor", "reason", "at",
        "airflow_run", "sequence", "model_uri"}``.
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
        mlflow_conn_id: str = MlflowHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(model_name=model_name, alias=alias, mlflow_conn_id=mlflow_conn_id, **kwargs)
        self.version = version
        self.expected_version = expected_version
        self.actor = actor
        self.reason = reason
        self.force = force

    def execute(self, context: Context) -> dict[str, Any]:
        forced = str(self.force).strip().lower() in ("1", "true", "yes")
        expected = (
            str(self.expected_version).strip() if self.expected_version not in (None, "", "None") else None
        )
        return self._move(
            context,
            target=str(self.version).strip(),
            expected=expected,
            kind="forced promotion" if forced else "promotion",
            actor=str(self.actor or ""),
            reason=str(self.reason or ""),
        )


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
