"""STS core: key rings, signing keys, nodes, revocations, refresh tokens, assertions, login failures.

Revision ID: 0001_sts_core
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_sts_core"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sts_key_rings",
        sa.Column("realm", sa.String(63), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("realm", name="pk_sts_key_rings"),
    )
    op.create_table(
        "sts_signing_keys",
        sa.Column("kid", sa.String(64), nullable=False),
        sa.Column("realm", sa.String(63), nullable=False),
        sa.Column("algorithm", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("private_key", sa.LargeBinary(), nullable=True),
        sa.Column("public_jwk", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("retiring_since", sa.Integer(), nullable=True),
        sa.Column("retired_at", sa.Integer(), nullable=True),
        sa.Column("published_until", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("kid", name="pk_sts_signing_keys"),
    )
    op.create_index("ix_sts_signing_keys_realm", "sts_signing_keys", ["realm"])
    op.create_table(
        "sts_nodes",
        sa.Column("id", sa.String(63), nullable=False),
        sa.Column("realm", sa.String(63), nullable=False),
        sa.Column("authgroups", sa.JSON(), nullable=False),
        sa.Column("public_jwk", sa.JSON(), nullable=False),
        sa.Column("trusted_realms", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(1200), nullable=False),
        sa.Column("updated_at", sa.Integer(), nullable=False),
        sa.Column("updated_by", sa.String(1200), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sts_nodes"),
    )
    op.create_table(
        "sts_revoked_tokens",
        sa.Column("jti", sa.String(128), nullable=False),
        sa.Column("exp", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("revoked_at", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("jti", name="pk_sts_revoked_tokens"),
    )
    op.create_index("ix_sts_revoked_tokens_exp", "sts_revoked_tokens", ["exp"])
    op.create_table(
        "sts_refresh_tokens",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("family_id", sa.String(36), nullable=False),
        sa.Column("realm", sa.String(63), nullable=False),
        sa.Column("username", sa.String(256), nullable=False),
        sa.Column("issued_at", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.Integer(), nullable=False),
        sa.Column("spent_at", sa.Integer(), nullable=True),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name="pk_sts_refresh_tokens"),
    )
    op.create_index("ix_sts_refresh_tokens_family_id", "sts_refresh_tokens", ["family_id"])
    op.create_index("ix_sts_refresh_tokens_expires_at", "sts_refresh_tokens", ["expires_at"])
    op.create_table(
        "sts_seen_assertions",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("exp", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_sts_seen_assertions"),
    )
    op.create_index("ix_sts_seen_assertions_exp", "sts_seen_assertions", ["exp"])
    op.create_table(
        "sts_login_failures",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_sts_login_failures"),
    )


def downgrade() -> None:
    for table in (
        "sts_login_failures",
        "sts_seen_assertions",
        "sts_refresh_tokens",
        "sts_revoked_tokens",
        "sts_nodes",
        "sts_signing_keys",
        "sts_key_rings",
    ):
        op.drop_table(table)
