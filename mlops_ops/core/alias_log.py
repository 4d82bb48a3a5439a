"""The signed, append-only log of every alias move the project makes, kept outside the registry.

An MLflow alias can be moved by anyone with write access to the registry (``MlflowClient``, the MLflow UI's
"Promote model" button), and registry tags can be rewritten. So each move made by RegisterOperator,
PromoteOperator or RollbackOperator is also appended here as a record signed with the deployment's key
(:mod:`mlops_ops.core.signing`), chained to the record before it by its sha256. Consumers (batch scoring,
drift, serving, promotion) trust an alias only when the newest record of that alias names the version the
registry shows; anything else was moved outside the project and is refused until a promotion or a rollback
records a move again.

Two stores: a JSON-lines file (the embedded default, ``.mlops/trust/alias-log.jsonl``; appends are serialised
with ``flock``) and a table in a SQL database (the production profile: PostgreSQL, table ``mlops_alias_log``,
one row per record, unique per model, alias and sequence, so two concurrent appends cannot both win).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from mlops_ops.core.errors import MlopsError, ModelIntegrityError
from mlops_ops.core.signing import ALIAS_MOVE, SignatureError, SigningKey, VerificationKeys

TABLE = "mlops_alias_log"


class AliasLogError(ModelIntegrityError):
    """The alias log cannot be trusted (a record does not verify, the chain is broken) or an alias is not what
    the log says it should be; retrying will not help."""


class AliasLogConflict(MlopsError, RuntimeError):
    """Another move of the same alias was appended at the same moment; the caller may read again and retry."""


@dataclass(frozen=True)
class AliasRecord:
    """One signed move of ``alias``.

    :param model_name: the registered model.
    :param alias: the alias moved (``champion``, ``challenger``).
    :param sequence: 1 for the first move of this alias, then 2, 3...
    :param from_version: the version it pointed at before, per the log (``None``: none).
    :param to_version: the version it points at after the move.
    :param move: ``"registration"``, ``"promotion"``, ``"forced promotion"`` or ``"rollback"``.
    :param actor: who decided.
    :param reason: why.
    :param at: when, ISO 8601 UTC.
    :param airflow_run: ``dag_id/run_id`` of the task that moved it.
    :param previous: sha256 of the previous record's stored envelope ("" for the first).
    :param key_id: the id of the key that signed it (filled in when read).
    """

    model_name: str
    alias: str
    sequence: int
    from_version: str | None
    to_version: str
    move: str
    actor: str
    reason: str
    at: str
    airflow_run: str = ""
    previous: str = ""
    key_id: str = ""

    def payload(self) -> dict[str, Any]:
        """The signed payload (``key_id`` is the envelope's, not part of it)."""
        values = asdict(self)
        values.pop("key_id")
        return {"kind": ALIAS_MOVE, **values}

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return asdict(self)

    def as_move(self) -> dict[str, Any]:
        """The keyword arguments of :class:`mlops_ops.core.promotion.AliasMove` for this record."""
        return {
            "model_name": self.model_name,
            "alias": self.alias,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "kind": self.move,
            "actor": self.actor,
            "reason": self.reason,
            "at": self.at,
            "airflow_run": self.airflow_run,
            "sequence": self.sequence,
        }


class AliasLogReader(Protocol):
    """What verifying a log needs: the envelopes of an alias's records, in sequence order."""

    def read(self, model_name: str, alias: str) -> list[str]:
        """The stored envelopes (JSON text) of ``model_name``'s ``alias``, by sequence."""

    def describe(self) -> str:
        """Where the log is, for messages (no credentials)."""


class AliasLogStore(AliasLogReader, Protocol):
    """Where the envelopes of an alias's records are kept, in sequence order, and appended to."""

    def append(self, model_name: str, alias: str, sequence: int, envelope: str) -> None:
        """Store ``envelope`` as record ``sequence``; :class:`AliasLogConflict` when that sequence exists."""


class FileAliasLog:
    """The log as a JSON-lines file: one ``{"model_name", "alias", "sequence", "envelope"}`` per line.

    :param path: the file (created with its folder on the first append, mode 0600).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def describe(self) -> str:
        return str(self.path)

    def _lines(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        entries = []
        for number, line in enumerate(self.path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                raise AliasLogError(f"alias log {self.path}: line {number} is not JSON") from None
            if not isinstance(entry, dict):
                raise AliasLogError(f"alias log {self.path}: line {number} is not a record")
            entries.append(entry)
        return entries

    def read(self, model_name: str, alias: str) -> list[str]:
        found = [e for e in self._lines() if e.get("model_name") == model_name and e.get("alias") == alias]
        return [
            str(entry.get("envelope", "")) for entry in sorted(found, key=lambda e: int(e.get("sequence", 0)))
        ]

    def append(self, model_name: str, alias: str, sequence: int, envelope: str) -> None:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(
            {"model_name": model_name, "alias": alias, "sequence": sequence, "envelope": envelope}
        )
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(descriptor, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                if any(
                    e.get("model_name") == model_name
                    and e.get("alias") == alias
                    and e.get("sequence") == sequence
                    for e in self._lines()
                ):
                    raise AliasLogConflict(f"{model_name}@{alias} record {sequence} exists already")
                handle.write(line + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


class SqlAliasLog:
    """The log as table ``mlops_alias_log`` in a SQL database (created when missing).

    :param url: a SQLAlchemy URL (``postgresql+psycopg2://user@host/db``, ``sqlite:////path/log.db``).
    """

    def __init__(self, url: str) -> None:
        self.url = url

    def describe(self) -> str:
        from sqlalchemy.engine import make_url

        return make_url(self.url).render_as_string(hide_password=True)

    def _table(self) -> tuple[Any, Any]:
        import sqlalchemy as sa

        engine = sa.create_engine(self.url, pool_pre_ping=True)
        metadata = sa.MetaData()
        table = sa.Table(
            TABLE,
            metadata,
            sa.Column("model_name", sa.String(256), primary_key=True),
            sa.Column("alias", sa.String(256), primary_key=True),
            sa.Column("sequence", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("envelope", sa.Text, nullable=False),
        )
        metadata.create_all(engine, checkfirst=True)
        return engine, table

    def read(self, model_name: str, alias: str) -> list[str]:
        import sqlalchemy as sa

        engine, table = self._table()
        try:
            with engine.connect() as connection:
                rows = connection.execute(
                    sa.select(table.c.envelope)
                    .where(table.c.model_name == model_name, table.c.alias == alias)
                    .order_by(table.c.sequence)
                )
                return [row[0] for row in rows]
        finally:
            engine.dispose()

    def append(self, model_name: str, alias: str, sequence: int, envelope: str) -> None:
        import sqlalchemy as sa

        engine, table = self._table()
        try:
            with engine.begin() as connection:
                connection.execute(
                    table.insert().values(
                        model_name=model_name, alias=alias, sequence=sequence, envelope=envelope
                    )
                )
        except sa.exc.IntegrityError:
            raise AliasLogConflict(f"{model_name}@{alias} record {sequence} exists already") from None
        finally:
            engine.dispose()


def open_store(location: str) -> AliasLogStore:
    """The store at ``location``: a path or ``file://`` URI (JSON lines), else a SQLAlchemy URL."""
    if location.startswith("file://"):
        from urllib.parse import unquote, urlsplit

        return FileAliasLog(unquote(urlsplit(location).path))
    if "://" not in location:
        return FileAliasLog(location)
    return SqlAliasLog(location)


def _digest(envelope: str) -> str:
    return "sha256:" + hashlib.sha256(envelope.encode()).hexdigest()


def history(store: AliasLogReader, keys: VerificationKeys, model_name: str, alias: str) -> list[AliasRecord]:
    """Every move of ``model_name``'s ``alias``, oldest first, each verified, in an unbroken chain.

    :raises AliasLogError: naming the record that does not verify, is out of sequence, or breaks the chain.
    """
    records: list[AliasRecord] = []
    previous = ""
    for position, envelope in enumerate(store.read(model_name, alias), start=1):
        where = f"alias log {store.describe()}: {model_name}@{alias} record {position}"
        try:
            payload = keys.verify(envelope, ALIAS_MOVE)
        except SignatureError as err:
            raise AliasLogError(f"{where} is refused: {err}") from None
        payload.pop("kind", None)
        try:
            record = AliasRecord(**payload, key_id=str(json.loads(envelope).get("key_id", "")))
        except TypeError:
            raise AliasLogError(f"{where} is not an alias move") from None
        if (record.model_name, record.alias, record.sequence) != (model_name, alias, position):
            raise AliasLogError(
                f"{where} is signed for {record.model_name}@{record.alias} #{record.sequence}"
            )
        if record.previous != previous:
            raise AliasLogError(f"{where} does not follow the record before it: the log was altered")
        records.append(record)
        previous = _digest(envelope)
    return records


def append(
    store: AliasLogStore,
    key: SigningKey,
    keys: VerificationKeys,
    *,
    model_name: str,
    alias: str,
    to_version: str,
    move: str,
    actor: str,
    reason: str,
    at: str,
    airflow_run: str = "",
) -> AliasRecord:
    """Sign and append a move of ``alias`` to ``to_version``, after the log's newest verified record.

    :raises AliasLogError: when the existing log does not verify.
    :raises AliasLogConflict: when another move was appended at the same moment.
    """
    moves = history(store, keys, model_name, alias)
    last_envelope = store.read(model_name, alias)[-1] if moves else ""
    record = AliasRecord(
        model_name=model_name,
        alias=alias,
        sequence=len(moves) + 1,
        from_version=moves[-1].to_version if moves else None,
        to_version=str(to_version),
        move=move,
        actor=actor,
        reason=reason,
        at=at,
        airflow_run=airflow_run,
        previous=_digest(last_envelope) if moves else "",
    )
    envelope = json.dumps(key.sign(record.payload()), sort_keys=True)
    store.append(model_name, alias, record.sequence, envelope)
    return AliasRecord(**{**record.to_dict(), "key_id": key.key_id})


def check_alias(moves: list[AliasRecord], model_name: str, alias: str, current: str | None) -> AliasRecord:
    """The newest record, when it names ``current`` (the version the registry's alias points at).

    :raises AliasLogError: when the alias was set or moved outside the project (no record, or the newest
        record names another version), naming both versions and how to repair it.
    """
    if not moves:
        raise AliasLogError(
            f"{model_name}@{alias} points at version {current}, but the signed alias log has no move of "
            f"{alias!r}: it was set outside the project. Promote or roll back through the project to record it"
        )
    last = moves[-1]
    if last.to_version != current:
        raise AliasLogError(
            f"{model_name}@{alias} points at version {current}, but the last signed move (#{last.sequence}, "
            f"{last.move} by {last.actor or 'unknown'} at {last.at}) set it to version {last.to_version}: it was "
            "moved outside the project. Roll back or promote through the project to repair it"
        )
    return last
