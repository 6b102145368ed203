"""Shared fixtures: databases (SQLite by default, PostgreSQL when JOBSTS_TEST_DATABASE_URL is set).

Package-specific fixtures live beside their tests (``tests/<package>/conftest.py``); the
real-slapd harness is ``tests/ldap_harness.py``; the Flask ``app``/``client``/``runner``
fixtures are in ``tests/sts/conftest.py``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

PG_URL_ENV = "JOBSTS_TEST_DATABASE_URL"
pytest_plugins = ["tests.ldap_harness", "tests.browser"]


def _postgres_schema_url(base_url: str) -> Iterator[str]:
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base_url else "?"
    try:
        yield f"{base_url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database for one test: a SQLite file, or a new PostgreSQL schema."""
    base = os.environ.get(PG_URL_ENV)
    if base:
        yield from _postgres_schema_url(base)
    else:
        yield f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
def on_postgres() -> bool:
    return bool(os.environ.get(PG_URL_ENV))
