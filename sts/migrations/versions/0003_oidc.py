"""OpenID provider: authorization codes; key rings named "<realm>#RS256" for ID tokens.

Revision ID: 0003_oidc
Revises: 0002_jobs
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_oidc"
down_revision = "0002_jobs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sts_authorization_codes",
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("realm", sa.String(63), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("redirect_uri", sa.String(2048), nullable=False),
        sa.Column("code_challenge", sa.String(64), nullable=False),
        sa.Column("nonce", sa.String(512), nullable=True),
        sa.Column("scope", sa.String(512), nullable=False),
        sa.Column("subject", sa.String(1200), nullable=False),
        sa.Column("username", sa.String(256), nullable=False),
        sa.Column("groups", sa.JSON(), nullable=False),
        sa.Column("auth_time", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.Integer(), nullable=False),
        sa.Column("used_at", sa.Integer(), nullable=True),
        sa.Column("access_jti", sa.String(128), nullable=True),
        sa.Column("access_exp", sa.Integer(), nullable=True),
        sa.Column("family_id", sa.String(36), nullable=True),
        sa.PrimaryKeyConstraint("code_hash", name="pk_sts_authorization_codes"),
    )
    op.create_index("ix_sts_authorization_codes_expires_at", "sts_authorization_codes", ["expires_at"])
    with op.batch_alter_table("sts_key_rings") as batch:
        batch.alter_column("realm", type_=sa.String(80), existing_type=sa.String(63), existing_nullable=False)
    with op.batch_alter_table("sts_signing_keys") as batch:
        batch.alter_column("realm", type_=sa.String(80), existing_type=sa.String(63), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("sts_signing_keys") as batch:
        batch.alter_column("realm", type_=sa.String(63), existing_type=sa.String(80), existing_nullable=False)
    with op.batch_alter_table("sts_key_rings") as batch:
        batch.alter_column("realm", type_=sa.String(63), existing_type=sa.String(80), existing_nullable=False)
    op.drop_index("ix_sts_authorization_codes_expires_at", table_name="sts_authorization_codes")
    op.drop_table("sts_authorization_codes")
