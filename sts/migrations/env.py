"""Alembic environment: runs on the connection handed over by ``sts.migrations.migrate``."""

from __future__ import annotations

from alembic import context

from sts.db import Base
from sts.migrations import VERSION_TABLE

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    version_table=VERSION_TABLE,
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
