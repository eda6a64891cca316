# Thin wrappers; the README shows the two that matter: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-stamp

.PHONY: run up down reset test lint bench env clean

$(STAMP): pyproject.toml native/pyproject.toml native/Cargo.toml native/src/lib.rs web/package-lock.json
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	@# Strict decoding's compiled byte scan (Rust, built by maturin); without a Rust toolchain ingest
	@# uses the pure-Python scan, which gives the same verdicts more slowly.
	PATH="$$HOME/.cargo/bin:$$PATH" $(VENV)/bin/pip install -q ./native \
		|| echo "warning: native/ not built (no Rust toolchain?): ingest uses the slower Python scan" >&2
	@# The site's map library and the API docs UI, at the exact versions of web/package-lock.json. No
	@# install scripts run: these packages are served as files, never executed here.
	npm ci --prefix web --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $(STAMP)

env: $(STAMP)

## The main job: Kafka (fetched on first use) + ingest, catalog, publish on SQLite + demo events.
## Stays in the foreground; Ctrl-C stops everything it started.
run: $(STAMP)
	bash deploy/local/run-stack.sh

## Same, but returns once everything is up (stop with `make down`).
up: $(STAMP)
	CITYOS_DETACH=1 bash deploy/local/run-stack.sh

down:
	bash deploy/local/stop-stack.sh

## Start clean: delete every record the demo wrote, as deletion events through ingest (stack up).
reset: $(STAMP)
	$(VENV)/bin/cityos demo --reset --wait 60

## The whole test suite: lint, types, unit and integration tests on a real broker, SQLite and PostgreSQL.
test: $(STAMP)
	bash deploy/local/test.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

bench: $(STAMP)
	bash deploy/local/bench.sh

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache

.PHONY: cluster cluster-down chaos

## A local three-broker Kafka cluster (replication factor 3, min.insync.replicas 2) on
## 127.0.0.1:19192-19194; point anything at it with CITYOS_KAFKA_BOOTSTRAP=$$(bash deploy/local/cluster.sh url).
cluster: $(STAMP)
	bash deploy/local/cluster.sh start

cluster-down:
	bash deploy/local/cluster.sh stop

## Fault tests on that cluster (started and stopped here when not running) with a PostgreSQL server of
## their own: brokers, services and the database killed while events flow, 100,000 events per scenario
## (CHAOS_EVENTS=10000 for a quick run). Bounded: each test by pytest-timeout, the whole run by
## CHAOS_BUDGET_S (14 minutes); whether it passes, fails or runs out of time, every process it started
## is stopped (tests/chaos/run.sh). CI runs it after `make test`.
chaos: $(STAMP)
	bash tests/chaos/run.sh
