# AtomicSeats — the user's entry points.
#   make run    the platform on its embedded default (SQLite, in-process pipeline, demo data)
#   make test   the whole suite, with the real PostgreSQL and Redis it starts itself
#   make up / make down   the full-mode platform on loopback (services, API, bridge, Celery, Flower)

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000
STAMP_RUNTIME := $(VENV)/.installed-runtime
STAMP_DEV := $(VENV)/.installed-dev

.PHONY: run test lint up down services-env clean-state help

help:
	@echo "make run    - embedded default on http://$(HOST):$(PORT) with demo data"
	@echo "make test   - the whole suite against SQLite, PostgreSQL and Redis (installs Debian's chromium and prometheus if missing)"
	@echo "make up     - full mode on loopback: PostgreSQL, Redis, Kafka, SMTP sink, API, bridge, worker, beat, Flower"
	@echo "make down   - stop all of it"
	@echo "make lint   - ruff check and format check, import contracts (lint-imports), types (mypy), security (bandit)"
	@echo "make screenshots - the README's screenshots again (docs/screenshots/, Debian's chromium)"
	@echo "make audit  - known vulnerabilities of every pinned requirement (pip-audit; needs network to the advisory service)"
	@echo "make bench  - flash-sale benchmark of the full pipeline (STACK=bench; BENCH_STACK/BENCH_PORT_OFFSET move it) vs the embedded default; BENCH_ARGS=--help"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP_RUNTIME): requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

$(STAMP_DEV): requirements-dev.txt requirements.txt $(STAMP_RUNTIME)
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

run: $(STAMP_RUNTIME)
	$(BIN)/flask --app wsgi db upgrade
	$(BIN)/flask --app wsgi seed-demo
	@echo "AtomicSeats (embedded default): pages on http://$(HOST):$(PORT)/  -  API docs: http://$(HOST):$(PORT)/api/docs"
	@API_HOST=$(HOST) API_PORT=$(PORT) exec bash scripts/api_server.sh embedded

test: $(STAMP_DEV)
	@bash scripts/run_tests.sh $(PYTEST_ARGS)

.PHONY: screenshots
screenshots: $(STAMP_DEV)
	@bash scripts/ensure_chromium.sh
	$(BIN)/python -m scripts.screenshots

.PHONY: bench
bench: $(STAMP_DEV)
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && export DEBIAN_FRONTEND=noninteractive && \
	  { apt-get install -y -q --no-install-recommends wrk || { apt-get update -q && apt-get install -y -q --no-install-recommends wrk; }; }; } || \
	  { echo "make bench needs wrk (apt-get install wrk)" >&2; exit 2; }
	@$(BIN)/python -m scripts.bench $(BENCH_ARGS)

lint: $(STAMP_DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check atomicseats tests config.py wsgi.py
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy
	$(BIN)/bandit -c pyproject.toml -q -r atomicseats config.py wsgi.py asgi.py celery_worker.py kafka_bridge.py

# Known vulnerabilities of every pin (requirements.txt, and requirements-dev.txt which includes
# it), from PyPI's advisory data (AUDIT_SERVICE=osv: OSV's). Needs network to that service.
# --strict: a package that could not be checked fails the run, so a clean result always means
# "checked and clean". pip-audit lives in a virtualenv of its own (requirements-audit.txt).
AUDIT_VENV := .run/audit-venv
AUDIT_SERVICE ?= pypi

.PHONY: audit
audit: $(AUDIT_VENV)/.installed
	$(AUDIT_VENV)/bin/pip-audit --strict --no-deps --disable-pip --progress-spinner off \
	  --vulnerability-service $(AUDIT_SERVICE) -r requirements-dev.txt

$(AUDIT_VENV)/.installed: requirements-audit.txt
	$(PYTHON) -m venv $(AUDIT_VENV)
	$(AUDIT_VENV)/bin/python -m pip install --quiet -r requirements-audit.txt
	touch $@

# Full mode on loopback runs the SMTP sink (aiosmtpd, a dev requirement) beside the app: dev pins too.
up: $(STAMP_DEV)
	@STACK=dev bash scripts/platform.sh up

down:
	@STACK=dev bash scripts/platform.sh down
