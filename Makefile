# aistack — the two commands a new user runs: `make demo` and `make test`.
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SHARED ?= $(abspath ../shared)

.PHONY: demo test test-fast test-gpu bench lint install clean-venv servers

# The environment: a virtualenv with everything the demo and the tests need. torch is pinned
# and installed first (the CPU build on this machine's disk; an unpinned torch pulls GBs of CUDA).
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -qq --upgrade pip wheel
	$(BIN)/pip install -qq torch==2.13.0
	$(BIN)/pip install -qq -e '.[all,dev]'
	@touch $(STAMP)

install: $(STAMP)

## make demo: start the platform and run the end-to-end demo pipeline as aistack jobs
demo: $(STAMP)
	$(BIN)/python -m aistack.demo

## make servers: install the servers the integration tests start (PostgreSQL, Slurm, MariaDB)
servers:
	@bash scripts/ci/install-servers.sh

# the tests run in TEST_WORKERS processes (pytest-xdist): unit tests a file per worker, then
# integration and e2e tests a group per worker (tests/conftest.py: a file, and all the Ray
# tests together, whose clusters share this machine's /tmp/ray)
TEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -q -p no:cacheprovider --timeout=900

## make test: the whole suite (unit, integration with real servers, e2e); fails when either
## pytest run fails or runs no tests
test: $(STAMP) servers
	@set +e; \
	$(PYTEST) --durations=15 -n $(TEST_WORKERS) --dist loadfile tests/unit; u=$$?; \
	$(PYTEST) --durations=25 -n $(TEST_WORKERS) --dist loadgroup tests/integration tests/e2e; i=$$?; \
	echo "make test: unit tests exit $$u, integration and e2e tests exit $$i"; \
	for rc in $$u $$i; do if [ $$rc -eq 5 ]; then echo "pytest ran no tests: failing"; exit 1; fi; done; \
	[ $$u -eq 0 ] && [ $$i -eq 0 ]

## make test-fast: unit tests only
test-fast: $(STAMP)
	@set +e; $(PYTEST) -n $(TEST_WORKERS) --dist loadfile tests/unit; rc=$$?; [ $$rc -eq 5 ] && exit 1; exit $$rc

## make test-gpu: the GPU checks (tests/gpu: inventory, a job's GPU, NCCL gang, trainer resume);
## where torch sees no CUDA device it says so and fails (nothing was tested)
test-gpu: $(STAMP)
	@set +e; $(BIN)/python -m pytest -q -s -p no:cacheprovider tests/gpu; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test-gpu: torch sees no CUDA device here: no GPU test ran"; exit 1; fi; exit $$rc

## make bench: every benchmark in quick mode (tables printed, JSON in bench/results/)
bench: $(STAMP)
	$(BIN)/pip install -qq -e '.[all,dev,bench]'
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b --quick || exit 1; done

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy src/aistack

clean-venv:
	rm -rf $(VENV)
