"""Astro CLI ``airflow_settings.yaml``: parse it, then upsert its connections, pools and variables.

The file has the Astro CLI's schema, so one file serves ``astro dev start`` and ``mlops-ops settings apply``::

    airflow:
      connections:
        - {conn_id: ..., conn_type: ..., conn_host: ..., conn_schema: ..., conn_login: ...,
           conn_password: ..., conn_port: ..., conn_extra: {mapping or JSON object string},
           conn_uri: ..., conn_description: ...}
      pools:
        - {pool_name: ..., pool_slot: ..., pool_description: ...}
      variables:
        - {variable_name: ..., variable_value: ...}

Two mlops-ops additions the Astro CLI does not share: ``conn_description``, and ``${NAME}`` /
``${NAME:-default}`` references in values, expanded from the environment when the settings are applied (the
parsed specs keep the references, so secrets stay out of the file and out of reprs); ``$${`` is a literal
``${``. ``:-`` takes the default when the variable is unset or empty, as in the shell.

Parsing imports no Airflow; :func:`apply_settings` imports Airflow's ORM models inside the function.
"""

from __future__ import annotations

import datetime
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from mlops_ops.core.errors import MlopsError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

#: The file ``mlops-ops settings apply`` reads when none is given (the Astro CLI's name for it).
DEFAULT_SETTINGS_FILE = "airflow_settings.yaml"

_CONNECTION_KEYS = (
    "conn_id",
    "conn_type",
    "conn_host",
    "conn_schema",
    "conn_login",
    "conn_password",
    "conn_port",
    "conn_extra",
    "conn_uri",
    "conn_description",
)
_POOL_KEYS = ("pool_name", "pool_slot", "pool_description")
_VARIABLE_KEYS = ("variable_name", "variable_value")

# A connection URI carries everything but the description; Airflow refuses to mix it with single fields.
_URI_EXCLUSIVE_KEYS = (
    "conn_type",
    "conn_host",
    "conn_schema",
    "conn_login",
    "conn_password",
    "conn_port",
    "conn_extra",
)

_REFERENCE = re.compile(r"\$\$\{|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}|\$\{")


class SettingsError(MlopsError, ValueError):
    """The settings file is invalid, or refers to an environment variable that is not set."""


class MetadataDatabaseError(MlopsError, RuntimeError):
    """The Airflow metadata database cannot be read or written (usually: ``airflow db migrate`` not run)."""


@dataclass(frozen=True)
class ConnectionSpec:
    """One entry of ``airflow.connections``, with Airflow's field names; values may hold ``${...}``."""

    conn_id: str
    conn_type: str | None = None
    host: str | None = None
    schema: str | None = None
    login: str | None = None
    password: str | None = field(default=None, repr=False)
    port: int | str | None = None
    extra: dict[str, Any] | None = field(default=None, repr=False)
    uri: str | None = field(default=None, repr=False)
    description: str | None = None
    #: Position in the file's list, for error messages.
    index: int = field(default=0, compare=False, repr=False)


@dataclass(frozen=True)
class PoolSpec:
    """One entry of ``airflow.pools``; ``slots`` is a string only while it holds a ``${...}`` reference."""

    name: str
    slots: int | str
    description: str | None = None
    index: int = field(default=0, compare=False, repr=False)


@dataclass(frozen=True)
class VariableSpec:
    """One entry of ``airflow.variables``; a non-string value is stored as JSON."""

    key: str
    value: Any = field(default=None, repr=False)
    index: int = field(default=0, compare=False, repr=False)


@dataclass(frozen=True)
class AirflowSettings:
    """The connections, pools and variables of one settings file, in file order."""

    connections: tuple[ConnectionSpec, ...] = ()
    pools: tuple[PoolSpec, ...] = ()
    variables: tuple[VariableSpec, ...] = ()
    #: Where the settings came from, named in every error message.
    source: str = DEFAULT_SETTINGS_FILE

    def resolve(self, environ: Mapping[str, str] | None = None) -> AirflowSettings:
        """Expand ``${...}`` references and check the values that only now have a type.

        Empty connection fields become ``None``; ``conn_port`` and ``pool_slot`` become integers.

        :param environ: the environment to expand from; ``os.environ`` when ``None``.
        :return: the same settings with every reference replaced.
        """
        env = os.environ if environ is None else environ
        return AirflowSettings(
            connections=tuple(_resolve_connection(spec, self.source, env) for spec in self.connections),
            pools=tuple(_resolve_pool(spec, self.source, env) for spec in self.pools),
            variables=tuple(_resolve_variable(spec, self.source, env) for spec in self.variables),
            source=self.source,
        )


