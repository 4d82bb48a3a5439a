# mlops-ops: the two commands first. Everything installs from PyPI with uv, exactly as uv.lock pins it.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PROJECT := $(CURDIR)
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
RUN := $(UV) run --frozen
PYTEST_ARGS ?=

.PHONY: help demo test up down bench lint env uv clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

demo: env  ## set up the embedded Airflow + MLflow, land the flights data, retrain flight_delay
	$(RUN) mlops-ops demo --project $(PROJECT)

test: env  ## the whole test suite (unit, integration on real services, DAG checks, end to end)
	$(RUN) pytest $(PYTEST_ARGS)

up: env  ## start the Airflow UI (airflow standalone) + MLflow UI on the embedded defaults, in the background
	$(RUN) mlops-ops up --project $(PROJECT)

down:  ## stop what `make up` started (by its PID file, .airflow/mlops-ops-up.pid)
	$(RUN) mlops-ops down --project $(PROJECT)

bench: env  ## the benchmarks; figures land in benchmarks/results/
	$(RUN) python -m benchmarks

lint: env  ## ruff
	$(RUN) ruff check mlops_ops dags include plugins tests benchmarks
	$(RUN) ruff format --check mlops_ops dags include plugins tests benchmarks

env: uv  ## the virtual environment in .venv, exactly as uv.lock pins it
	$(UV) sync --frozen

uv:
	@command -v uv >/dev/null 2>&1 || test -x $(UV) || python3 -m pip install --user --quiet uv

clean:  ## remove the embedded state (.airflow/, .mlops/)
	rm -rf .airflow .mlops
