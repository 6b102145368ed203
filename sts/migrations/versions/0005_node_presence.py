"""Nodes: when each node's agent was last seen (written at most every few seconds per node).

Revision ID: 0005_node_presence
Revises: 0004_sealed_credentials
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_node_presence"
down_revision = "0004_sealed_credentials"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sts_nodes") as batch:
        batch.add_column(sa.Column("last_seen_at", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sts_nodes") as batch:
        batch.drop_column("last_seen_at")
