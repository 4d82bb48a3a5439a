"""The ``mlops-ops`` command line: argument parsing and printing; the work is done by library modules.

Commands are grouped the way Airflow's own CLI groups them (``mlops-ops GROUP ACTION``). Airflow is
imported only inside the functions that write to it (``settings_file`` imports no Airflow at module level), so
``mlops-ops --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mlops_ops.ci import add_ci_commands
from mlops_ops.settings_file import (
    DEFAULT_SETTINGS_FILE,
    MetadataDatabaseError,
    SettingsError,
    apply_settings,
    load_settings_with_profile,
)
from mlops_ops.signing_keys import add_keys_command

if TYPE_CHECKING:
    from mlops_ops.core.storage import ObjectStore
    from mlops_ops.hooks.mlflow import MlflowHook
    from mlops_ops.serving import ServingConfig


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``mlops-ops`` command.

    :param argv: the arguments after the program name; ``sys.argv[1:]`` when ``None``.
    :return: the exit status: 0 on success, 1 when Airflow's database cannot be written, 2 for a usage or
        settings-file error.
    """
    args = build_parser().parse_args(argv)
    return args.handler(args)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command; each command group adds itself with one ``_add_*_commands`` call."""
    parser = argparse.ArgumentParser(
        prog="mlops-ops",
        description="Tools for an Airflow deployment that runs the mlops-ops provider.",
    )
    groups = parser.add_subparsers(title="commands", dest="command", required=True)
    _add_settings_commands(groups)
    _add_config_commands(groups)
    _add_serve_command(groups)
    _add_stream_command(groups)
    _add_registry_commands(groups)
    add_keys_command(groups)
    add_ci_commands(groups)
    # Further command groups register here, each with its own _add_<group>_commands(groups).
    return parser


# --- settings -----------------------------------------------------------------------------------------------


def _add_settings_commands(groups: argparse._SubParsersAction) -> None:
    settings = groups.add_parser(
        "settings",
        help="Airflow connections, pools and variables from an airflow_settings.yaml",
        description="Airflow connections, pools and variables kept in an Astro CLI airflow_settings.yaml.",
    )
    actions = settings.add_subparsers(title="actions", dest="action", required=True)
    apply = actions.add_parser(
        "apply",
        help="create or update them in the metadata database of $AIRFLOW_HOME",
        description=(
            "Create or update the connections, pools and variables of FILE in the Airflow metadata database "
            "of the current AIRFLOW_HOME (which must be migrated). Idempotent; objects FILE does not name "
            "are left alone. ${NAME} and ${NAME:-default} in values are expanded from the environment."
        ),
    )
    apply.add_argument(
        "file",
        nargs="?",
        default=DEFAULT_SETTINGS_FILE,
        metavar="FILE",
        help=f"the settings file (default: ./{DEFAULT_SETTINGS_FILE})",
    )
    apply.add_argument(
        "--profile",
        metavar="NAME",
        help=(
            "also apply the profile FILE.NAME.yaml beside FILE (e.g. airflow_settings.production.yaml), "
            "whose entries replace those of FILE with the same name"
        ),
    )
    apply.set_defaults(handler=_settings_apply)


def _settings_apply(args: argparse.Namespace) -> int:
    try:
        report = apply_settings(load_settings_with_profile(args.file, args.profile))
    except SettingsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except MetadataDatabaseError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    applied = f"{args.file} with profile {args.profile}" if args.profile else args.file
    print(f"Applied {applied} to {report.database}")
    for kind in report.kinds:
        print(kind.summary())
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


# --- config -------------------------------------------------------------------------------------------------


def _add_config_commands(groups: argparse._SubParsersAction) -> None:
    from mlops_ops.core.config_schema import KINDS

    config = groups.add_parser(
        "config",
        help="JSON Schema of the configuration files (model spec, gate policy, decay rule, business costs), "
        "and a check of files against their loader",
        description="The configuration files a team writes, as the operators read them.",
    )
    actions = config.add_subparsers(title="actions", dest="action", required=True)
    schema = actions.add_parser(
        "schema",
        help="print (or write) the JSON Schema of KIND, generated from the code that loads it",
        description="The JSON Schema of KIND, for editors and a team's CI; unknown fields are refused.",
    )
    schema.add_argument("kind", choices=KINDS, metavar="KIND", help=f"one of {', '.join(KINDS)}")
    schema.add_argument("--out", metavar="FILE", help="write the schema to FILE instead of printing it")
    schema.set_defaults(handler=_config_schema)
    check = actions.add_parser(
        "check",
        help="load each FILE as a KIND file exactly as the operators will; name the file and field if wrong",
        description="Load each FILE as a KIND file; exit 2 naming the file and the field when one is wrong.",
    )
    check.add_argument("kind", choices=KINDS, metavar="KIND", help=f"one of {', '.join(KINDS)}")
    check.add_argument("files", nargs="+", metavar="FILE")
    check.set_defaults(handler=_config_check)


def _config_schema(args: argparse.Namespace) -> int:
    import json

    from mlops_ops.core.config_schema import json_schema

    text = json.dumps(json_schema(args.kind), indent=2, sort_keys=True) + "\n"
    if args.out:
        from pathlib import Path

        Path(args.out).write_text(text)
        print(f"Wrote the {args.kind} schema to {args.out}")
    else:
        print(text, end="")
    return 0


def _config_check(args: argparse.Namespace) -> int:
    from mlops_ops.core.config_schema import check_file
    from mlops_ops.core.errors import MlopsError

    failed = 0
    for path in args.files:
        try:
            check_file(args.kind, path)
        except MlopsError as err:  # a file that is wrong, or the extra a suite needs (validation) missing
            print(f"error: {err}", file=sys.stderr)
            failed += 1
        else:
            print(f"{path}: a valid {args.kind}")
    return 2 if failed else 0


# --- serve --------------------------------------------------------------------------------------------------


def _add_serve_command(groups: argparse._SubParsersAction) -> None:
    serve = groups.add_parser(
        "serve",
        help="run the real-time prediction API of a registered model (request fields + online features)",
        description=(
            "Serve POST /predict, GET /health and GET /ready with uvicorn. The model is the version the alias "
            "points at (checked every --poll-seconds, swapped in when it moves, verified by the trust rules "
            "before loading). It answers in the shape of its task (the --model-spec's task, else the model's "
            "own): binary {prediction: 0|1, probability}, multiclass {prediction: class, probabilities: {class: "
            "p}}, regression {prediction: value}. A request holds the fields of --request-schema; --prepare turns "
            "them into features and, with --feature-service, online features come from the Feast repository of "
            "--feast-conn-id. Run it from the project root: the schema and prepare function are imported from "
            "there, e.g. --model house_prices --request-schema include.houses.serving:HouseRequest "
            "--prepare include.houses.features:prepare --model-spec include/houses/model_spec.yaml. Without "
            "--request-schema the request is the model's input columns, from its signature (e.g. --model "
            "house_prices --model-spec include/houses/model_spec.yaml)"
        ),
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default 1)")
    add_model_arguments(serve)
    serve.add_argument(
        "--max-body-bytes",
        type=int,
        default=64 * 1024,
        help="largest request body accepted; a larger one gets 413 before it is parsed (default 65536)",
    )
    serve.add_argument(
        "--token-file",
        help="file holding the bearer token POST /predict requires (Authorization: Bearer <token>, 16+ "
        "characters); default: $MLOPS_SERVING_TOKEN, or no authentication when that is unset. There is no "
        "--token: a token on the command line would show in the process list",
    )
    serve.set_defaults(handler=_serve)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments naming the model and how a request becomes its inputs (``serve`` and ``stream``)."""
    parser.add_argument("--model", required=True, help="registered model name")
    parser.add_argument("--alias", default="champion", help="alias followed (default champion)")
    parser.add_argument(
        "--request-schema",
        metavar="MODULE:CLASS",
        help="the project's request model, a subclass of mlops_ops.serving.PredictionRequest; default: one "
        "field per input column of the signature of the model loaded at start (a later version with other "
        "inputs is refused until a restart). Required with --prepare, a --model-spec with prepare, or "
        "--feature-service",
    )
    parser.add_argument(
        "--feature-service", help="Feast feature service read online (default: none, no feature store)"
    )
    parser.add_argument(
        "--prepare",
        metavar="MODULE:FUNCTION",
        help="turns the requests' raw rows into features (the model spec's prepare; default: none)",
    )
    parser.add_argument("--poll-seconds", type=float, default=30.0, help="alias check interval (default 30)")
    parser.add_argument("--mlflow-conn-id", default="mlflow_default", help="Airflow connection of MLflow")
    parser.add_argument("--feast-conn-id", default="feast_default", help="Airflow connection of Feast")
    parser.add_argument(
        "--trust-conn-id",
        default="mlops_trust_default",
        help="Airflow connection of the deployment's trust rules (verification keys, alias log, pickle allowance)",
    )
    parser.add_argument(
        "--alert-webhook-conn-id",
        help="webhook connection told when the trust rules refuse the alias's version (moved outside the project, "
        "unsigned, altered, unsafe) and when one is accepted again; default: only logged and shown in /health",
    )
    parser.add_argument(
        "--model-threads",
        type=int,
        default=1,
        help="threads one predict may use (default 1; 0: the libraries' default, every core)",
    )
    parser.add_argument(
        "--no-compile-trees",
        dest="compile_trees",
        action="store_false",
        help="score with the model's own predict_proba or predict, not its trees compiled at load (checked "
        "equal first)",
    )
    parser.add_argument(
        "--model-spec",
        help="model spec YAML whose `task` is the task served (a model of another task is refused) and whose "
        "`bounds` are the accepted ranges of request values (default: none, the model's own task, types and "
        "finiteness only)",
    )


