"""Key lifecycle: pre-published signing keys (``activates_at``), the ``openid`` grants that
refreshes answer with an ID token, and node join tokens.

Revision ID: 0007_key_lifecycle
Revises: 0006_late_results
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_key_lifecycle"
down_revision = "0006_late_results"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sts_signing_keys") as batch:
        batch.add_column(sa.Column("activates_at", sa.Integer(), nullable=True))
    op.create_table(
        "sts_id_token_grants",
        sa.Column("family_id", sa.String(36), primary_key=True),
        sa.Column("realm", sa.String(63), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(1200), nullable=False),
        sa.Column("auth_time", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.Integer(), nullable=False),
    )
    op.create_index("ix_sts_id_token_grants_expires_at", "sts_id_token_grants", ["expires_at"])
    op.create_table(
        "sts_join_tokens",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("node_id", sa.String(63), nullable=False),
        sa.Column("realm", sa.String(63), nullable=False),
        sa.Column("authgroups", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(1200), nullable=False),
        sa.Column("expires_at", sa.Integer(), nullable=False),
        sa.Column("used_at", sa.Integer(), nullable=True),
    )
    op.create_index("ix_sts_join_tokens_node_id", "sts_join_tokens", ["node_id"])
    op.create_index("ix_sts_join_tokens_expires_at", "sts_join_tokens", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_sts_join_tokens_expires_at", table_name="sts_join_tokens")
    op.drop_index("ix_sts_join_tokens_node_id", table_name="sts_join_tokens")
    op.drop_table("sts_join_tokens")
    op.drop_index("ix_sts_id_token_grants_expires_at", table_name="sts_id_token_grants")
    op.drop_table("sts_id_token_grants")
    with op.batch_alter_table("sts_signing_keys") as batch:
        batch.drop_column("activates_at")
