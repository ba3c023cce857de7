# Two commands do all the set-up on a fresh machine with python3 and make:
#   make test    - create .venv, install tokenlib with every extra, lint, type-check, run the suite
#   make report  - execute the notebooks over the bundled inventory and render reports/
#                  (INVENTORY=path/to/flows.csv for your own, relative to where you run make)
#   make lab     - JupyterLab on notebooks/ (LAB_ARGS="..." passes options; --allow-root as root)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.stamp-install
INVENTORY ?= default
PYTEST_ARGS ?=
# A relative INVENTORY path is taken from the directory make was started in ($PWD survives
# `make -C`), not from the clone; "default" is the bundled inventory.
CALLER_DIR := $(or $(PWD),$(CURDIR))
INVENTORY_PATH = $(if $(filter default,$(INVENTORY)),default,$(if $(filter /%,$(INVENTORY)),$(INVENTORY),$(abspath $(CALLER_DIR)/$(INVENTORY))))
# JupyterLab refuses to run as root unless told; containers often are root.
LAB_ARGS ?= $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: test report lab bench lint format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[analysis,notebooks,lab,integrations,dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict tokenlib

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

report: $(STAMP)
	$(BIN)/python -m tokenlib.analysis.report --inventory "$(INVENTORY_PATH)" --out reports

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks $(LAB_ARGS)

bench: $(STAMP)
	$(BIN)/python -m benchmarks

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) reports .mypy_cache .ruff_cache .pytest_cache .hypothesis
