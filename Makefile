# One command sets up and serves (`make run`), one tests (`make test`). Both create the virtualenv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint typecheck unit audit migrate seed schema simulators bench soak clean

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

# Security scans: bandit on our code (config in pyproject.toml), pip-audit on the installed packages.
audit: $(STAMP)
	$(BIN)/bandit -q -c pyproject.toml -r bff schema resolvers loaders integrations
	$(BIN)/pip-audit --skip-editable --progress-spinner off

migrate: $(STAMP)
	$(BIN)/bff migrate

seed: $(STAMP)
	$(BIN)/bff seed --demo

schema: $(STAMP)
	$(BIN)/bff export-schema > schema.graphql

simulators: $(STAMP)
	$(BIN)/bff simulators

# Side-by-side benchmark (bench/README.md): needs PostgreSQL, redis-server, wrk and hey; writes bench/RESULTS.md.
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m bench.run

# Load-and-fault soak (bench/SOAK.md): 200 shoppers for 60 s while the ERP is killed and Redis restarted.
# Needs PostgreSQL (DATABASE_URL, default the local server; a fresh database is created and dropped) and redis-server.
soak: $(STAMP)
	$(BIN)/python -m bench.soak

clean:
	rm -rf $(VENV) bff.sqlite3 bff.sqlite3-shm bff.sqlite3-wal .mypy_cache .ruff_cache .pytest_cache
