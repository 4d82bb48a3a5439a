# mlops-ops: the two commands first. Everything installs from PyPI with uv, exactly as uv.lock pins it.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PROJECT := $(CURDIR)
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
RUN := $(UV) run --frozen
PYTEST_ARGS ?=
# Test modules run on this many workers, each module on one worker (its module fixtures start Airflow, MLflow...),
# dispatched longest first (tests/conftest.py LONGEST_MODULES; --no-loadscope-reorder keeps that order).
PYTEST_WORKERS ?= 2

.PHONY: help demo test test-unit test-tools up down bench lint audit env uv clean ui-assets docs

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

demo: env  ## set up the embedded Airflow + MLflow, land the flights data, retrain flight_delay
	$(RUN) python -m mlops_dev demo --project $(PROJECT)

# --durations: the slowest tests are printed at the end of every run (CI's log included), where the suite's time
# goes is visible without a profiler.
test: env test-tools  ## the whole test suite (unit, integration on real services, DAG checks, end to end)
	$(RUN) pytest -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=15 $(PYTEST_ARGS)

test-unit: env  ## the unit tier alone (synthetic data; no Airflow scheduler, MLflow server or database; about 1.5 min)
	$(RUN) pytest -n $(PYTEST_WORKERS) tests/unit $(PYTEST_ARGS)

up: env  ## start the Airflow UI (airflow standalone) + MLflow UI on the embedded defaults, in the background
	$(RUN) python -m mlops_dev up --project $(PROJECT)

down:  ## stop what `make up` started (by its PID file, .airflow/mlops-ops-up.pid)
	$(RUN) python -m mlops_dev down --project $(PROJECT)

bench: env  ## the benchmarks; figures land in benchmarks/results/
	$(RUN) python -m benchmarks

# The documentation site: MkDocs + Material + mkdocstrings, configured by mkdocs.yml. --strict turns every warning
# (a broken link or anchor, a missing snippet file, a page left out of the nav) into a failure; the configuration
# reference pages and the benchmark figures are generated during the build (docs/gen_reference.py). Material's
# banner about MkDocs 2 is not a warning of this site: NO_MKDOCS_2_WARNING silences it.
docs: env  ## the documentation site, built with mkdocs build --strict into site/ (git-ignored)
	NO_MKDOCS_2_WARNING=1 $(RUN) mkdocs build --strict --site-dir site

lint: env  ## ruff, and mypy on the wheel (strict for core/)
	$(RUN) ruff check mlops_ops mlops_dev dags include plugins tests benchmarks examples
	$(RUN) ruff format --check mlops_ops mlops_dev dags include plugins tests benchmarks examples
	$(RUN) mypy

# Security scanners; reports land in .audit/ (git-ignored). Secrets: every tracked file but tests/ (throwaway
# values for loopback fakes such as moto) and uv.lock (hashes); mark a false positive `# pragma: allowlist secret`.
audit: env  ## security: bandit on mlops_ops and mlops_dev, detect-secrets on the repository, pip-audit on uv.lock
	@mkdir -p .audit
	@# bandit's stderr warns of each '# nosec' line on a multi-line statement: kept in .audit/bandit.log.
	$(RUN) bandit -q -r mlops_ops mlops_dev -f txt -o .audit/bandit.txt 2>.audit/bandit.log || { cat .audit/bandit.txt; exit 1; }
	@echo "bandit: clean (every finding fixed or marked '# nosec <id>' with its reason); report .audit/bandit.txt"
	git ls-files -z | grep -zv -E '^(tests/|uv\.lock$$)' | xargs -0 $(RUN) detect-secrets-hook
	@echo "detect-secrets: no credentials in the tracked files"
	$(UV) export --frozen --format requirements-txt --no-emit-project --no-hashes -q -o .audit/requirements.txt
	$(RUN) python .ci/pip_audit_report.py .audit/requirements.txt .audit/pip-audit.json

# --compile-bytecode: uv writes no .pyc by default, and where PYTHONDONTWRITEBYTECODE is set nothing ever does,
# so every process (each Airflow task, the scheduler, the API) compiled its imports again: a task's imports
# (airflow.sdk, mlflow, scikit-learn, pandas, pyarrow) took 11.5 s instead of 4.6 s. ~40 s once, ~3 s after.
env: uv ui-assets  ## the virtual environment in .venv, exactly as uv.lock pins it
	$(UV) sync --frozen --compile-bytecode

# The Models view's charts: Apache ECharts from the npm registry, exactly as package-lock.json pins it, copied into
# the package's git-ignored static folder (the wheel carries it: pyproject's hatch `artifacts`). Re-run when the lock
# changes.
UI_FRONTEND := mlops_ops/ui/frontend
UI_STATIC := mlops_ops/ui/static
ui-assets: $(UI_STATIC)/echarts.min.js  ## the Models view's JavaScript (npm ci; echarts.min.js into the package)

$(UI_STATIC)/echarts.min.js: $(UI_FRONTEND)/package-lock.json $(UI_FRONTEND)/package.json
	cd $(UI_FRONTEND) && npm ci --ignore-scripts --no-audit --no-fund
	mkdir -p $(UI_STATIC)
	cp $(UI_FRONTEND)/node_modules/echarts/LICENSE $(UI_STATIC)/echarts.LICENSE
	cp $(UI_FRONTEND)/node_modules/echarts/dist/echarts.min.js $@

# Services the tests start that come from the npm registry (Azurite for abfs://), as tests/tools' lock pins them.
TEST_TOOLS := tests/tools
test-tools: $(TEST_TOOLS)/node_modules/.package-lock.json  ## the tests' emulators from npm (Azurite; npm ci)

$(TEST_TOOLS)/node_modules/.package-lock.json: $(TEST_TOOLS)/package-lock.json $(TEST_TOOLS)/package.json
	cd $(TEST_TOOLS) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error

uv:
	@command -v uv >/dev/null 2>&1 || test -x $(UV) || python3 -m pip install --user --quiet uv

clean:  ## remove the embedded state (.airflow/, .mlops/)
	rm -rf .airflow .mlops
