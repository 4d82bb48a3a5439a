"""The wheel as a team gets it: its contents, then, inside a fresh virtual environment holding a stock Airflow
from PyPI and nothing of this checkout, Airflow's own view of the provider and a DAG of its operators run.

Called by .ci/wheel_check.sh:
  python .ci/wheel_check.py contents WHEEL         (any Python: reads the wheel as a zip)
  VENV/bin/python .ci/wheel_check.py installed WORK   (the fresh venv's Python, working directory WORK)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

CONNECTION_TYPES = {"mlflow", "feast", "prometheus_pushgateway", "mlops_webhook", "mlops_redis"}
EXTRA_LINKS = {
    "mlops_ops.links.mlflow.MlflowRunLink",
    "mlops_ops.links.mlflow.MlflowModelVersionLink",
    "mlops_ops.links.mlflow.XComUrlLink",
}
#: The example DAG file that runs: the documentation's churn lifecycle on synthetic data (embedded profile).
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "docs_snippets"


def check(condition: bool, message: str) -> None:
    if not condition:
        raise SystemExit(f"wheel check FAILED: {message}")


def contents(wheel: Path) -> None:
    """What a team's pip install puts in site-packages: the provider, typed, with its built JavaScript."""
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/", 1)[0] for name in names}
    dist_info = next(name for name in top if name.endswith(".dist-info"))
    check(
        top == {"mlops_ops", dist_info}, f"the wheel holds only mlops_ops and its metadata, not {sorted(top)}"
    )
    for required in (
        "mlops_ops/py.typed",
        "mlops_ops/ui/static/echarts.min.js",
        "mlops_ops/get_provider_info.py",
    ):
        check(required in names, f"{required} missing from the wheel")
    check(f"{dist_info}/licenses/LICENSE" in names, "LICENSE missing from the wheel's metadata")
    check(
        not any("/frontend/" in name or "node_modules" in name for name in names), "npm folder in the wheel"
    )
    metadata = zipfile.ZipFile(wheel).read(f"{dist_info}/METADATA").decode()
    check("Project-URL: Documentation," in metadata, "no Documentation project URL")
    check("License-Expression: Apache-2.0" in metadata, "no license expression")
    entry_points = zipfile.ZipFile(wheel).read(f"{dist_info}/entry_points.txt").decode()
    check("[apache_airflow_provider]" in entry_points and "[airflow.plugins]" in entry_points, "entry points")
    print(f"wheel contents: {len(names)} files, provider, py.typed, LICENSE, Models view assets: ok")


def airflow_json(*args: str) -> list[dict]:
    airflow = Path(sys.executable).with_name("airflow")
    completed = subprocess.run(
        [str(airflow), *args, "--output", "json"], capture_output=True, text=True, env=os.environ.copy()
    )
    check(completed.returncode == 0, f"airflow {' '.join(args)}: {completed.stderr[-2000:]}")
    return json.loads(completed.stdout[completed.stdout.index("[") :])


def installed(work: Path) -> None:
    import mlops_ops

    where = Path(mlops_ops.__file__).resolve()
    check(Path(sys.prefix).resolve() in where.parents, f"mlops_ops imported from {where}, not the fresh venv")
    import airflow

    started = time.monotonic()
    subprocess.run(
        [str(Path(sys.executable).with_name("airflow")), "db", "migrate"], check=True, capture_output=True
    )
    providers = {entry["package_name"]: entry for entry in airflow_json("providers", "list")}
    check(providers.get("mlops-ops", {}).get("version") == mlops_ops.__version__, "providers list: mlops-ops")
    hooks = {entry["connection_type"]: entry for entry in airflow_json("providers", "hooks")}
    check(
        CONNECTION_TYPES <= set(hooks), f"connection types: {sorted(CONNECTION_TYPES - set(hooks))} missing"
    )
    check(hooks["mlflow"]["package_name"] == "mlops-ops", "the mlflow connection type is mlops-ops'")
    links = {entry["extra_link_class_name"] for entry in airflow_json("providers", "links")}
    check(EXTRA_LINKS <= links, f"extra links: {sorted(EXTRA_LINKS - links)} missing")
    plugins = {entry["name"]: entry for entry in airflow_json("plugins")}
    check("mlops_models" in plugins, f"plugins: mlops_models missing from {sorted(plugins)}")
    print(
        f"airflow {airflow.__version__}: provider mlops-ops {mlops_ops.__version__}, "
        f"{len(CONNECTION_TYPES)} connection types, {len(EXTRA_LINKS)} extra links, the Models view plugin: ok "
        f"({time.monotonic() - started:.0f} s)"
    )

    started = time.monotonic()
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    check(bag.import_errors == {}, f"import errors: {bag.import_errors}")
    states = {}
    for dag_id in ("docs_churn_land", "docs_churn_retrain"):
        run = bag.dags[dag_id].test()
        states[dag_id] = str(run.state)
        check(str(run.state) == "success", f"{dag_id}: {run.state}")
    from mlops_ops.hooks.mlflow import MlflowHook

    aliases = MlflowHook().get_aliases("docs_churn")
    check("challenger" in aliases, f"no challenger registered: {aliases}")
    print(
        f"example DAG (train, gate, register on synthetic data) with dag.test(): {states}, challenger = "
        f"version {aliases['challenger']} ({time.monotonic() - started:.0f} s)"
    )


def project(work: Path) -> Path:
    """The example as a team's project: dags/ and config/ side by side, outside this checkout."""
    root = work / "project"
    (root / "dags").mkdir(parents=True, exist_ok=True)
    shutil.copy(EXAMPLE / "dags" / "churn_lifecycle.py", root / "dags")
    shutil.copytree(EXAMPLE / "config", root / "config", dirs_exist_ok=True)
    return root


if __name__ == "__main__":
    command, target = sys.argv[1], Path(sys.argv[2])
    if command == "contents":
        contents(target)
    elif command == "project":
        print(project(target))
    else:
        installed(target)
