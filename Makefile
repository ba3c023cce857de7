# Two commands do all the set-up on a fresh machine with python3 and make:
#   make test    - create .venv, install tokenlib with every extra, lint, type-check, run the suite
#   make report  - execute the notebooks over the bundled inventory and render reports/
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.stamp-install
INVENTORY ?= default
PYTEST_ARGS ?=

.PHONY: test report lab bench lint format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[analysis,notebooks,lab,dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict tokenlib

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

report: $(STAMP)
	$(BIN)/python -m tokenlib.analysis.report --inventory "$(INVENTORY)" --out reports

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks

bench: $(STAMP)
	$(BIN)/python -m benchmarks

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) reports .mypy_cache .ruff_cache .pytest_cache .hypothesis
