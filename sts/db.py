"""The database extension: one SQLAlchemy 2 engine and session factory per app (``init_app``).

SQLite is the embedded default; PostgreSQL is supported. ``pool_pre_ping`` lets the service
recover from a database restart without being restarted itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine with the settings jobsts relies on for each backend."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # Autocommit at the driver level; SQLAlchemy's "begin" event issues BEGIN itself,
            # so that leasing can use BEGIN IMMEDIATE (see sts.jobs).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
            conn.exec_driver_sql(f"BEGIN {mode}")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, **kwargs)


class Database:
    """Holds the engine and session factory; ``session()`` is a transaction scope."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session(self, *, immediate: bool = False) -> Iterator[Session]:
        """A session that commits on success and rolls back on error.

        ``immediate=True`` takes SQLite's write lock at BEGIN (no effect on PostgreSQL),
        for read-then-write sequences such as leasing a job.
        """
        if immediate and self.is_sqlite:
            session = Session(self.engine.execution_options(sqlite_begin="IMMEDIATE"), expire_on_commit=False)
        else:
            session = self.sessions()
        try:
            with session.begin():
                yield session
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