def _serve(args: argparse.Namespace) -> int:
    from mlops_ops.serving import checked_request_model, serve
    from mlops_ops.serving_guard import read_token

    try:
        token = read_token(args.token_file)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    config = serving_config(args, max_body_bytes=args.max_body_bytes, token=token)
    try:
        checked_request_model(config)  # a bad spec or setting: one line here, not a traceback per worker
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    serve(config, host=args.host, port=args.port, workers=args.workers)
    return 0


def serving_config(args: argparse.Namespace, **settings: Any) -> ServingConfig:
    """The :class:`~mlops_ops.serving.ServingConfig` of :func:`add_model_arguments`' arguments (and ``settings``).

    The project's include/ (request schema, prepare function, feature definitions) imports from the project
    root, as Airflow imports it from beside dags/; a console script does not put the working directory on
    ``sys.path``, so this does.
    """
    import os

    from mlops_ops.serving import ServingConfig

    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    return ServingConfig(
        model_name=args.model,
        request_schema=args.request_schema or None,
        alias=args.alias,
        feature_service=args.feature_service or None,
        prepare=args.prepare or None,
        poll_seconds=args.poll_seconds,
        mlflow_conn_id=args.mlflow_conn_id,
        feast_conn_id=args.feast_conn_id,
        trust_conn_id=args.trust_conn_id,
        alert_webhook_conn_id=args.alert_webhook_conn_id or None,
        model_threads=args.model_threads,
        compile_trees=args.compile_trees,
        model_spec=args.model_spec or None,
        **settings,
    )


