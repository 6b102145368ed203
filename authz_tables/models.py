"""SQLAlchemy 2 models of an authorization table, its engine settings, and ``migrate()``.

Tables (own ``MetaData``, names prefixed ``authz_`` so they can share a database with the
STS's own tables): ``authz_entries`` (one row per (principal, role, scope)),
``authz_version`` (a single row bumped in the same transaction as every change, so readers
notice changes with one cheap query) and ``authz_changes`` (append-only audit log). Alembic
migrations ship in ``authz_tables/migrations`` and record themselves in
``alembic_version_authz``, apart from any other migration history in the same database.
"""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    UniqueConstraint,
    create_engine,
    event,
    text,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from authz_tables.errors import AuthzUnavailable

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version_authz"
PRINCIPAL_LENGTH = 1200
# An arbitrary constant naming the PostgreSQL advisory lock that serialises concurrent migrate() calls.
_MIGRATE_LOCK_ID = 0x6A6F6273747341
_MIGRATE_LOCK = threading.Lock()

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "pk": "pk_%(table_name)s",
    }
)
_ID = BigInteger().with_variant(Integer, "sqlite")


class Base(DeclarativeBase):
    metadata = metadata


class EntryRow(Base):
    """One entry: ``principal`` (canonical access ID) is allowed or denied ``role`` on ``scope``."""

    __tablename__ = "authz_entries"
    __table_args__ = (UniqueConstraint("principal", "role", "scope", name="uq_authz_entries_key"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    principal: Mapped[str] = mapped_column(String(PRINCIPAL_LENGTH))
    role: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(80))
    effect: Mapped[str] = mapped_column(String(8))
    changed_by: Mapped[str] = mapped_column(String(PRINCIPAL_LENGTH))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class VersionRow(Base):
    """The single row (id = 1) whose ``version`` grows with every committed change."""

    __tablename__ = "authz_version"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(BigInteger)


class ChangeRow(Base):
    """The audit log: one row per entry added, changed or removed, with who and when."""

    __tablename__ = "authz_changes"

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    changed_by: Mapped[str] = mapped_column(String(PRINCIPAL_LENGTH))
    action: Mapped[str] = mapped_column(String(16))
    principal: Mapped[str] = mapped_column(String(PRINCIPAL_LENGTH), index=True)
    role: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(80))
    effect_before: Mapped[str | None] = mapped_column(String(8), nullable=True)
    effect_after: Mapped[str | None] = mapped_column(String(8), nullable=True)


def make_engine(url: str) -> Engine:
    """An engine for a table URL. SQLite gets real transactions, a busy timeout and cross-thread use."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _autocommit_driver(dbapi_connection: Any, _record: Any) -> None:
            # pysqlite would otherwise run DDL outside any transaction; SQLAlchemy's "begin"
            # event below issues BEGIN itself (the documented SQLite recipe, as in sts.db).
            dbapi_connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            # sqlite_begin="" leaves a read-only connection in autocommit: one statement, no BEGIN.
            mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
            if mode:
                conn.exec_driver_sql(f"BEGIN {mode}")

        return engine
    # No pool_pre_ping: the version check is the one query per interval; a dropped
    # connection fails that check once (authz.unavailable) and the pool reconnects.
    return create_engine(url, pool_recycle=1800)


def safe_url(engine: Engine) -> str:
    """The engine's URL with any password hidden, for messages."""
    return engine.url.render_as_string(hide_password=True)


def migrate(target: Engine | str) -> None:
    """Upgrade the authorization tables in ``target`` (an Engine or a SQLAlchemy URL) to head.

    Runs Alembic programmatically, passing the connection via ``config.attributes``; the
    history lives in ``alembic_version_authz``. Safe to call on every start.
    """
    engine = make_engine(target) if isinstance(target, str) else target
    try:
        for attempt in range(2):
            try:
                _upgrade(engine)
                return
            except SQLAlchemyError as exc:
                # A migrate() in another process, on an engine without BEGIN IMMEDIATE, may
                # have created the tables after our read of the version table; a second
                # pass sees its result.
                if attempt == 1:
                    reason = str(getattr(exc, "orig", exc)).splitlines()[0]
                    raise AuthzUnavailable(f"cannot migrate authz table {safe_url(engine)}: {reason}") from None
    finally:
        if isinstance(target, str):
            engine.dispose()


def _upgrade(engine: Engine) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Alembic's ``context`` is process-global: one upgrade at a time per process. Across
    # processes, BEGIN IMMEDIATE (SQLite) or an advisory lock (PostgreSQL) serialises them.
    with _MIGRATE_LOCK, engine.execution_options(sqlite_begin="IMMEDIATE").begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATE_LOCK_ID})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def schema_differences(engine: Engine) -> list[Any]:
    """Differences between the migrated schema and the models (empty when in step); for tests."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return list(compare_metadata(context, metadata))


__all__ = ["Base", "ChangeRow", "EntryRow", "VersionRow", "make_engine", "metadata", "migrate"]
