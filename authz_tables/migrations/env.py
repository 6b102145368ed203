"""Alembic environment of the authorization tables; run it through ``authz_tables.models.migrate``.

The connection comes from ``config.attributes["connection"]`` (the caller's transaction);
offline mode (``--sql``) renders the DDL for a DBA. History: ``alembic_version_authz``.
"""

from __future__ import annotations

from alembic import context

from authz_tables.models import VERSION_TABLE, metadata

config = context.config
connection = config.attributes.get("connection")

if context.is_offline_mode():
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
elif connection is None:
    raise RuntimeError("run the authz migrations with authz_tables.models.migrate(engine_or_url)")
else:
    context.configure(connection=connection, target_metadata=metadata, version_table=VERSION_TABLE)
    with context.begin_transaction():
        context.run_migrations()