# --- stream -------------------------------------------------------------------------------------------------


def _add_stream_command(groups: argparse._SubParsersAction) -> None:
    stream = groups.add_parser(
        "stream",
        help="score a Redis stream's events with a registered model, as one consumer of a consumer group",
        description=(
            "A long-running consumer of --stream in consumer group --group: batches of up to --batch-size events "
            "(or what arrived within --block-ms) are checked like the prediction API's requests, joined with "
            "online features, prepared and scored by the version the alias points at (verified by the trust "
            "rules, followed every --poll-seconds); one record per event goes to --output, an event that cannot "
            "be scored to --dead-letter with the reason. An event is acknowledged with its record in one atomic "
            "step: a consumer that dies leaves its events to the others (--claim-idle-ms). SIGTERM finishes the "
            "batch in hand. An event's fields: data (a JSON object, the request), event_id and event_time "
            "(ISO-8601 or epoch ms), both optional. Run it from the project root, as serve."
        ),
    )
    stream.add_argument(
        "--source",
        default="redis://127.0.0.1:6379/0",
        help="Redis URL (default redis://127.0.0.1:6379/0); credentials: a URL in $MLOPS_STREAM_REDIS_URL instead, "
        "never on the command line",
    )
    stream.add_argument("--stream", required=True, help="the input stream")
    stream.add_argument("--group", required=True, help="the consumer group")
    stream.add_argument(
        "--consumer",
        help="this consumer's name in the group, stable across restarts (default: the host name)",
    )
    stream.add_argument("--output", required=True, help="the output stream")
    stream.add_argument("--dead-letter", help="the dead-letter stream (default: <output>:dead-letters)")
    stream.add_argument("--batch-size", type=int, default=500, help="most events per batch (default 500)")
    stream.add_argument("--block-ms", type=int, default=20, help="wait for new events, ms (default 20)")
    stream.add_argument(
        "--claim-idle-ms",
        type=int,
        default=30_000,
        help="claim events pending this long at another consumer (default 30000)",
    )
    stream.add_argument(
        "--key-columns",
        default="",
        help="comma-separated raw-row columns copied into each record's keys (what joins labels later)",
    )
    stream.add_argument("--output-maxlen", type=int, help="trim the output stream to about this many records")
    stream.add_argument(
        "--max-event-bytes", type=int, default=64 * 1024, help="largest event accepted (default 65536)"
    )
    stream.add_argument(
        "--metrics-port", type=int, help="serve Prometheus metrics on this port (default: none)"
    )
    stream.add_argument(
        "--metrics-host", default="127.0.0.1", help="address of the metrics endpoint (default 127.0.0.1)"
    )
    add_model_arguments(stream)
    stream.set_defaults(handler=_stream)


