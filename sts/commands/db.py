"""``jobsts db upgrade|check``: the database schema (Alembic), apart from serving.

Two schemas live in the STS database, each with its own version table: the authorization
table's (``alembic_version_authz``) and the STS's (``alembic_version_sts``). ``upgrade`` brings
both to head under the same lock serving uses; ``check`` changes nothing and exits 0 when both
are at head, 1 when a migration is pending (a deploy step can wait on it), 2 on an error.
"""

from __future__ import annotations

from pathlib import Path

import click
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from sts.commands.options import CONFIG_OPTION
from sts.db import DatabaseUnavailable


def _schema_states(database_url: str) -> list[tuple[str, set[str], set[str]]]:
    """(schema, current revisions, head revisions) for both schemas."""
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from authz_tables.models import MIGRATIONS_DIR as AUTHZ_DIR
    from authz_tables.models import VERSION_TABLE as AUTHZ_TABLE
    from sts.db import make_engine
    from sts.migrations import VERSION_TABLE as STS_TABLE
    from sts.migrations import alembic_config

    sts_dir = alembic_config().get_main_option("script_location") or ""
    engine = make_engine(database_url)
    try:
        states = []
        with engine.connect() as connection:
            for name, directory, table in (("authz", str(AUTHZ_DIR), AUTHZ_TABLE), ("sts", sts_dir, STS_TABLE)):
                script = ScriptDirectory(directory)
                context = MigrationContext.configure(connection, opts={"version_table": table})
                states.append((name, set(context.get_current_heads()), set(script.get_heads())))
        return states
    except SQLAlchemyError as exc:
        raise _unavailable(engine, exc) from None
    finally:
        engine.dispose()


def _unavailable(engine: Engine, exc: SQLAlchemyError) -> DatabaseUnavailable:
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:200]
    return DatabaseUnavailable(f"database {engine.url.render_as_string(hide_password=True)}: {reason}")


@click.group()
def db() -> None:
    """The database schema: upgrade it, or check that it is current."""


@db.command()
@CONFIG_OPTION
def upgrade(config_path: Path) -> None:
    """Migrate the schema to head (what serving and init also do; safe to run again)."""
    from sts.config import load_sts_config
    from sts.db import make_engine
    from sts.migrations import migrate

    config = load_sts_config(config_path)
    engine = make_engine(config.database_url)
    try:
        migrate(engine)
    except SQLAlchemyError as exc:
        raise _unavailable(engine, exc) from None
    finally:
        engine.dispose()
    for name, current, _ in _schema_states(config.database_url):
        click.echo(f"{name}: at head {', '.join(sorted(current))}")


@db.command()
@CONFIG_OPTION
@click.pass_context
def check(ctx: click.Context, config_path: Path) -> None:
    """Exit 0 when the schema is at head, 1 when a migration is pending; change nothing."""
    from sts.config import load_sts_config

    config = load_sts_config(config_path)
    pending = False
    for name, current, heads in _schema_states(config.database_url):
        if current == heads:
            click.echo(f"{name}: at head {', '.join(sorted(current))}")
        else:
            pending = True
            shown = ", ".join(sorted(current)) or "empty"
            click.echo(f"{name}: at {shown}, head is {', '.join(sorted(heads))}: run jobsts db upgrade")
    ctx.exit(1 if pending else 0)
