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

.PHONY: demo run test test-fast ui ingest bench bench-incremental bench-distributed validate clean-data install pools

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/workflows demo

# make run FILE=path/to/candles.csv [ARGS="--profile ci --folds 2"]
run: $(STAMP)
	@test -n "$(FILE)" || { echo "usage: make run FILE=path/to/candles.csv [ARGS=...]"; exit 2; }
	$(BIN)/workflows run "$(FILE)" $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q workflows_tests

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" workflows_tests

ui: $(STAMP)
	env --default-signal=INT,TERM $(BIN)/dagster dev -h $(UI_HOST) -p $(UI_PORT) -w workspace.yaml

ingest: $(STAMP)
	$(BIN)/workflows ingest

# Size the gpu concurrency pool to this machine (GPUs, else CPU trainings side by side).
pools: $(STAMP)
	$(BIN)/workflows pools

validate: $(STAMP)
	$(BIN)/dagster definitions validate -w workspace.yaml

bench: $(STAMP)
	$(BIN)/python scripts/bench_ingest.py
	$(BIN)/python scripts/bench_distributed.py
	$(BIN)/python scripts/bench_training.py
	$(BIN)/python scripts/bench_ui.py
	nice -n 10 $(BIN)/python scripts/bench_recovery.py --jobs 2
	$(BIN)/python scripts/bench_vol_loss.py

# One figure each: one new hour vs a full rebuild; the retrain of 1, 3, 10 symbols in process vs Celery.
bench-incremental: $(STAMP)
	$(BIN)/python scripts/bench_ingest.py --incremental-only

bench-distributed: $(STAMP)
	$(BIN)/python scripts/bench_distributed.py

clean-data:
	rm -rf $(WORKFLOWS_DATA_DIR)/warehouse.duckdb* $(WORKFLOWS_DATA_DIR)/checkpoints $(WORKFLOWS_DATA_DIR)/reports
