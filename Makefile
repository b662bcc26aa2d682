# refmgr — developer commands. `make run` and `make test` each create or update .venv themselves.
#
# Each recipe runs in one bash shell (.ONESHELL) with -e, so a failing step stops it.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.ONESHELL:
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Reinstall only when pyproject.toml is newer than the last install.
STAMP := $(VENV)/.installed
MANAGE := $(BIN)/python manage.py
PORT ?= 8000
# Extra pytest arguments, e.g. `make test PYTEST_ARGS="-k rls -x"`; .ci/run passes --create-db.
PYTEST_ARGS ?=
# `make bench BENCH_SCALE=small` for the 20-organization smoke data set (CI); see bench/run.py.
BENCH_SCALE ?= full
BENCH_ARGS ?=

.PHONY: help install run test lint fmt migrate superuser bench clean

help: ## List the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "refmgr needs Python 3.11 or newer"'
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## Create or update .venv (only when pyproject.toml changed)

migrate: install ## Apply database migrations
	$(MANAGE) migrate --noinput

run: install ## Migrate, seed demo data, then run web, Celery worker and beat (Ctrl-C stops all)
	@echo "==> migrate"
	$(MANAGE) migrate --noinput
	echo "==> seed_demo"
	$(MANAGE) seed_demo
	echo "==> web on 127.0.0.1:$(PORT), Celery worker, Celery beat"
	pids=()
	stop() {
	  trap - INT TERM EXIT
	  echo; echo "Stopping web, worker and beat..."
	  kill -TERM "$${pids[@]}" 2>/dev/null || true
	  wait || true
	}
	trap stop INT TERM EXIT
	$(MANAGE) runserver "127.0.0.1:$(PORT)" & pids+=($$!)
	$(BIN)/celery -A refmgr worker --loglevel INFO --concurrency 2 --hostname "refmgr-dev@%h" & pids+=($$!)
	$(BIN)/celery -A refmgr beat --loglevel INFO & pids+=($$!)
	sleep 3
	echo
	echo "refmgr is running at http://127.0.0.1:$(PORT)/ (sign in with a demo login above; Ctrl-C stops everything)"
	echo
	# Whichever of the three stops first (or Ctrl-C) brings the others down with it.
	wait -n || true

test: install ## Lint, check migrations and run the whole test suite (browser tests included)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(MANAGE) makemigrations --check --dry-run
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install ## ruff check and format check, no changes
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: install ## Fix what ruff can and format the code
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

superuser: migrate ## Create a Django superuser interactively
	$(MANAGE) createsuperuser

# The benchmark makes its own database, refmgr_bench_$(BENCH_SCALE), on the server of DATABASE_URL
# (127.0.0.1:5432 as postgres without one) and drops and regenerates it each run; the app's own
# database is never touched. Full scale takes about 15-20 minutes on 2 cores. BENCH_ARGS passes
# options on, e.g. BENCH_ARGS="--requests 30 --output /tmp/bench.md --skip-generate".
bench: install ## Generate refmgr_bench_<scale> on DATABASE_URL's server, measure, write docs/benchmarks.md
	$(BIN)/python -m bench.run --scale $(BENCH_SCALE) $(BENCH_ARGS)

clean: ## Remove .venv, the SQLite database and var/ (queues, static, media)
	rm -rf $(VENV) db.sqlite3 db.sqlite3-* var