def _stream(args: argparse.Namespace) -> int:
    import os
    import socket

    from mlops_ops.streaming.scorer import StreamConfig, StreamScorer, StreamScoringStopped

    config = StreamConfig(
        serving=serving_config(args),
        redis_url=os.environ.get("MLOPS_STREAM_REDIS_URL") or args.source,
        stream=args.stream,
        group=args.group,
        consumer=args.consumer or socket.gethostname(),
        output=args.output,
        dead_letter=args.dead_letter or f"{args.output}:dead-letters",
        batch_size=args.batch_size,
        block_ms=args.block_ms,
        claim_idle_ms=args.claim_idle_ms,
        key_columns=[name.strip() for name in args.key_columns.split(",") if name.strip()],
        output_maxlen=args.output_maxlen,
        max_event_bytes=args.max_event_bytes,
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host,
    )
    try:
        scorer = StreamScorer(config)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        stats = scorer.run()
    except StreamScoringStopped as err:
        print(f"error: scoring stopped, the batch's events stay pending: {err}", file=sys.stderr)
        return 1
    print(
        f"stopped: {stats.scored} events scored, {stats.dead_letters} dead-lettered in {stats.batches} batches "
        f"(versions {stats.versions})"
    )
    return 0


# --- registry -----------------------------------------------------------------------------------------------


def _add_registry_commands(groups: argparse._SubParsersAction) -> None:
    registry = groups.add_parser(
        "registry",
        help="back up the MLflow model registry to a storage URI, or restore it into an empty MLflow",
        description=(
            "Disaster recovery of the model registry of connection --mlflow-conn-id: registered models, versions "
            "(with their source runs' params, metrics, tags and artifacts), aliases, tags, promotion history and "
            "every version's model artifact, sha256-checked both ways. The backup's manifest is signed with the "
            "signing key of --trust-conn-id, and a restore refuses a backup whose manifest does not verify."
        ),
    )
    actions = registry.add_subparsers(title="actions", dest="action", required=True)
    for name, handler, text in (
        ("export", _registry_export, "write a backup into URI, which must be empty or missing"),
        ("import", _registry_import, "restore the backup at URI into an MLflow with no model and no run"),
    ):
        action = actions.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        action.add_argument("uri", metavar="URI", help="a local folder or an s3:// prefix")
        action.add_argument("--mlflow-conn-id", default="mlflow_default", help="Airflow connection of MLflow")
        action.add_argument(
            "--storage-conn-id",
            "--aws-conn-id",
            dest="storage_conn_id",
            default="aws_default",
            help="Airflow connection of an s3://, gs:// or abfs:// URI (aws, google_cloud_platform or wasb)",
        )
        action.add_argument(
            "--trust-conn-id",
            default="mlops_trust_default",
            help="Airflow connection of the signing key (export) or verification keys (import), and alias log",
        )
        action.set_defaults(handler=handler)


def _registry_hook_and_options(args: argparse.Namespace) -> tuple[MlflowHook, ObjectStore | None]:
    from mlops_ops.hooks.mlflow import MlflowHook
    from mlops_ops.hooks.object_storage import object_store_for

    return MlflowHook(mlflow_conn_id=args.mlflow_conn_id), object_store_for(args.uri, args.storage_conn_id)


def _registry_export(args: argparse.Namespace) -> int:
    from mlops_ops.hooks.registry_backup import BackupError, export_registry
    from mlops_ops.hooks.trust import TrustHook

    hook, object_store = _registry_hook_and_options(args)
    trust = TrustHook(trust_conn_id=args.trust_conn_id)
    try:
        signing_key, keys = trust.signing_key(), trust.verification_keys
        summary = export_registry(
            hook.get_conn(),
            args.uri,
            signing_key,
            object_store,
            alias_log=trust.alias_log,
            verification_keys=keys,
        )
    # ValueError: the trust connection holds no signing key (a host that may only verify) or a malformed one.
    except (BackupError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"Exported {hook.registry_uri} to {args.uri}: {summary.describe()}")
    for note in summary.notes:
        print(f"note: {note}")
    return 0


def _registry_import(args: argparse.Namespace) -> int:
    from mlops_ops.core.signing import SignatureError
    from mlops_ops.hooks.registry_backup import BackupError, restore_backup, verified_backup
    from mlops_ops.hooks.trust import TrustHook

    hook, object_store = _registry_hook_and_options(args)
    trust = TrustHook(trust_conn_id=args.trust_conn_id)
    try:
        with verified_backup(args.uri, trust.verification_keys, object_store) as backup:
            # Opened only now: opening a SQLite registry creates its file, and a refused backup creates nothing.
            client = hook.get_conn()
            summary = restore_backup(client, backup, hook.artifact_root, alias_log=trust.alias_log)
    except (BackupError, SignatureError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"Restored {args.uri} into {hook.registry_uri}: {summary.describe()}")
    for note in summary.notes:
        print(f"note: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
