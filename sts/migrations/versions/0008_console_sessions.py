"""The web console: its server-side sessions, and two indexes of the job list (by state, by node).

Revision ID: 0008_console_sessions
Revises: 0007_key_lifecycle
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_console_sessions"
down_revision = "0007_key_lifecycle"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sts_console_sessions",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("realm", sa.String(63), nullable=False),
        sa.Column("subject", sa.String(1200), nullable=False),
        sa.Column("username", sa.String(256), nullable=False),
        sa.Column("access_token", sa.LargeBinary(), nullable=False),
        sa.Column("refresh_token", sa.LargeBinary(), nullable=False),
        sa.Column("access_exp", sa.BigInteger(), nullable=False),
        sa.Column("access_jti", sa.String(128), nullable=False),
        sa.Column("refresh_claimed_at", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_sts_console_sessions_expires", "sts_console_sessions", ["expires_at"])
    op.create_index("ix_sts_jobs_state_created", "sts_jobs", ["state", "created_at"])
    op.create_index("ix_sts_jobs_node_created", "sts_jobs", ["node_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_sts_jobs_node_created", table_name="sts_jobs")
    op.drop_index("ix_sts_jobs_state_created", table_name="sts_jobs")
    op.drop_index("ix_sts_console_sessions_expires", table_name="sts_console_sessions")
    op.drop_table("sts_console_sessions")
