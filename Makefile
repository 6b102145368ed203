# The developer loop. `make check` is fast and needs only Python: no Debian package, no server,
# no root. `make test` is the full run CI does (it installs Debian packages). See CONTRIBUTING.md.

VENV ?= $(or $(JOBSTS_VENV),.venv)
BIN := $(VENV)/bin
SOURCES := realms authz_tables sts agent_client tests bench
# The fast tests: everything but the tests that need a Debian package, root or processes
# (markers set in tests/conftest.py), and the attack suite, which builds a whole STS per test.
FAST_MARKERS := not slapd and not sshd and not browser and not root and not processes and not security
# Two workers (the reference box has two cores), and property tests with 20 examples instead of
# 100 (the "fast" Hypothesis profile of tests/conftest.py). PYTEST_ARGS adds to it, e.g. "-x --lf".
FAST_WORKERS ?= 2
PYTEST_ARGS ?=

.PHONY: check lint types unit test fmt venv hooks clean-artifacts

check: lint types unit

venv: $(VENV)/.installed

# Reinstalled when pyproject.toml changes (new dependencies, new extras).
$(VENV)/.installed: pyproject.toml
	[ -x $(BIN)/python ] || python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

lint: venv
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/ruff check $(SOURCES)

types: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest -q -n $(FAST_WORKERS) -m "$(FAST_MARKERS)" --hypothesis-profile=fast $(PYTEST_ARGS)

test:
	bash tests/run.sh

fmt: venv
	$(BIN)/ruff check --select I --fix -q $(SOURCES)
	$(BIN)/ruff format $(SOURCES)

hooks: venv
	$(BIN)/python -m pip install -q pre-commit
	$(BIN)/pre-commit install

clean-artifacts:
	rm -rf tests/artifacts
