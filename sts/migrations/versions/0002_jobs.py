"""Job manager: jobs with their encrypted job tokens, leases and results; idempotency keys.

Revision ID: 0002_jobs
Revises: 0001_sts_core
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_jobs"
down_revision = "0001_sts_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sts_jobs",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("submitter", sa.String(1200), nullable=False),
        sa.Column("submitter_realm", sa.String(63), nullable=False),
        sa.Column("subject", sa.String(1200), nullable=False),
        sa.Column("realm", sa.String(63), nullable=False),
        sa.Column("node_id", sa.String(63), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("job_digest", sa.String(64), nullable=False),
        sa.Column("not_before", sa.BigInteger(), nullable=False),
        sa.Column("deadline", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_holder", sa.String(63), nullable=True),
        sa.Column("lease_expires_at", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("leased_at", sa.Float(), nullable=True),
        sa.Column("started_at", sa.Float(), nullable=True),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("stdout_tail", sa.Text(), nullable=True),
        sa.Column("stderr_tail", sa.Text(), nullable=True),
        sa.Column("result_code", sa.String(64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("account", sa.String(256), nullable=True),
        sa.Column("trace", sa.Text(), nullable=True),
        sa.Column("result_digest", sa.String(64), nullable=True),
        sa.Column("token_ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("token_jti", sa.String(36), nullable=False),
        sa.Column("token_exp", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sts_jobs"),
        sa.UniqueConstraint("token_jti", name="uq_sts_jobs_token_jti"),
    )
    op.create_index("ix_sts_jobs_lease", "sts_jobs", ["node_id", "state", "not_before", "created_at"])
    op.create_index("ix_sts_jobs_deadline", "sts_jobs", ["state", "deadline"])
    op.create_index("ix_sts_jobs_lease_expiry", "sts_jobs", ["state", "lease_expires_at"])
    op.create_index("ix_sts_jobs_submitter", "sts_jobs", ["submitter", "created_at"])
    op.create_index("ix_sts_jobs_created", "sts_jobs", ["created_at"])
    op.create_table(
        "sts_job_idempotency",
        sa.Column("submitter", sa.String(1200), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("request_digest", sa.String(64), nullable=False),
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["sts_jobs.id"], name="fk_sts_job_idempotency_job_id_sts_jobs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("submitter", "key", name="pk_sts_job_idempotency"),
    )


def downgrade() -> None:
    op.drop_table("sts_job_idempotency")
    op.drop_index("ix_sts_jobs_created", table_name="sts_jobs")
    op.drop_index("ix_sts_jobs_submitter", table_name="sts_jobs")
    op.drop_index("ix_sts_jobs_lease_expiry", table_name="sts_jobs")
    op.drop_index("ix_sts_jobs_deadline", table_name="sts_jobs")
    op.drop_index("ix_sts_jobs_lease", table_name="sts_jobs")
    op.drop_table("sts_jobs")
