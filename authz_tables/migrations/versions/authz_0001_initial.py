"""Authorization tables: entries, the version counter and the audit log.

Revision ID: authz_0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "authz_0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "authz_entries",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("principal", sa.String(1200), nullable=False),
        sa.Column("role", sa.String(64), nullable=False),
        sa.Column("scope", sa.String(80), nullable=False),
        sa.Column("effect", sa.String(8), nullable=False),
        sa.Column("changed_by", sa.String(1200), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_authz_entries"),
        sa.UniqueConstraint("principal", "role", "scope", name="uq_authz_entries_key"),
    )
    version = op.create_table(
        "authz_version",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_authz_version"),
        sa.CheckConstraint("id = 1", name="ck_authz_version_single_row"),
    )
    op.bulk_insert(version, [{"id": 1, "version": 1}])
    op.create_table(
        "authz_changes",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_by", sa.String(1200), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("principal", sa.String(1200), nullable=False),
        sa.Column("role", sa.String(64), nullable=False),
        sa.Column("scope", sa.String(80), nullable=False),
        sa.Column("effect_before", sa.String(8), nullable=True),
        sa.Column("effect_after", sa.String(8), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_authz_changes"),
    )
    op.create_index("ix_authz_changes_changed_at", "authz_changes", ["changed_at"])
    op.create_index("ix_authz_changes_principal", "authz_changes", ["principal"])


def downgrade() -> None:
    op.drop_table("authz_changes")
    op.drop_table("authz_version")
    op.drop_table("authz_entries")
