"""The PostgreSQL pool pings connections that sat idle, and a dropped connection invalidates the
pool, so a database restart never needs an STS restart (sts/db.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from sts import db as db_module
from sts.db import Database

pytestmark = [pytest.mark.db]


def _kill(database_url: str, pid: int) -> None:
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
    finally:
        admin.dispose()


def _backend_pid(database: Database) -> int:
    with database.session() as session:
        return int(session.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_dropped_connections_are_replaced(
    database_url: str, on_postgres: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not on_postgres:
        pytest.skip("SQLite has no server connection to drop (set JOBSTS_TEST_DATABASE_URL)")
    database = Database(database_url)
    try:
        # An idle connection is pinged, found dead and replaced: the caller sees nothing.
        monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 0.0)
        first = _backend_pid(database)
        _kill(database_url, first)
        second = _backend_pid(database)
        assert second != first

        # A connection used a moment ago is not pinged: the one request fails (503 upstream),
        # and the disconnect invalidates the pool so the next request reconnects.
        monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 3600.0)
        _kill(database_url, second)
        with pytest.raises(OperationalError):
            _backend_pid(database)
        assert _backend_pid(database) not in (first, second)
    finally:
        database.dispose()
