"""Key lifecycle: pre-published signing keys (``activates_at``) and node join tokens.

Revision ID: 0007_key_lifecycle
Revises: 0004_sealed_credentials
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_key_lifecycle"
down_revision = "0004_sealed_credentials"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sts_signing_keys") as batch:
        batch.add_column(sa.Column("activates_at", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sts_signing_keys") as batch:
        batch.drop_column("activates_at")
