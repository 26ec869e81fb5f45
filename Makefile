# datong — the front door. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV_VERSION := 0.13.8
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
RUN := $(UV) run --locked

.PHONY: help setup demo test test-unit test-integration lint format lock-check bench bench-scale up down status clean

help: ## Show this list of targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

setup: ## Install everything: system packages if missing, Python deps (uv), Spark jars and Trino
	@bash scripts/system-deps.sh
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install -q "uv==$(UV_VERSION)"
	$(UV) sync --locked
	$(RUN) datong setup

demo: setup ## Set up if needed, start the services and run the platform's main job
	$(RUN) datong demo

test: setup ## Set up if needed and run every test (unit, integration, browser)
	$(RUN) pytest

test-unit: ## Run the fast unit tests only (seconds; needs `make setup` once)
	$(RUN) pytest -m "not integration and not browser and not slow" -q

test-integration: setup ## Run only the tests that start real engines
	$(RUN) pytest -m "integration"

lint: ## Ruff (lint + format check) and mypy on the core package
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy

format: ## Format and autofix with ruff
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

lock-check: ## Fail when uv.lock does not match pyproject.toml
	$(UV) lock --check

bench: setup ## Run the quick benchmarks (start-up) and print results for BENCHMARKS.md
	$(RUN) python -m bench.startup

BENCH_PERSONS ?= 1000000
BENCH_DIR ?= .state/bench
# Space-separated resources to generate (e.g. the six the build reads); all when empty.
BENCH_RESOURCES ?=

bench-scale: setup ## Generate BENCH_PERSONS persons, then the ingest and base-library benchmarks (~45 min at 1M)
	test -d $(BENCH_DIR)/landing || $(RUN) datong generate --persons $(BENCH_PERSONS) --seed 1 --errors bench/error_rates.yaml --out $(BENCH_DIR)/landing $(foreach r,$(BENCH_RESOURCES),--resource $(r))
	$(RUN) python -m bench.ingest --landing $(BENCH_DIR)/landing
	$(RUN) --with deltalake python -m bench.delta_ceiling --landing $(BENCH_DIR)/landing
	$(RUN) python -m bench.build --landing $(BENCH_DIR)/landing --state $(BENCH_DIR)/state

up: ## Start the embedded services (Trino; SeaweedFS for s3:// roots)
	$(RUN) datong up

down: ## Stop the embedded services
	$(RUN) datong down

status: ## Show the embedded services
	$(RUN) datong status

clean: down ## Stop services and delete the local state dir (.state); the download cache stays
	rm -rf .state
