"""The database: one SQLAlchemy 2 engine and session factory per app, and the declarative ``Base``.

SQLite is the embedded default; PostgreSQL is supported. A pooled connection that sat idle
is pinged before use, and a connection error invalidates the whole pool, so the service
recovers from a database restart without being restarted itself.

Every domain declares its tables on ``Base`` (``sts.keys.models``, ``sts.nodes.models``,
``sts.oauth.models``, ``sts.jobs.models``); every table name starts with ``sts_``. ``Base`` has
its own ``MetaData`` so that the STS schema (migrated by ``sts.migrations``, version table
``alembic_version_sts``) never mixes with the authz_tables schema.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

from sqlalchemy import Connection, Engine, MetaData, create_engine, event, text
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from realms.errors import UnavailableError

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class DatabaseUnavailable(UnavailableError):
    """The database could not answer (down, restarting, unreachable)."""

    code: ClassVar[str] = "db.unavailable"


class Base(DeclarativeBase):
    """The declarative base of every STS table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine with the settings jobsts relies on for each backend."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # Autocommit at the driver level; SQLAlchemy's "begin" event issues BEGIN itself,
            # so that leasing can use BEGIN IMMEDIATE (see sts.jobs.dispatch).
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
    engine = create_engine(url, pool_size=10, max_overflow=20, **kwargs)
    _ping_when_idle(engine)
    return engine


PING_AFTER_IDLE_SECONDS = 2.0


def _ping_when_idle(engine: Engine) -> None:
    """SQLAlchemy's pessimistic disconnect handling, for idle connections only.

    ``pool_pre_ping`` costs a round trip on every checkout (about 15% of a login under load).
    A connection back in the pool for less than ``PING_AFTER_IDLE_SECONDS`` is used as is: if
    the database went away meanwhile, that request gets ``db.unavailable`` and the disconnect
    invalidates every pooled connection, so the next ones reconnect.
    """

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["jobsts_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("jobsts_idle_since")
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError(f"idle connection failed its ping: {type(exc).__name__}") from exc


_RELAXED_COMMIT = "SET LOCAL synchronous_commit TO OFF"


def relax_durability(session: Session | Connection) -> None:
    """Let this PostgreSQL transaction commit without waiting for its WAL flush (a no-op elsewhere).

    Only for rows whose loss in a database crash is harmless, such as a new refresh token
    (its holder logs in again). Never for revocations, leases or job state.
    """
    if isinstance(session, Connection):
        if session.dialect.name == "postgresql":
            # Straight to the driver: a constant statement needs none of SQLAlchemy's compiling.
            session.exec_driver_sql(_RELAXED_COMMIT)
    elif session.get_bind().dialect.name == "postgresql":
        session.execute(text(_RELAXED_COMMIT))


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
