# The user's commands: `make demo` and `make test`. Every target creates .venv and
# installs the project into it when it is missing or pyproject.toml changed.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Nothing is ever written to the user's home directory; a DAGSTER_HOME you set is kept.
export DAGSTER_HOME ?= $(CURDIR)/dagster_home
export WORKFLOWS_DATA_DIR ?= $(CURDIR)/data

UI_HOST ?= 127.0.0.1
UI_PORT ?= 3000

.PHONY: demo run reproduce test test-fast lint ui ingest bench bench-incremental bench-distributed validate clean-data install lock pools doctor

install: $(STAMP)

# Locked install: constraints.txt pins every transitive version (`make lock` rewrites it),
# installed by uv (seconds; pip takes minutes). uv reads neither pip's configuration nor its
# local wheels, so the folders pip is configured to find wheels in (PIP_FIND_LINKS or
# `pip config`: on these machines, the CPU build of torch 2.13.0) are passed on.
UV_VERSION := 0.13.9
FIND_LINKS ?= $(or $(PIP_FIND_LINKS),$(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null))

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(BIN)/python -m uv pip install --quiet --python $(BIN)/python $(addprefix --find-links ,$(FIND_LINKS)) \
		-c constraints.txt -e ".[dev]"
	@touch $(STAMP)

# Re-resolve constraints.txt after a change to the dependencies in pyproject.toml (keeps the
# versions already pinned where they still fit; `ARGS=--upgrade` moves them). One universal lock
# from the package registry alone (no local wheel folder), with markers for Linux x86-64 and arm64
# and macOS 14+ on Apple silicon; it pins torch==2.13.0 with no local label, which a wheel folder's
# 2.13.0+cpu satisfies too. workflows_tests/integration/test_install.py resolves it for each platform.
lock: $(STAMP)
	$(BIN)/python -m uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
		--custom-compile-command "make lock" -o constraints.txt $(ARGS)

# Which torch is installed (CUDA or CPU build), the device it trains on, its threads, the folders.
doctor: $(STAMP)
	$(BIN)/workflows doctor

demo: $(STAMP)
	$(BIN)/workflows demo

# make run FILE=path/to/candles.csv | SYMBOL=BTCUSDT [ARGS="--periods 6 --profile ci"]
run: $(STAMP)
	@test -n "$(FILE)$(SYMBOL)" || { echo "usage: make run FILE=path/to/candles.csv | SYMBOL=BTCUSDT [ARGS=...]"; exit 2; }
	$(BIN)/workflows run $(if $(FILE),"$(FILE)") $(if $(SYMBOL),--symbol "$(SYMBOL)") $(ARGS)

# make reproduce FILE=... | SYMBOL=BTCUSDT (default: --synthetic): the original 90-day study, side by side
reproduce: $(STAMP)
	$(BIN)/workflows reproduce $(if $(FILE),"$(FILE)") $(if $(SYMBOL),--symbol "$(SYMBOL)") $(if $(FILE)$(SYMBOL),,--synthetic --symbol SYNTHUSDT) $(ARGS)

# Lint and type checks: zero findings, or the tests do not run.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pyright --pythonpath $(BIN)/python

# The tests run on every core (pytest-xdist, at most 4 workers): most of them wait on one
# process and one thread. PYTEST_WORKERS=0 runs them in this process, one after another.
PYTEST_WORKERS ?= auto
PYTEST_PARALLEL = $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --maxprocesses 4)

test: lint
	$(BIN)/python -m pytest -q $(PYTEST_PARALLEL) workflows_tests

test-fast: lint
	$(BIN)/python -m pytest -q $(PYTEST_PARALLEL) -m "not slow" workflows_tests

ui: $(STAMP)
	env --default-signal=INT,TERM VIRTUAL_ENV=$(CURDIR)/$(VENV) $(BIN)/dg dev --use-active-venv -h $(UI_HOST) -p $(UI_PORT)

ingest: $(STAMP)
	$(BIN)/workflows ingest

# Size the gpu concurrency pool to this machine (GPUs, else CPU trainings side by side).
pools: $(STAMP)
	$(BIN)/workflows pools

validate: $(STAMP)
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(BIN)/dg check defs --use-active-venv

bench: $(STAMP)
	$(BIN)/python -m benchmarks.ingest
	$(BIN)/python -m benchmarks.distributed
	$(BIN)/python -m benchmarks.training
	$(BIN)/python -m benchmarks.ui
	nice -n 10 $(BIN)/python -m benchmarks.recovery --jobs 2
	$(BIN)/python -m benchmarks.vol_loss
	$(BIN)/python -m benchmarks.reader_memory

# One figure each: one new hour vs a full rebuild; the retrain of 1, 3, 10 symbols in process vs Celery.
bench-incremental: $(STAMP)
	$(BIN)/python -m benchmarks.ingest --incremental-only

bench-distributed: $(STAMP)
	$(BIN)/python -m benchmarks.distributed

clean-data:
	rm -rf $(WORKFLOWS_DATA_DIR)/warehouse.duckdb* $(WORKFLOWS_DATA_DIR)/checkpoints $(WORKFLOWS_DATA_DIR)/reports \
		$(WORKFLOWS_DATA_DIR)/outputs
