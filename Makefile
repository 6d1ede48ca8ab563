# One command sets up and serves (`make run`), one tests (`make test`). Both create the virtualenv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint typecheck unit migrate seed schema simulators clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Embedded mode: SQLite file, in-process cache, simulators for WeChat/ERP/CRM in the same process.
run: $(STAMP)
	$(BIN)/bff migrate
	$(BIN)/bff seed --demo
	$(BIN)/bff serve --simulators --worker

test: lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

migrate: $(STAMP)
	$(BIN)/bff migrate

seed: $(STAMP)
	$(BIN)/bff seed --demo

schema: $(STAMP)
	$(BIN)/bff export-schema > schema.graphql

simulators: $(STAMP)
	$(BIN)/bff simulators

clean:
	rm -rf $(VENV) bff.sqlite3 bff.sqlite3-shm bff.sqlite3-wal .mypy_cache .ruff_cache .pytest_cache
