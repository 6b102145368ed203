"""Shared fixtures: databases (SQLite by default, PostgreSQL when JOBSTS_TEST_DATABASE_URL is set).

Package-specific fixtures live beside their tests (``tests/<package>/conftest.py``); the
real-slapd harness is ``tests/ldap_harness.py``; the Flask ``app``/``client``/``runner``
fixtures are in ``tests/sts/conftest.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.pg_schema import postgres_schema

PG_URL_ENV = "JOBSTS_TEST_DATABASE_URL"
pytest_plugins = ["tests.ldap_harness", "tests.browser"]

# What a test needs beyond Python, as markers, so that `make check` can leave it out (see
# CONTRIBUTING.md): by the fixture it asks for (so a new test that asks for slapd is marked without
# anyone remembering to), or by its file or folder. tests/test_project_rules.py checks that every
# path here still exists.
MARKS_BY_FIXTURE = {"slapd": "slapd", "sshd": "sshd", "browser": "browser", "chromedriver": "browser"}
MARKS_BY_PATH = {
    "tests/security/": "security",
    "tests/e2e/": "processes",
    "tests/production/": "processes",
    "tests/fleet/": "processes",
    "tests/jobs/test_faults.py": "processes",
    "tests/security/test_faults.py": "processes",
    "tests/security/test_agent_os.py": "processes",
    "tests/docker/test_entrypoints.py": "processes",
    "tests/docker/test_systemd_sandbox.py": "processes",
    "tests/docker/test_compose.py::test_haproxy_accepts_its_configuration": "processes",
    "tests/docker/test_systemd_units.py::test_systemd_analyze_verify": "processes",
    "tests/docker/test_systemd_units.py::test_systemd_analyze_security_exposure": "processes",
    "tests/docker/test_systemd_units.py::test_sysusers_creates_the_sts_account": "processes",
    "tests/realms/test_password_hashes.py::test_hashes_written_by_slappasswd_verify": "slapd",
}

# Hypothesis: no wall-clock limits (its 200 ms deadline and "too slow" health check would make the
# property tests flake under load), and `make check` runs them with 20 examples instead of 100
# (--hypothesis-profile=fast). A test that sets its own max_examples keeps it in both.
settings.register_profile("full", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("fast", settings.get_profile("full"), max_examples=20)
settings.load_profile("full")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for fixture, marker in MARKS_BY_FIXTURE.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(marker)
        for prefix, marker in MARKS_BY_PATH.items():
            if item.nodeid.startswith(prefix):
                item.add_marker(marker)


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database for one test: a SQLite file, or a new PostgreSQL schema."""
    base = os.environ.get(PG_URL_ENV)
    if base:
        with postgres_schema(base) as url:
            yield url
    else:
        yield f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
def on_postgres() -> bool:
    return bool(os.environ.get(PG_URL_ENV))
