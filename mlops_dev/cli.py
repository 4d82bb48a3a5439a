"""The development commands of the reference project: ``python -m mlops_dev demo|up|down`` (``make demo``,
``make up``, ``make down``).

They drive the embedded deployment of this repository (Airflow on SQLite under ``.airflow/``, MLflow under
``.mlops/``) and the flights reference project; none of this ships in the ``mlops-ops`` wheel, whose own command
line (``mlops-ops``) holds only what a deployment needs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run one development command; the exit status is 0 on success, 1 when it failed, 2 for a usage error."""
    args = build_parser().parse_args(argv)
    return args.handler(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mlops_dev",
        description="Development commands of the mlops-ops repository and its flights reference project.",
    )
    groups = parser.add_subparsers(title="commands", dest="command", required=True)
    _add_demo_command(groups)
    _add_up_command(groups)  # and down
    return parser


# --- demo ---------------------------------------------------------------------------------------------------


def _add_demo_command(groups: argparse._SubParsersAction) -> None:
    demo = groups.add_parser(
        "demo",
        help="land the real flights data, retrain flight_delay and promote it on the embedded stack",
        description=(
            "Initialise the embedded Airflow (.airflow/) and MLflow (.mlops/), apply airflow_settings.yaml, "
            "land 2013 flights months 1..N, run the retrain DAG and the promote DAG (policy auto), leaving "
            "flight_delay@challenger and flight_delay@champion, then land the months through M and batch-score "
            "its first days with the champion, monitor the last one (drift, performance) and, on a retrain "
            "request, retrain and promote again."
        ),
    )
    demo.add_argument(
        "--project", default=".", help="the Airflow project folder (default: current directory)"
    )
    demo.add_argument(
        "--through-month",
        type=int,
        default=2,
        choices=range(2, 12),
        metavar="N",
        help="land 2013 months 1..N before the first training (2-11, default 2: the winter)",
    )
    demo.add_argument(
        "--score-month",
        type=int,
        default=7,
        choices=range(3, 13),
        metavar="M",
        help="the month to score and monitor, after N (3-12, default 7: the summer)",
    )
    demo.add_argument(
        "--score-days",
        type=int,
        default=3,
        choices=range(0, 29),
        metavar="D",
        help="batch-score the first D days of month M after promotion, then monitor (0-28, default 3)",
    )
    demo.set_defaults(handler=_demo)


def _monitoring_lines(monitoring: dict) -> str:
    if not monitoring:
        return ""
    lines = []
    for day in monitoring["days"]:
        drift, performance, request = day["drift"], day["performance"], day["request"]
        scored = performance.get("interval", {}).get("start", "")[:10]
        lines.append(f"  monitor {scored} drift: {drift.get('summary')}\n")
        if drift.get("new_categories"):
            lines.append(f"    new categories {drift['new_categories']}\n")
        metrics = performance.get("metrics") or {}
        if metrics:
            lines.append(
                f"    performance  ROC-AUC {metrics.get('roc_auc') or 0:.3f}, recall {metrics.get('recall') or 0:.3f}, "
                f"cost/flight {performance['business_cost']['per_row']:.2f}; {performance['decay']['summary']}\n"
            )
        if request.get("send"):
            lines.append(f"    retrain requested: {request['reason']}\n")
        elif request.get("requested"):
            lines.append(
                f"    retrain asked again, held by the cool-down until {request['suppressed_until']}\n"
            )
    if monitoring["days"]:
        lines.append(
            f"  drift reports  {monitoring['days'][-1]['drift'].get('report_uri', '').rsplit('/interval=', 1)[0]}\n"
        )
    retrain = monitoring["retrain"]
    if retrain.get("version"):
        lines.append(
            f"  retrained      v{retrain['version']} (held-out ROC-AUC {retrain['metrics'].get('roc_auc', 0):.3f}) "
            f"for request {retrain['event_id']}; its mlops.trigger_reason: {retrain['trigger_reason']}\n"
        )
    elif retrain:
        lines.append("  retrained      the new model did not pass its gate: nothing registered\n")
    return "".join(lines)


def _streamed_lines(streamed: dict) -> str:
    replay = streamed.get("replay") or {}
    if not replay:
        return ""
    if "skipped" in replay:
        return f"  streamed       skipped: {replay['skipped']}\n"
    compacted = streamed["compacted"]
    dead = ", ".join(f"{count} {kind}" for kind, count in sorted(replay["dead_letters"].items())) or "none"
    versions = ", ".join(f"v{version}" for version in sorted(replay["versions"]))
    return (
        f"  streamed {compacted['interval']['start'][:10]}  {replay['events']} flights as events on {replay['redis']}: "
        f"{replay['scored']} scored with {versions} in {replay['seconds']:.1f} s ({replay['events_per_second']} "
        f"events/s, one scorer), dead letters: {dead}\n"
        f"    compacted    {compacted['rows']} rows ({compacted['duplicates']} duplicate events) into "
        f"{compacted['uri']}\n"
    )


