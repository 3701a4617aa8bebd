# Developer entry points. `make run` starts the app, `make test` runs the fast tests; both
# create and fill .venv on first use, and re-install only when the requirements change.

PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON := $(BIN)/python

# Install stamps are named after a hash of the requirement files: editing them changes the
# name, so the next make re-installs; an unchanged file (even freshly checked out) does not.
REQ_HASH := $(shell cat requirements.txt | sha256sum | cut -c1-16)
DEV_HASH := $(shell cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-16)
STAMP := $(VENV)/.installed-$(REQ_HASH)
DEV_STAMP := $(VENV)/.installed-dev-$(DEV_HASH)

# `make test` runs the fast tests only; CI=true or FULL=1 also runs the slow and browser ones.
ifneq ($(filter true 1,$(CI))$(filter 1,$(FULL)),)
PYTEST_MARKERS :=
else
PYTEST_MARKERS := -m "not slow and not browser"
endif
PYTEST_ARGS ?=
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help venv dev run test test-all lint format train bench clean

help:
	@echo "make run       start the Streamlit app (creates .venv on first use)"
	@echo "make test      fast tests (CI=true or FULL=1: all tests, incl. slow and browser)"
	@echo "make test-all  all tests, incl. slow (training, full data) and browser ones"
	@echo "make lint      ruff check + ruff format --check"
	@echo "make format    ruff format + ruff check --fix"
	@echo "make train     train the model (ARGS='--help' for options)"
	@echo "make bench     run the benchmarks"
	@echo "make venv      create .venv and install requirements.txt (PY=python3.x to choose)"
	@echo "make clean     remove caches (keeps .venv)"

# The interpreter: PY if it is Python >= 3.11, else python3.11 if there is one.
$(PYTHON):
	@py="$(PY)"; \
	if ! "$$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then \
	  if command -v python3.11 >/dev/null 2>&1; then py=python3.11; \
	  else echo "error: Python >= 3.11 is needed; '$(PY)' is not (use make PY=/path/to/python3.11)" >&2; exit 1; fi; \
	fi; \
	echo ">> creating $(VENV) with $$("$$py" --version 2>&1) ($$(command -v "$$py"))"; \
	"$$py" -m venv $(VENV)

$(STAMP): | $(PYTHON)
	@echo ">> installing requirements.txt into $(VENV)"
	$(PYTHON) -m pip install --upgrade pip
	$(PYTHON) -m pip install -r requirements.txt
	@rm -f $(VENV)/.installed-*
	@touch $@

$(DEV_STAMP): $(STAMP)
	@echo ">> installing requirements-dev.txt into $(VENV)"
	$(PYTHON) -m pip install -r requirements-dev.txt
	@rm -f $(VENV)/.installed-dev-*
	@touch $@

venv: $(STAMP)

dev: $(DEV_STAMP)

run: venv
	$(BIN)/streamlit run app.py $(ARGS)

test: dev
	$(PYTHON) -m pytest $(PYTEST_MARKERS) $(PYTEST_ARGS)

test-all: dev
	$(PYTHON) -m pytest $(PYTEST_ARGS)

lint: dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

train: venv
	$(PYTHON) -m training.train $(ARGS)

bench: venv
	@test -f benchmarks/__main__.py || { echo "error: benchmarks/__main__.py is missing" >&2; exit 1; }
	$(PYTHON) -m benchmarks $(ARGS)

clean:
	rm -rf .pytest_cache .ruff_cache reports
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
