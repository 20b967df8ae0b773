# rater: the two commands a newcomer needs are `make demo` and `make test` (see README.md).
#
#   make demo    venv + install, start the local stack (.stack/, ports 19092/16379/19000/18123),
#                run the demo (scripts/demo.sh) on it; the stack keeps running afterwards
#   make test    venv + install, a stack of its own on fresh state (.stack-test/, ports 29xxx),
#                chromium for the portal's browser tests (apt, as root),
#                ruff, mypy and the whole pytest suite (with the wheel installed in a clean
#                .venv-wheel/), then the balance and pipeline tests again on a three-node
#                Redis Cluster; the stack is stopped afterwards
#   make bench   venv + install, a stack of its own (.stack-bench/, ports 28xxx), every
#                benchmarks/bench_*.py module, results in benchmarks/RESULTS.md
#   make soak    venv + install, a stack of its own (.stack-soak/, ports 26xxx), the rebalance
#                soak: workers leave mid-backlog SOAK_ROUNDS times per group size (make test
#                runs 3); replay a failure's timing with RATER_TEST_SOAK_SEED=<seed it printed>
#   make lint    ruff check + mypy
#
# Two `make test` runs at the same time need different ports and folders:
#   make test TEST_PORT_BASE=27 TEST_STACK_DIR=$PWD/.stack-test27

SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
RATER := $(VENV)/bin/rater
STAMP := $(VENV)/.installed-stack-dev

TEST_PORT_BASE ?= 29
TEST_STACK_DIR ?= $(CURDIR)/.stack-test
# tests set their PIN secret explicitly: rater has no default one (docs/REDIS_KEYS.md)
TEST_PIN_SECRET ?= make-test-pin-secret-not-for-production-0123456789
BENCH_PORT_BASE ?= 28
BENCH_STACK_DIR ?= $(CURDIR)/.stack-bench
PYTEST_ARGS ?=
# run a second time with RATER_REDIS_CLUSTER_NODES set: balances and the pipeline on Redis Cluster
CLUSTER_TESTS ?= tests/integration/test_debit_rules.py tests/integration/test_debit_concurrency.py \
	tests/integration/test_accounts_api.py tests/integration/test_authorize_rules.py \
	tests/integration/test_authorize_lifetime.py tests/integration/test_pin_guessing.py \
	tests/integration/test_pipeline_outcomes.py tests/integration/test_accounts_card_chunks.py \
	tests/integration/test_ledger_ids.py \
	tests/integration/test_serve_processes.py tests/integration/test_serve_auth.py \
	tests/integration/test_serve_http.py tests/integration/test_serve_edges.py \
	tests/integration/test_switch_simulator.py \
	tests/integration/test_portal_http.py tests/integration/test_tariff_owners.py
BENCH_ARGS ?=
SOAK_PORT_BASE ?= 26
SOAK_STACK_DIR ?= $(CURDIR)/.stack-soak
SOAK_ROUNDS ?= 25

# RATER_* settings of a stack on port base $(1) with state folder $(2)
stack_env = RATER_STACK_DIR=$(2) RATER_KAFKA_BOOTSTRAP=127.0.0.1:$(1)092 \
	RATER_REDIS_URL=redis://127.0.0.1:$(1)379/0 RATER_CLICKHOUSE_PORT=$(1)000 \
	RATER_CLICKHOUSE_HTTP_PORT=$(1)123 RATER_METRICS_PORT=$(1)464 RATER_HTTP_PORT=$(1)080

.PHONY: help install demo test bench soak lint clean

help:
	@sed -n '1,15p' Makefile

# The virtual environment, re-installed when pyproject.toml changes. A fresh Debian has no
# venv module: as root, python3-venv is installed first.
$(STAMP): pyproject.toml
	@if [ ! -x $(PY) ]; then
	  if ! $(PYTHON) -m venv $(VENV) 2>/dev/null; then
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
	      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
	      rm -rf $(VENV) && $(PYTHON) -m venv $(VENV)
	    else
	      echo "python3 -m venv failed: run  sudo apt-get install -y python3-venv" >&2; exit 1
	    fi
	  fi
	fi
	echo "== installing rater into $(VENV)"
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[stack,dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	@bash scripts/demo.sh

lint: install
	@$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# Fresh state every run: the folder is purged first, so no run sees another's data. The stack
# is stopped on every exit path (trap); its logs stay in $(TEST_STACK_DIR) for a post-mortem.
test: install
	@export $(call stack_env,$(TEST_PORT_BASE),$(TEST_STACK_DIR))
	export RATER_PIN_SECRET=$(TEST_PIN_SECRET)
	# the portal's browser tests drive Debian's chromium (never a downloaded browser)
	if [ ! -x /usr/bin/chromedriver ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
	  echo "== installing chromium and chromium-driver (portal browser tests)"
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
	fi
	$(RATER) stack down --purge >/dev/null
	trap '$(RATER) stack down >/dev/null || true' EXIT
	$(RATER) stack up --redis-cluster
	lint=0
	echo "== ruff check"; $(VENV)/bin/ruff check . || lint=$$?
	echo "== mypy"; $(VENV)/bin/mypy || lint=$$?
	echo "== pytest (stack: $$RATER_STACK_DIR)"
	tests=0
	$(VENV)/bin/pytest $(PYTEST_ARGS) || tests=$$?
	echo "== pytest on the three-node Redis Cluster: $(CLUSTER_TESTS)"
	RATER_REDIS_CLUSTER_NODES=$$(cat $$RATER_STACK_DIR/redis-cluster/nodes) \
	  $(VENV)/bin/pytest $(PYTEST_ARGS) $(CLUSTER_TESTS) || tests=$$?
	if [ $$tests -ne 0 ]; then exit $$tests; fi
	if [ $$lint -ne 0 ]; then echo "tests passed, but ruff or mypy did not" >&2; exit $$lint; fi

bench: install
	@export $(call stack_env,$(BENCH_PORT_BASE),$(BENCH_STACK_DIR))
	$(RATER) stack down --purge >/dev/null
	trap '$(RATER) stack down >/dev/null || true' EXIT
	$(RATER) stack up --redis-cluster
	$(PY) -m benchmarks $(BENCH_ARGS)

# The same fresh-state rules as `make test`. 25 rounds per group size (2 and 3 workers) take
# about 8 minutes on a quiet 2-core machine (about 9 s a round).
soak: install
	@export $(call stack_env,$(SOAK_PORT_BASE),$(SOAK_STACK_DIR))
	$(RATER) stack down --purge >/dev/null
	trap '$(RATER) stack down >/dev/null || true' EXIT
	$(RATER) stack up
	CI=true RATER_TEST_SOAK_ROUNDS=$(SOAK_ROUNDS) $(VENV)/bin/pytest $(PYTEST_ARGS) \
	  tests/integration/test_pipeline_soak.py tests/integration/test_pipeline_liveness.py

clean:
	@rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis
