# One machine, embedded defaults: `make run`. Tests: `make test`. Both install what they need into .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ADDRESS ?= 127.0.0.1:8000

.PHONY: install kernel-env run lint test test-sqlite test-postgres smoke bench-upload

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python kernel-env
	$(BIN)/pip install --quiet -e '.[test]'

# The environment notebooks run with inside the sandbox: separate from the app's, readable by the sandbox
# user, built from the system Python so that it lives outside any home directory.
KERNEL_ENV ?= var/kernel-env
KERNEL_PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || echo $(PYTHON))
kernel-env: $(KERNEL_ENV)/.installed
$(KERNEL_ENV)/.installed: requirements-kernel.txt
	$(KERNEL_PYTHON) -m venv $(KERNEL_ENV)
	$(KERNEL_ENV)/bin/pip install --quiet -r requirements-kernel.txt
	touch $@

# The demo pins a placeholder image (registry.example.org/...@sha256:...) that no registry serves, so `make run`
# pins RUNNER=local (this server's kernel environment, labelled so in every report) unless RUNNER is given:
# `make run RUNNER=image` runs each version in its real pinned image.
# ADDRESS is where the server listens, and (unless SITE_URL is set) the site address every absolute link uses:
# DOIs and what the local resolver redirects to, OAI-PMH baseURL, Signposting, e-mails, the demo's links. DOIs
# registered under an earlier address are re-sent by `manage.py doi_sync --all`.
run: export RUNNER ?= local
run: export NBARCHIVE_ADDRESS = $(ADDRESS)
run: install
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py demo
	$(BIN)/python manage.py doi_sync --all
	$(BIN)/python manage.py serve $(ADDRESS)

# ruff: pyflakes, pycodestyle, bugbear and import order (configured in pyproject.toml); CI runs it first.
lint: install
	$(BIN)/ruff check .

# The suite runs twice: on SQLite (the embedded default) and on PostgreSQL (production), when it answers.
test: install test-sqlite test-postgres

# The sandbox tests do not touch the database, so the SQLite pass leaves them to the PostgreSQL pass.
test-sqlite:
	NBARCHIVE_TEST_DB=sqlite $(BIN)/python -m pytest -m "not sandbox"

test-postgres:
	$(BIN)/python -m pytest

# The production topology as separate processes on this machine (DJANGO_DEBUG=0, gunicorn pools, a Celery worker
# per queue, beat, PostgreSQL, Redis, S3 on moto, the DataCite fake, a registry with the test image), driven over
# HTTP from deposit to DOI, OAI-PMH, search, backup and restore; everything it started is stopped at the end.
# Needs PostgreSQL at 127.0.0.1:5432 (trust) and redis-server, skopeo, umoci, docker-registry, mmdebstrap, bwrap.
smoke: install
	$(BIN)/python -m tests.smoke.run

bench-upload: install
	$(BIN)/python tests/bench/upload.py
