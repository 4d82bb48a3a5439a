"""``mlops-ops ci``: what a team's own CI system (GitHub Actions, GitLab CI, Jenkins) runs around the DAGs.

- ``ci retrain`` (:mod:`mlops_ops.ci.retrain`): trigger the retrain DAG for the commit the job tested, follow it,
  and exit on the gate's verdict;
- ``ci check-data`` and ``ci check-model`` (:mod:`mlops_ops.ci.checks`): the DAGs' data suite and behavioural
  model checks on a sample, without Airflow.
"""

from __future__ import annotations

import argparse


def add_ci_commands(groups: argparse._SubParsersAction) -> None:
    """Register the ``ci`` command group and its actions."""
    from mlops_ops.ci import checks, retrain

    ci = groups.add_parser(
        "ci",
        help="for a CI job: retrain for a commit and gate on the verdict; data and model checks on a sample",
        description="What a team's CI system runs: retrain for the tested commit and exit on the gate's verdict "
        "(ci retrain), and the DAGs' data and model checks on a sample without Airflow (ci check-data, "
        "ci check-model).",
    )
    actions = ci.add_subparsers(title="actions", dest="action", required=True)
    retrain.add_command(actions)
    checks.add_commands(actions)
