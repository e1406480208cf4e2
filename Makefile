# tdt — two commands on a fresh machine: `make demo`, `make test`.
# Every target creates .venv (Python 3.11) and installs the locked environment when needed:
# every package at the exact version and sha256 of requirements.lock, then tdt itself (editable,
# no dependencies). `make lock` regenerates the lock (see README, "The locked environment").

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LOCK := requirements.lock
STAMP := $(VENV)/.tdt-installed
LOCK_PYTHON := 3.11
# UNLOCKED=1: install from pyproject's ranges instead of the lock (another Python version)
UNLOCKED ?=
export JAX_PLATFORMS ?= cpu
export PYTHONHASHSEED ?= 0

.PHONY: venv demo test test-all bench lab lint format browser lock clean

venv: $(STAMP)

$(STAMP): pyproject.toml $(LOCK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
ifeq ($(UNLOCKED),)
	@$(BIN)/python -c 'import sys; v = "%d.%d" % sys.version_info[:2]; sys.exit(0 if v == "$(LOCK_PYTHON)" else print(f"make: {sys.executable} is Python {v}; $(LOCK) is for Python $(LOCK_PYTHON). Use PYTHON=python$(LOCK_PYTHON) (rm -rf $(VENV) first), or install from the ranges in pyproject.toml with UNLOCKED=1 (not the locked environment: numbers may differ).") or 1)'
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
else
	@echo "make: UNLOCKED=1: installing from pyproject.toml's version ranges, not $(LOCK)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
endif
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/tdt demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-all: $(STAMP) browser
	$(BIN)/python -m pytest -q -m ""

bench: $(STAMP)
	$(BIN)/python -m benchmarks $(BENCH)

lab: $(STAMP)
	$(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 --notebook-dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root,)

lint: $(STAMP)
	$(BIN)/ruff check tdt tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format tdt tests benchmarks
	$(BIN)/ruff check --fix tdt tests benchmarks

# Regenerate requirements.lock after a change of dependencies in pyproject.toml (keeps the
# other pins); `make lock UPGRADE=1` moves every package to its newest allowed version.
# pip-tools runs in its own throw-away venv so that it never enters the locked environment.
lock:
	@test -x .cache/lock-venv/bin/pip-compile || { $(PYTHON) -m venv .cache/lock-venv && \
	  .cache/lock-venv/bin/python -m pip install --quiet "pip-tools==7.6.2"; }
	.cache/lock-venv/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	  --extra dev --extra samplers --no-emit-index-url --no-emit-find-links \
	  --no-emit-trusted-host $(if $(UPGRADE),--upgrade,) --output-file $(LOCK) pyproject.toml

# Debian's chromium for the Playwright browser test (npx playwright install cannot work here).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "browser tests need Debian's chromium: sudo apt-get install chromium"; fi; }

clean:
	rm -rf $(VENV) .cache .pytest_cache runs build *.egg-info
