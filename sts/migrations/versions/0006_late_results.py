"""Jobs: the outcome of a result that arrived after the job was marked ``lost`` (NULL otherwise).

Revision ID: 0006_late_results
Revises: 0005_node_presence
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_late_results"
down_revision = "0005_node_presence"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sts_jobs") as batch:
        batch.add_column(sa.Column("late_outcome", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sts_jobs") as batch:
        batch.drop_column("late_outcome")
