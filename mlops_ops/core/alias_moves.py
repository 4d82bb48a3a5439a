"""The guarded alias move (promotion, forced promotion, rollback): the signed alias log first, the registry second.

The registry's alias can be moved by anyone with write access to MLflow (``MlflowClient``, the UI's "Promote
model"), so the signed, hash-chained alias log says where an alias is, and every move is recorded there before
the registry's pointer is set. A try that dies between the two is completed by its retry; a pointer moved outside
the project is set back (or repaired by the next move) and reported; a target is verified as every consumer will
load it before anything changes.

The workflow takes two small protocols, so it runs against the hooks in a task
(:class:`~mlops_ops.hooks.mlflow.MlflowHook`, :class:`~mlops_ops.hooks.trust.TrustHook`) and against fakes in
unit tests; the caller serialises moves of one model (the operators run in the one-slot ``registry`` pool).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from mlops_ops.core import promotion
from mlops_ops.core.alias_log import AliasLogConflict
from mlops_ops.core.promotion import AliasMove, MoveKind, MoveRefused

if TYPE_CHECKING:
    from mlops_ops.core.alias_log import AliasRecord

log = logging.getLogger(__name__)


class AliasRegistry(Protocol):
    """What the move needs of the model registry."""

    def get_aliases(self, model_name: str) -> dict[str, str]: ...

    def set_alias(self, model_name: str, alias: str, version: str) -> None: ...

    def set_model_tag(self, model_name: str, key: str, value: str) -> None: ...

    def set_version_tags(self, model_name: str, version: str, tags: dict[str, str]) -> None: ...


class SignedAliasLog(Protocol):
    """What the move needs of the signed alias log."""

    def alias_history(self, model_name: str, alias: str) -> list[AliasRecord]: ...

    def record_alias_move(self, **move: Any) -> AliasRecord: ...


def move_alias(
    registry: AliasRegistry,
    alias_log: SignedAliasLog,
    *,
    model_name: str,
    alias: str,
    target: str,
    expected: str | None,
    kind: MoveKind,
    actor: str,
    reason: str,
    airflow_run: str,
    verify_target: Callable[[str], bool],
) -> AliasMove:
    """Move ``alias`` of ``model_name`` to version ``target``, or refuse and change nothing.

    1. The alias log's last record says where the alias is (``current``). When it names ``target`` already and
       this run recorded it (an earlier try died before the registry was set), the move is completed; when the
       registry's pointer was moved away outside the project, it is set back (``target`` verified again).
    2. Otherwise ``verify_target(target)`` loads the version as every consumer will (signature, digest, scan)
       and returns whether it passed the gate; :func:`~mlops_ops.core.promotion.check_move` judges the move
       against ``expected`` (compare-and-set), the gate and the reason; the move is signed into the log.
    3. The registry's alias is set and read back; the move is copied to a registered-model tag (readable in the
       MLflow UI) and the promoted and demoted versions are tagged.

    :param expected: the version the caller believes the alias points at (``None``: no expectation).
    :param airflow_run: ``dag_id/run_id`` of the task moving it (what recognises a retry of the same move).
    :param verify_target: raises :class:`MoveRefused` (or a
        :class:`~mlops_ops.core.errors.ModelIntegrityError`) when the version must not be served; returns
        whether it passed the gate.
    :raises MoveRefused: the move would break an invariant (stale expectation, no gate, no reason), or the alias
        moved again while this move was made.
    """
    moves = alias_log.alias_history(model_name, alias)
    logged = moves[-1].to_version if moves else None
    in_registry = registry.get_aliases(model_name).get(alias)
    record: AliasRecord
    if moves and logged == target and moves[-1].airflow_run == airflow_run and expected != target:
        log.info("%s -> v%s was recorded by an earlier try of this run: completing it", alias, target)
        record = moves[-1]
    elif moves and logged == target and in_registry != target:
        # The log already names the target: the registry's pointer was moved away outside the project. Setting
        # it back repairs the registry; the log needs no new record.
        log.warning(
            "%s@%s was moved outside the project to v%s; setting it back to v%s, as the signed log records",
            model_name,
            alias,
            in_registry,
            target,
        )
        verify_target(target)
        record = moves[-1]
    else:
        if in_registry != logged:
            log.warning(
                "%s@%s is v%s in the registry but v%s in the signed alias log: it was moved outside the project; "
                "this %s repairs it",
                model_name,
                alias,
                in_registry,
                logged,
                kind,
            )
        passed_gate = verify_target(target)
        promotion.check_move(
            alias=alias,
            current=logged,
            expected=expected,
            target=target,
            target_exists=True,
            target_passed_gate=passed_gate,
            kind=kind,
            reason=reason,
            actor=actor,
        )
        try:
            record = alias_log.record_alias_move(
                model_name=model_name,
                alias=alias,
                to_version=target,
                move=kind,
                actor=actor,
                reason=reason,
                at=datetime.now(UTC).isoformat(timespec="seconds"),
                airflow_run=airflow_run,
            )
        except AliasLogConflict as err:
            raise MoveRefused(f"{alias} moved again while v{target} was being promoted: {err}") from err
    # Recorded first, set second: a try that dies in between is completed by its retry (above).
    registry.set_alias(model_name, alias, target)
    if registry.get_aliases(model_name).get(alias) != target:
        raise MoveRefused(f"{alias} moved again while v{target} was being promoted")
    move = AliasMove(
        model_name=model_name,
        alias=alias,
        from_version=record.from_version,
        to_version=target,
        kind=kind,
        actor=record.actor,
        reason=record.reason,
        at=record.at,
        airflow_run=record.airflow_run,
        sequence=record.sequence,
    )
    # A readable copy for the MLflow UI; the signed log is what is trusted.
    registry.set_model_tag(model_name, move.tag_key(), move.to_json())
    registry.set_version_tags(model_name, move.to_version, {promotion.PROMOTED: move.version_tag()})
    if move.from_version:
        registry.set_version_tags(model_name, move.from_version, {promotion.DEMOTED: move.version_tag()})
    log.info(
        "%s: %s v%s -> v%s by %s (%s)", model_name, alias, move.from_version, target, actor, reason or kind
    )
    return move
