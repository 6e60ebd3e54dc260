# Konfig: `make run` serves on http://127.0.0.1:8000 with SQLite under ./data; `make test` runs the suite.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' && { echo $$p; break; }; done)
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?= -n 3

.PHONY: run test lint bench cluster clean

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "Konfig needs Python 3.11 or newer on PATH" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The server names the SDK by its path in this repository (sdks/python, `konfig-client`), so pip
# never asks an index for it; the second install makes that copy editable for development.
SDK := sdks/python

$(VENV)/.installed-run: pyproject.toml $(SDK)/pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	$(BIN)/python -m pip install --quiet --no-deps -e $(SDK)
	@touch $@

$(VENV)/.installed-test: pyproject.toml $(SDK)/pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m pip install --quiet --no-deps -e $(SDK)
	@touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run
	$(BIN)/konfig serve

# Coverage (configured in pyproject.toml) of the suite and the servers it starts; the report ends
# with the total and fails the run under [tool.coverage.report] fail_under. Bytecode is written
# even where the environment says not to (PYTHONDONTWRITEBYTECODE): the editable install has no
# other, and each of the hundreds of `konfig` processes the suite starts would compile Konfig.
test: $(VENV)/.installed-test
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest $(PYTEST_ARGS) --cov --cov-report=term

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests bench deploy $(SDK)
	$(BIN)/ruff format --check src tests bench deploy $(SDK)
	$(BIN)/mypy  # strict, on src/konfig, the SDK and tests (pyproject.toml)
	$(BIN)/mypy --strict --explicit-package-bases deploy/cluster
	$(BIN)/lint-imports --no-cache --no-logo  # the layering contracts in pyproject.toml

# Three replicas on PostgreSQL (database konfig_cluster) and Redis behind nginx on
# CLUSTER_LISTEN; see docs/deploy.md, "Running a local cluster". Ctrl-C stops it all.
cluster: $(VENV)/.installed-run
	$(BIN)/python -m deploy.cluster

bench: $(VENV)/.installed-test
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.*