def _scored_lines(scored: list[dict]) -> str:
    lines = []
    for day in scored:
        lines.append(
            f"  scored {day['interval']['start'][:10]}  {day['rows']} flights with v{day['model_version']}: "
            f"{day['predicted_delayed']:.1%} predicted late, {day['actually_delayed']:.1%} arrived late\n"
        )
    if scored:
        lines.append(f"  predictions    {scored[0]['uri'].rsplit('/interval=', 1)[0]}\n")
    return "".join(lines)


def _demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mlops_dev.demo import DemoFailed, run_demo

    try:
        report = run_demo(
            Path(args.project),
            through_month=args.through_month,
            score_days=args.score_days,
            score_month=args.score_month,
        )
    except DemoFailed as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    # Imported after the demo set AIRFLOW_HOME: this module imports Airflow, which reads it once.
    from mlops_ops.hooks.trust import trust_home

    aliases = ", ".join(f"{alias} -> v{version}" for alias, version in sorted(report.aliases.items()))
    print(
        f"""
Done. {report.model_name}: {report.versions} version(s); aliases: {aliases}
  data version   {report.data_version}
  held-out       ROC-AUC {report.metrics["roc_auc"]:.3f}, log loss {report.metrics["log_loss"]:.3f}, \
accuracy {report.metrics["accuracy"]:.3f} on {int(report.metrics["rows"])} flights
{_scored_lines(report.scored)}{_streamed_lines(report.streamed)}{_monitoring_lines(report.monitoring)}Where to look:
  Airflow + MLflow UIs   make up   (http://127.0.0.1:8080, user admin; http://127.0.0.1:5000, \
user viewer); make down
  MLflow tracking URI    {report.tracking_uri}
  data           {Path(args.project).resolve() / ".mlops" / "data"}
  trust          {trust_home()} (signing key, signed alias log; docs/security.md)
"""
    )
    return 0


# --- up / down ----------------------------------------------------------------------------------------------


def _add_up_command(groups: argparse._SubParsersAction) -> None:
    up = groups.add_parser(
        "up",
        help="start the Airflow UI (airflow standalone) and the MLflow UI on the embedded defaults",
        description=(
            "Start `airflow standalone` (scheduler, dag-processor, triggerer, API server + UI) and an MLflow "
            "server on the embedded state of the project (.airflow/, .mlops/) in the background, so the UIs "
            "show what `make demo` ran. MLflow asks for a login (MLflow's basic-auth app): Airflow writes "
            "as its service account, people read as `viewer`; the passwords are generated on first start "
            "into .mlops/mlflow-auth/. `make down` stops both (by the PID file in .airflow/)."
        ),
    )
    up.add_argument("--project", default=".", help="the Airflow project folder (default: current directory)")
    up.add_argument("--airflow-port", type=int, default=8080, help="the Airflow UI's port (default 8080)")
    up.add_argument("--mlflow-port", type=int, default=5000, help="the MLflow UI's port (default 5000)")
    up.set_defaults(handler=_up)
    down = groups.add_parser(
        "down",
        help="stop what `make up` started",
        description="Stop the Airflow and MLflow servers that `make up` started, by its PID file.",
    )
    down.add_argument(
        "--project", default=".", help="the Airflow project folder (default: current directory)"
    )
    down.set_defaults(handler=_down)


def _up(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mlops_dev.local_stack import LocalStackError, start_local_stack

    try:
        stack = start_local_stack(
            Path(args.project), airflow_port=args.airflow_port, mlflow_port=args.mlflow_port
        )
    except LocalStackError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(
        f"""Airflow UI  {stack.airflow_url}  user `admin`, password in {stack.passwords_file}
MLflow UI   {stack.mlflow_url}  user `{stack.mlflow_viewer}` (read-only), password in \
{stack.mlflow_viewer_password_file}
            only Airflow's service account writes the registry (every password: {stack.mlflow_auth_folder})
logs        {stack.logs}
Stop both with `make down`."""
    )
    return 0


def _down(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mlops_dev.local_stack import stop_local_stack

    try:
        stopped = stop_local_stack(Path(args.project))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"Stopped {', '.join(stopped)}." if stopped else "Nothing was running.")
    return 0