@dataclass(frozen=True)
class KindReport:
    """What :func:`apply_settings` did to one kind of object, names in file order."""

    kind: str
    created: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    #: For each updated name, the settings-file fields whose value changed (never the values).
    changed_fields: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def summary(self) -> str:
        """One line, e.g. ``pools: 0 created, 1 updated, 0 unchanged (updated: gpu [pool_slot])``."""
        line = (
            f"{self.kind}: {len(self.created)} created, {len(self.updated)} updated, "
            f"{len(self.unchanged)} unchanged"
        )
        updated = [f"{name} [{', '.join(self.changed_fields.get(name, ()))}]" for name in self.updated]
        groups = [
            f"{label}: {', '.join(names)}"
            for label, names in (
                ("created", self.created),
                ("updated", updated),
                ("unchanged", self.unchanged),
            )
            if names
        ]
        return f"{line} ({'; '.join(groups)})" if groups else line


@dataclass(frozen=True)
class ApplyReport:
    """The outcome of one :func:`apply_settings` call."""

    #: The metadata database written to, password hidden.
    database: str
    connections: KindReport
    pools: KindReport
    variables: KindReport
    #: Entries written but overridden by ``AIRFLOW_CONN_*`` / ``AIRFLOW_VAR_*`` environment variables.
    warnings: tuple[str, ...] = ()

    @property
    def kinds(self) -> tuple[KindReport, KindReport, KindReport]:
        """The three kind reports in the order they are applied."""
        return self.connections, self.pools, self.variables

    @property
    def changed(self) -> bool:
        """Whether anything was created or updated."""
        return any(kind.created or kind.updated for kind in self.kinds)


# --- parsing -------------------------------------------------------------------------------------------


