"""The STS schema comes from its Alembic migrations, which match the models exactly."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

import sts
from sts.db import Base, make_engine
from sts.migrations import VERSION_TABLE, migrate

pytestmark = pytest.mark.db


def _import_all_models() -> None:
    root = Path(sts.__file__).resolve().parent
    for path in root.rglob("models.py"):
        importlib.import_module(".".join(("sts", *path.relative_to(root).with_suffix("").parts)))


def _only_sts(name: str | None, type_: str, parent_names: dict[str, str | None]) -> bool:
    """The STS schema only: the authz_tables schema lives in the same database."""
    if type_ == "table":
        return bool(name and name.startswith("sts_"))
    table = parent_names.get("table_name")
    return table is None or table.startswith("sts_")


def test_migrate_creates_the_schema_and_is_idempotent(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        migrate(engine)
        migrate(engine)
        tables = set(inspect(engine).get_table_names())
        assert {
            "sts_signing_keys",
            "sts_nodes",
            "sts_revoked_tokens",
            "sts_refresh_tokens",
            "sts_seen_assertions",
            "sts_login_failures",
            "sts_key_rings",
            VERSION_TABLE,
        } <= tables
        assert all(t.startswith("sts_") for t in Base.metadata.tables)
        with engine.connect() as connection:
            heads = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).get_current_heads()
        assert heads and all(h[:4].isdigit() for h in heads)
    finally:
        engine.dispose()


def test_models_match_the_migrations(database_url: str) -> None:
    _import_all_models()
    engine = make_engine(database_url)
    try:
        migrate(engine)
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"version_table": VERSION_TABLE, "compare_type": True, "include_name": _only_sts}
            )
            diff = compare_metadata(context, Base.metadata)
        assert diff == []
    finally:
        engine.dispose()


def test_the_revisions_form_one_line() -> None:
    """One head: two revisions with the same parent would upgrade in no defined order."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory(str(Path(sts.migrations.__file__).parent))
    assert scripts.get_heads() == [scripts.get_current_head()]
    assert len(scripts.get_heads()) == 1
