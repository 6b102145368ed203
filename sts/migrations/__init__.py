"""Alembic migrations of the STS schema, shipped in the package (version table ``alembic_version_sts``).

``migrate(engine)`` brings a database to head: first the authz_tables schema, then the STS
schema (``0001_sts_core``, then the job manager's ``0002_jobs`` and later revisions).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

from authz_tables.store import migrate as migrate_authz

VERSION_TABLE = "alembic_version_sts"
MIGRATION_LOCK_KEY = 0x6A6F6273  # "jobs": the PostgreSQL advisory lock serialising STS migrations


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).resolve().parent))
    return config


def migrate(engine: Engine) -> None:
    """Upgrade the authz_tables schema, then the STS schema, to head. Safe to run again."""
    migrate_authz(engine)
    config = alembic_config()
    # Why: several processes (gunicorn workers) may start at once; the migration runs under
    # SQLite's write lock (BEGIN IMMEDIATE) or a PostgreSQL advisory lock, so the second one
    # waits and then finds the schema at head instead of creating the same tables twice.
    with engine.execution_options(sqlite_begin="IMMEDIATE").begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        config.attributes["connection"] = connection
        command.upgrade(config, "heads")
