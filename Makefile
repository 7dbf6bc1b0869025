# A fresh checkout needs only `make run` or `make test`: both bootstrap .venv
# from the machine's python3 and (re)install when pyproject.toml changes.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= config/futon.yaml

.PHONY: run test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/futon serve --config $(CONFIG)

test: $(STAMP)
	$(BIN)/ruff check futon tests bench
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check futon tests bench
	$(BIN)/ruff format --check futon tests bench

bench: $(STAMP)
	$(BIN)/python bench/evidence_append.py
	$(BIN)/python bench/evidence_query.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
