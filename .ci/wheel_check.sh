#!/usr/bin/env bash
# The wheel a team installs: build it, read its contents, install it with every extra into a fresh virtual
# environment beside a stock Airflow from PyPI, and check Airflow sees the provider (providers list, connection
# types, extra links, the Models view plugin) and runs an example DAG of its operators (dag.test()).
# Airflow's published constraints file is not reachable from CI's network, so apache-airflow is pinned to the
# version uv.lock tests and everything else resolves fresh from PyPI within the wheel's own bounds: what a team
# gets. Run after `make env` (which builds the Models view's JavaScript the wheel must carry).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.local/bin:$PATH"
started=$(date +%s)

work=$(mktemp -d "${TMPDIR:-/tmp}/mlops-ops-wheel-check.XXXXXX")
trap 'rm -rf "$work"' EXIT

airflow_version=$(python3 -c 'import tomllib; print(next(p["version"] for p in tomllib.load(open("uv.lock", "rb"))["package"] if p["name"] == "apache-airflow"))')
uv build --wheel --out-dir "$work/dist" -q
wheel=$(ls "$work"/dist/mlops_ops-*.whl)
python3 .ci/wheel_check.py contents "$wheel"

# A fresh environment: nothing of this checkout, not the project's .venv. uv's cache keeps it quick.
uv venv -q --python 3.11 "$work/venv"
uv pip install -q --compile-bytecode --python "$work/venv/bin/python" "apache-airflow==$airflow_version" "mlops-ops[all] @ file://$wheel"
installed=$(date +%s)
echo "wheel check: built and installed with apache-airflow==$airflow_version in $((installed - started)) s"

project=$(python3 .ci/wheel_check.py project "$work")
(
    cd "$work"
    unset PYTHONPATH MLFLOW_TRACKING_URI MLOPS_DATA_ROOT
    export AIRFLOW_HOME="$work/airflow" AIRFLOW__CORE__DAGS_FOLDER="$project/dags" \
        AIRFLOW__CORE__LOAD_EXAMPLES=False AIRFLOW__CORE__UNIT_TEST_MODE=False \
        MLOPS_PROFILE=embedded MLOPS_HOME="$work/mlops" GX_ANALYTICS_ENABLED=false \
        MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false OMP_NUM_THREADS=1
    # dag.test() logs every task at length: kept in a file, shown when the check fails.
    if ! "$work/venv/bin/python" "$OLDPWD/.ci/wheel_check.py" installed "$work" >"$work/check.log" 2>&1; then
        tail -n 80 "$work/check.log"
        exit 1
    fi
    grep -E '^(airflow |example DAG)' "$work/check.log"
)
echo "wheel check: passed in $(($(date +%s) - started)) s"
