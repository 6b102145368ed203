"""The agent authentication version: one row bumped with every revocation and node change.

Revision ID: 0009_auth_version
Revises: 0008_console_sessions
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_auth_version"
down_revision = "0008_console_sessions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "sts_auth_version",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sts_auth_version"),
        sa.CheckConstraint("id = 1", name="ck_sts_auth_version_single_row"),
    )
    op.bulk_insert(table, [{"id": 1, "version": 0}])


def downgrade() -> None:
    op.drop_table("sts_auth_version")