def load_settings_file(path: str | os.PathLike[str] = DEFAULT_SETTINGS_FILE) -> AirflowSettings:
    """Read and validate an ``airflow_settings.yaml``; references stay unexpanded.

    :param path: the file, by default ``airflow_settings.yaml`` in the current directory.
    :return: the parsed settings, with ``source`` set to ``path``.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise SettingsError(f"{source}: cannot read the settings file: {err.strerror or err}") from err
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise SettingsError(f"{source}: not valid YAML: {err}") from err
    return parse_settings(document, source=source)


def profile_file(base: str | os.PathLike[str], profile: str) -> Path:
    """The file of settings profile ``profile`` beside ``base``: ``airflow_settings.<profile>.yaml``.

    :param base: the base settings file, e.g. ``airflow_settings.yaml``.
    :param profile: the profile name, e.g. ``production``; letters, digits, ``_`` and ``-``.
    :return: the profile's path (which may not exist).
    """
    if not re.fullmatch(r"[A-Za-z0-9_-]+", profile):
        raise SettingsError(f"profile {profile!r}: use letters, digits, _ and - only")
    base = Path(base)
    return base.with_name(f"{base.stem}.{profile}{base.suffix or '.yaml'}")


def load_settings_with_profile(
    path: str | os.PathLike[str] = DEFAULT_SETTINGS_FILE, profile: str | None = None
) -> AirflowSettings:
    """Read the base settings file, then lay profile ``profile`` over it (see :func:`merge_settings`).

    :param path: the base settings file.
    :param profile: a profile name (``production``), or ``None`` for the base file alone.
    :return: the merged settings; ``source`` names both files.
    """
    base = load_settings_file(path)
    if profile is None:
        return base
    overlay_path = profile_file(path, profile)
    if not overlay_path.is_file():
        raise SettingsError(f"profile {profile!r}: no file {overlay_path}")
    return merge_settings(base, load_settings_file(overlay_path))


def merge_settings(base: AirflowSettings, overlay: AirflowSettings) -> AirflowSettings:
    """``base`` with every entry of ``overlay`` added, an entry of the same name replaced whole.

    A profile restates an entry completely rather than patching fields, so what is applied can be read
    in one place. Replaced entries keep their position; new ones follow in the overlay's order.

    :param base: the settings every deployment shares.
    :param overlay: a deployment's profile.
    :return: the merged settings.
    """

    def merged(ours: tuple[Any, ...], theirs: tuple[Any, ...], name_of: Any) -> tuple[Any, ...]:
        replacements = {name_of(spec): spec for spec in theirs}
        kept = [replacements.pop(name_of(spec), spec) for spec in ours]
        return tuple(kept) + tuple(spec for spec in theirs if name_of(spec) in replacements)

    return AirflowSettings(
        connections=merged(base.connections, overlay.connections, lambda spec: spec.conn_id),
        pools=merged(base.pools, overlay.pools, lambda spec: spec.name),
        variables=merged(base.variables, overlay.variables, lambda spec: spec.key),
        source=f"{base.source} + {overlay.source}",
    )


def parse_settings(document: Any, *, source: str = DEFAULT_SETTINGS_FILE) -> AirflowSettings:
    """Validate a loaded settings document (what ``yaml.safe_load`` returns).

    Keys other than ``airflow.connections``, ``airflow.pools`` and ``airflow.variables`` are ignored, at the
    top and under ``airflow``. Unknown keys inside an entry are errors (they are typos). Entries whose
    identifying fields are all empty, like the placeholders of the ``astro dev init`` template, are skipped
    as the Astro CLI skips them.

    :param document: the parsed YAML; ``None`` (an empty file) means no settings.
    :param source: the file name to put in error messages.
    :return: the settings, references unexpanded.
    """
    if document is None:
        return AirflowSettings(source=source)
    if not isinstance(document, Mapping):
        raise SettingsError(f"{source}: the file must be a mapping with an 'airflow' key")
    airflow = document.get("airflow")
    if airflow is None:
        return AirflowSettings(source=source)
    if not isinstance(airflow, Mapping):
        raise SettingsError(f"{source}: airflow: must be a mapping of connections, pools and variables")

    connections = tuple(
        _parse_connection(entry, where)
        for entry, where in _entries(
            airflow, "connections", _CONNECTION_KEYS, ("conn_id", "conn_type", "conn_uri"), source
        )
    )
    pools = tuple(
        _parse_pool(entry, where)
        for entry, where in _entries(airflow, "pools", _POOL_KEYS, ("pool_name", "pool_slot"), source)
    )
    variables = tuple(
        _parse_variable(entry, where)
        for entry, where in _entries(
            airflow, "variables", _VARIABLE_KEYS, ("variable_name", "variable_value"), source
        )
    )
    _reject_duplicates(connections, "connections", "conn_id", lambda spec: spec.conn_id, source)
    _reject_duplicates(pools, "pools", "pool_name", lambda spec: spec.name, source)
    _reject_duplicates(variables, "variables", "variable_name", lambda spec: spec.key, source)
    return AirflowSettings(connections=connections, pools=pools, variables=variables, source=source)


@dataclass(frozen=True)
class _Where:
    """Location of one entry, rendered as ``file: airflow.section[index].field``."""

    source: str
    section: str
    index: int
    name: str | None = None

    def __call__(self, field_name: str | None = None) -> str:
        location = f"{self.source}: airflow.{self.section}[{self.index}]"
        if field_name:
            location += f".{field_name}"
        return f"{location} ({self.name})" if self.name else location


def _entries(
    airflow: Mapping[str, Any],
    section: str,
    allowed: tuple[str, ...],
    identifying: tuple[str, ...],
    source: str,
) -> list[tuple[Mapping[str, Any], _Where]]:
    entries = airflow.get(section)
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise SettingsError(f"{source}: airflow.{section}: must be a list of entries")
    result = []
    for index, entry in enumerate(entries):
        where = _Where(source, section, index)
        if entry is None:
            continue
        if not isinstance(entry, Mapping):
            raise SettingsError(f"{where()}: must be a mapping of {', '.join(allowed)}")
        unknown = sorted(str(key) for key in entry if key not in allowed)
        if unknown:
            raise SettingsError(
                f"{where()}: unknown field(s) {', '.join(unknown)}; expected {', '.join(allowed)}"
            )
        if all(_blank(entry.get(key)) for key in identifying):
            continue
        result.append((entry, where))
    return result


def _blank(value: Any) -> bool:
    return value is None or value == ""


def _text(entry: Mapping[str, Any], key: str, where: _Where, *, required: bool = False) -> str | None:
    value = entry.get(key)
    if _blank(value):
        if required:
            raise SettingsError(f"{where(key)}: is required")
        return None
    # YAML reads `conn_password: 1234` as an int; the Astro CLI would store its text, so do we.
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise SettingsError(f"{where(key)}: must be a string, got {type(value).__name__}")
    return str(value)


def _integer(value: Any, location: str, *, minimum: int, meaning: str) -> int:
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise SettingsError(f"{location}: must be an integer {meaning}, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise SettingsError(f"{location}: must be an integer {meaning}, got {value!r}")
    if value < minimum:
        raise SettingsError(f"{location}: must be an integer {meaning}, got {value}")
    return value


def _integer_or_reference(
    entry: Mapping[str, Any], key: str, where: _Where, *, minimum: int, meaning: str
) -> int | str | None:
    value = entry.get(key)
    if _blank(value):
        return None
    if isinstance(value, str) and "${" in value:
        return value  # checked by AirflowSettings.resolve once expanded
    return _integer(value, where(key), minimum=minimum, meaning=meaning)


_PORT_MEANING = "from 0 to 65535"
_SLOTS_MEANING = ">= -1 (-1: unlimited)"


def _parse_connection(entry: Mapping[str, Any], where: _Where) -> ConnectionSpec:
    conn_id = _text(entry, "conn_id", where, required=True)
    uri = _text(entry, "conn_uri", where)
    if uri is not None:
        mixed = [key for key in _URI_EXCLUSIVE_KEYS if not _blank(entry.get(key))]
        if mixed:
            raise SettingsError(f"{where('conn_uri')}: cannot be combined with {', '.join(mixed)}")
    port = _integer_or_reference(entry, "conn_port", where, minimum=0, meaning=_PORT_MEANING)
    if isinstance(port, int) and port > 65535:
        raise SettingsError(f"{where('conn_port')}: must be an integer {_PORT_MEANING}, got {port}")
    return ConnectionSpec(
        conn_id=conn_id,  # type: ignore[arg-type]  # required=True
        conn_type=_text(entry, "conn_type", where, required=uri is None),
        host=_text(entry, "conn_host", where),
        schema=_text(entry, "conn_schema", where),
        login=_text(entry, "conn_login", where),
        password=_text(entry, "conn_password", where),
        port=port,
        extra=_parse_extra(entry.get("conn_extra"), where),
        uri=uri,
        description=_text(entry, "conn_description", where),
        index=where.index,
    )


def _parse_extra(value: Any, where: _Where) -> dict[str, Any] | None:
    # Parsed before expansion, so an expanded secret holding a quote cannot break the JSON.
    if _blank(value):
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise SettingsError(f"{where('conn_extra')}: not a valid JSON string: {err}") from None
    if not isinstance(value, Mapping):
        raise SettingsError(f"{where('conn_extra')}: must be a mapping or a JSON object string")
    if not all(isinstance(key, str) for key in value):
        raise SettingsError(f"{where('conn_extra')}: keys must be strings")
    return dict(value) or None


def _parse_pool(entry: Mapping[str, Any], where: _Where) -> PoolSpec:
    name = _text(entry, "pool_name", where, required=True)
    slots = _integer_or_reference(entry, "pool_slot", where, minimum=-1, meaning=_SLOTS_MEANING)
    if slots is None:
        raise SettingsError(f"{where('pool_slot')}: is required")
    return PoolSpec(
        name=name,  # type: ignore[arg-type]  # required=True
        slots=slots,
        description=_text(entry, "pool_description", where),
        index=where.index,
    )


def _parse_variable(entry: Mapping[str, Any], where: _Where) -> VariableSpec:
    key = _text(entry, "variable_name", where, required=True)
    value = entry.get("variable_value")
    # YAML turns an unquoted 2024-01-01 into a date; the author meant the text.
    if isinstance(value, datetime.date):
        value = value.isoformat()
    return VariableSpec(key=key, value=value, index=where.index)  # type: ignore[arg-type]


def _reject_duplicates(specs: tuple[Any, ...], section: str, key: str, name_of: Any, source: str) -> None:
    first: dict[str, int] = {}
    for spec in specs:
        name = name_of(spec)
        if name in first:
            raise SettingsError(
                f"{source}: airflow.{section}[{spec.index}].{key}: {name!r} is already defined by "
                f"airflow.{section}[{first[name]}]"
            )
        first[name] = spec.index


# --- environment references -----------------------------------------------------------------------------


def expand_references(text: str, environ: Mapping[str, str], location: str) -> str:
    """Replace ``${NAME}`` and ``${NAME:-default}`` in ``text`` with values from ``environ``.

    :param text: a value from the settings file.
    :param environ: the environment.
    :param location: where ``text`` comes from, for error messages.
    :return: the expanded text.
    """

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name = match.group("name")
        if name is None:
            raise SettingsError(f"{location}: malformed reference; write ${{NAME}} or ${{NAME:-default}}")
        value = environ.get(name)
        default = match.group("default")
        if default is not None and not value:
            return default
        if value is None:
            raise SettingsError(
                f"{location}: environment variable {name} is not set "
                f"(write ${{{name}:-default}} to make it optional)"
            )
        return value

    return _REFERENCE.sub(substitute, text)


def _expand_nested(value: Any, environ: Mapping[str, str], location: str) -> Any:
    if isinstance(value, str):
        return expand_references(value, environ, location)
    if isinstance(value, Mapping):
        return {key: _expand_nested(item, environ, f"{location}.{key}") for key, item in value.items()}
    if isinstance(value, list):
        return [_expand_nested(item, environ, f"{location}[{i}]") for i, item in enumerate(value)]
    return value


def _resolve_connection(spec: ConnectionSpec, source: str, environ: Mapping[str, str]) -> ConnectionSpec:
    where = _Where(source, "connections", spec.index, spec.conn_id)

    def text(value: str | None, key: str) -> str | None:
        if value is None:
            return None
        # An optional reference that expands to nothing means "not set", as an empty field in the file does.
        return expand_references(value, environ, where(key)) or None

    port = spec.port
    if isinstance(port, str):
        expanded = expand_references(port, environ, where("conn_port"))
        port = (
            None
            if expanded == ""
            else _integer(expanded, where("conn_port"), minimum=0, meaning=_PORT_MEANING)
        )
        if port is not None and port > 65535:
            raise SettingsError(f"{where('conn_port')}: must be an integer {_PORT_MEANING}, got {port}")
    return ConnectionSpec(
        conn_id=spec.conn_id,
        conn_type=text(spec.conn_type, "conn_type"),
        host=text(spec.host, "conn_host"),
        schema=text(spec.schema, "conn_schema"),
        login=text(spec.login, "conn_login"),
        password=text(spec.password, "conn_password"),
        port=port,
        extra=_resolve_extra(spec.extra, environ, where("conn_extra")),
        uri=text(spec.uri, "conn_uri"),
        description=text(spec.description, "conn_description"),
        index=spec.index,
    )


def _resolve_extra(
    extra: dict[str, Any] | None, environ: Mapping[str, str], location: str
) -> dict[str, Any] | None:
    if not extra:
        return None
    resolved = {}
    for key, value in extra.items():
        expanded = _expand_nested(value, environ, f"{location}.{key}")
        # A key whose optional reference expanded to nothing is left out, as an empty field is: an empty
        # `endpoint_url` would reach boto3, which rejects it, while a missing one lets botocore read
        # $AWS_ENDPOINT_URL itself.
        if isinstance(value, str) and "${" in value and expanded == "":
            continue
        resolved[key] = expanded
    return resolved or None


def _resolve_pool(spec: PoolSpec, source: str, environ: Mapping[str, str]) -> PoolSpec:
    where = _Where(source, "pools", spec.index, spec.name)
    slots = spec.slots
    if isinstance(slots, str):
        slots = _integer(
            expand_references(slots, environ, where("pool_slot")),
            where("pool_slot"),
            minimum=-1,
            meaning=_SLOTS_MEANING,
        )
    description = spec.description
    if description is not None:
        description = expand_references(description, environ, where("pool_description")) or None
    return PoolSpec(name=spec.name, slots=slots, description=description, index=spec.index)


def _resolve_variable(spec: VariableSpec, source: str, environ: Mapping[str, str]) -> VariableSpec:
    where = _Where(source, "variables", spec.index, spec.key)
    value = _expand_nested(spec.value, environ, where("variable_value"))
    if value is None:
        value = ""
    elif not isinstance(value, str):
        # Read back with Variable.get(key, deserialize_json=True) / {{ var.json.key }}.
        value = json.dumps(value, default=str)
    return VariableSpec(key=spec.key, value=value, index=spec.index)


# --- applying ---------------------------------------------------------------------------------------------

# What each kind's upsert compares and writes, as (Airflow attribute, settings-file key): the report names the key.
_CONNECTION_FIELDS = (
    ("conn_type", "conn_type"),
    ("host", "conn_host"),
    ("schema", "conn_schema"),
    ("login", "conn_login"),
    ("password", "conn_password"),
    ("port", "conn_port"),
    ("extra", "conn_extra"),
    ("description", "conn_description"),
)
_POOL_FIELDS = (("slots", "pool_slot"), ("description", "pool_description"))
_VARIABLE_FIELDS = (("val", "variable_value"),)


def apply_settings(settings: AirflowSettings, *, environ: Mapping[str, str] | None = None) -> ApplyReport:
    """Create or update every connection, pool and variable of ``settings`` in Airflow's metadata database.

    Idempotent: every field of an entry is set to the file's value (an empty field clears it), and an entry
    whose fields already match is left alone, so applying the same file twice reports everything unchanged.
    Objects the file does not name are never touched. All of it is one transaction: an error writes nothing.
    The database is the one configured for the current ``AIRFLOW_HOME`` and must be migrated.

    :param settings: the parsed settings, e.g. from :func:`load_settings_file`.
    :param environ: the environment for ``${...}`` references and the override warnings; ``os.environ`` when
        ``None``.
    :return: what was created, updated and left unchanged per kind.
    """
    env = os.environ if environ is None else environ
    resolved = settings.resolve(env)
    # Built (and so validated by Airflow) before the database is opened.
    wanted_connections = [
        (spec.conn_id, _to_connection(spec, settings.source)) for spec in resolved.connections
    ]

    from airflow import settings as airflow_settings
    from airflow.models.connection import Connection
    from airflow.models.pool import Pool
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session
    from sqlalchemy.exc import OperationalError, ProgrammingError

    engine = airflow_settings.engine
    database = engine.url.render_as_string(hide_password=True) if engine is not None else "(not configured)"
    # Transient ORM objects, each the entry as the file wants it: the upsert compares them with what is stored.
    wanted_pools = [
        (
            spec.name,
            Pool(pool=spec.name, slots=spec.slots, description=spec.description, include_deferred=False),
        )
        for spec in resolved.pools
    ]
    wanted_variables = [(spec.key, Variable(key=spec.key, val=spec.value)) for spec in resolved.variables]
    try:
        with create_session() as session:
            connections = _upsert(session, "connections", Connection, "conn_id", wanted_connections)
            pools = _upsert(session, "pools", Pool, "pool", wanted_pools)
            variables = _upsert(session, "variables", Variable, "key", wanted_variables)
    except (OperationalError, ProgrammingError) as err:
        raise MetadataDatabaseError(
            f"cannot write to the Airflow metadata database {database}: {getattr(err, 'orig', err)}; "
            "is AIRFLOW_HOME right, and has `airflow db migrate` been run?"
        ) from err
    return ApplyReport(
        database=database,
        connections=connections,
        pools=pools,
        variables=variables,
        warnings=_override_warnings(resolved, env),
    )


def _to_connection(spec: ConnectionSpec, source: str) -> Any:
    from airflow.exceptions import AirflowException
    from airflow.models.connection import Connection, sanitize_conn_id

    where = _Where(source, "connections", spec.index, spec.conn_id)
    if sanitize_conn_id(spec.conn_id) != spec.conn_id:
        raise SettingsError(
            f"{where('conn_id')}: at most 250 letters, digits and the characters _ # ! ( ) - . : / \\"
        )
    try:
        if spec.uri is not None:
            connection = Connection(conn_id=spec.conn_id, uri=spec.uri, description=spec.description)
            if not connection.conn_type:
                raise SettingsError(f"{where('conn_uri')}: has no scheme to take the connection type from")
            return connection
        return Connection(
            conn_id=spec.conn_id,
            conn_type=spec.conn_type,
            description=spec.description,
            host=spec.host,
            login=spec.login,
            password=spec.password,
            schema=spec.schema,
            port=spec.port,  # type: ignore[arg-type]  # an int once resolved
            extra=json.dumps(spec.extra) if spec.extra else None,
        )
    except (AirflowException, ValueError) as err:
        if isinstance(err, SettingsError):
            raise
        raise SettingsError(f"{where('conn_uri' if spec.uri else 'conn_id')}: {err}") from err


def _stored_value(entry: Any, attribute: str) -> Any:
    """``entry``'s ``attribute`` as the upsert compares it: decrypted (the ORM's property getters), extra as
    parsed JSON, an empty text as ``None``."""
    value = getattr(entry, attribute)
    if attribute == "extra":
        return json.loads(value) if value else {}
    return None if value == "" else value


_UPSERT_FIELDS = {"connections": _CONNECTION_FIELDS, "pools": _POOL_FIELDS, "variables": _VARIABLE_FIELDS}


def _upsert(session: Session, kind: str, model: Any, key: str, wanted: list[tuple[str, Any]]) -> KindReport:
    """Add each wanted entry that is missing, set the fields that differ on each that is there, leave the rest.

    :param kind: ``connections``, ``pools`` or ``variables``: which fields are compared, and the report's name.
    :param model: the Airflow ORM class; ``key`` is its column holding the entry's name.
    :param wanted: ``(name, transient ORM object as the file wants it)`` per entry.
    """
    from sqlalchemy import select

    created, updated, unchanged, changed_fields = [], [], [], {}
    for name, desired in wanted:
        existing = session.scalar(select(model).where(getattr(model, key) == name))
        if existing is None:
            session.add(desired)
            created.append(name)
            continue
        changed = [
            (attribute, field_key)
            for attribute, field_key in _UPSERT_FIELDS[kind]
            if _stored_value(existing, attribute) != _stored_value(desired, attribute)
        ]
        for attribute, _ in changed:
            # Property setters: passwords, extras and variable values are encrypted when a Fernet key is set.
            setattr(existing, attribute, getattr(desired, attribute))
        if changed:
            updated.append(name)
            changed_fields[name] = tuple(field_key for _, field_key in changed)
        else:
            unchanged.append(name)
    return KindReport(kind, tuple(created), tuple(updated), tuple(unchanged), changed_fields)


def _override_warnings(settings: AirflowSettings, environ: Mapping[str, str]) -> tuple[str, ...]:
    # Airflow looks in environment variables before the database, so such an entry is written but not used.
    warnings = [
        f"connection {spec.conn_id!r} is also set by AIRFLOW_CONN_{spec.conn_id.upper()}, "
        "which Airflow reads before the database"
        for spec in settings.connections
        if f"AIRFLOW_CONN_{spec.conn_id.upper()}" in environ
    ]
    warnings += [
        f"variable {spec.key!r} is also set by AIRFLOW_VAR_{spec.key.upper()}, "
        "which Airflow reads before the database"
        for spec in settings.variables
        if f"AIRFLOW_VAR_{spec.key.upper()}" in environ
    ]
    return tuple(warnings)


__all__ = [
    "DEFAULT_SETTINGS_FILE",
    "AirflowSettings",
    "ApplyReport",
    "ConnectionSpec",
    "KindReport",
    "MetadataDatabaseError",
    "PoolSpec",
    "SettingsError",
    "VariableSpec",
    "apply_settings",
    "expand_references",
    "load_settings_file",
    "load_settings_with_profile",
    "merge_settings",
    "parse_settings",
    "profile_file",
]
