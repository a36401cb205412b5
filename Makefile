# One machine, embedded defaults: `make run`. Tests: `make test`. Both install what they need into .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ADDRESS ?= 127.0.0.1:8000

.PHONY: install run test test-sqlite test-postgres bench-upload

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'

run: install
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py demo
	$(BIN)/python manage.py serve $(ADDRESS)

# The suite runs twice: on SQLite (the embedded default) and on PostgreSQL (production), when it answers.
test: install test-sqlite test-postgres

test-sqlite:
	NBARCHIVE_TEST_DB=sqlite $(BIN)/python -m pytest

test-postgres:
	$(BIN)/python -m pytest

bench-upload: install
	$(BIN)/python tests/bench/upload.py
