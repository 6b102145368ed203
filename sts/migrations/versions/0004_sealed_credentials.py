"""Jobs: the sealed copy of a password given at submit for a remote host (NULL once the job ends).

Revision ID: 0004_sealed_credentials
Revises: 0003_oidc
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_sealed_credentials"
down_revision = "0003_oidc"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sts_jobs") as batch:
        batch.add_column(sa.Column("sealed_credentials", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sts_jobs") as batch:
        batch.drop_column("sealed_credentials")
