# tdt — two commands on a fresh machine: `make demo`, `make test`.
# Every target creates .venv (Python >= 3.11) and installs tdt with its extras when needed.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.tdt-installed
export JAX_PLATFORMS ?= cpu
export MPLBACKEND ?= Agg
export PYTHONHASHSEED ?= 0

.PHONY: venv demo test test-all bench lab lint format browser clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
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

# Debian's chromium for the Playwright browser test (npx playwright install cannot work here).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "browser tests need Debian's chromium: sudo apt-get install chromium"; fi; }

clean:
	rm -rf $(VENV) .cache .pytest_cache runs build *.egg-info
