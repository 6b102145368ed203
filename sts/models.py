"""The STS's own tables (SQLAlchemy 2 declarative). Every table name starts with ``sts_``.

``Base`` has its own ``MetaData`` so that the STS schema (migrated by ``sts.migrations``,
version table ``alembic_version_sts``) never mixes with the authz_tables schema. The job
manager's tables (``sts.jobs``) use this ``Base`` too.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Boolean, Integer, LargeBinary, MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class KeyRing(Base):
    """One row per realm; ``generation`` grows on every key change so other processes reload."""

    __tablename__ = "sts_key_rings"
    realm: Mapped[str] = mapped_column(String(63), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, default=0)


class SigningKey(Base):
    """A realm's signing key; the private key is AES-GCM encrypted with the master key."""

    __tablename__ = "sts_signing_keys"
    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    realm: Mapped[str] = mapped_column(String(63), index=True)
    algorithm: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))  # active | retiring | retired
    private_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[int] = mapped_column(Integer)
    retiring_since: Mapped[int | None] = mapped_column(Integer, nullable=True)
    retired_at: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The latest exp of any token this key signed: it stays published at least until then.
    published_until: Mapped[int] = mapped_column(Integer, default=0)


class Node(Base):
    """A registered node (an OAuth2 client authenticating with private_key_jwt)."""

    __tablename__ = "sts_nodes"
    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    realm: Mapped[str] = mapped_column(String(63))
    authgroups: Mapped[list[str]] = mapped_column(JSON)
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    trusted_realms: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(1200))
    updated_at: Mapped[int] = mapped_column(Integer)
    updated_by: Mapped[str] = mapped_column(String(1200))


class RevokedToken(Base):
    """A revoked token jti, kept until the token would have expired anyway."""

    __tablename__ = "sts_revoked_tokens"
    jti: Mapped[str] = mapped_column(String(128), primary_key=True)
    exp: Mapped[int] = mapped_column(Integer, index=True)
    reason: Mapped[str] = mapped_column(String(200))
    revoked_at: Mapped[int] = mapped_column(Integer)


class RefreshToken(Base):
    """An opaque refresh token, stored only as its SHA-256; a family is one login session."""

    __tablename__ = "sts_refresh_tokens"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    family_id: Mapped[str] = mapped_column(String(36), index=True)
    realm: Mapped[str] = mapped_column(String(63))
    username: Mapped[str] = mapped_column(String(256))
    issued_at: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[int] = mapped_column(Integer, index=True)
    spent_at: Mapped[int | None] = mapped_column(Integer, nullable=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class SeenAssertion(Base):
    """A client assertion jti already used (RFC 7523 §3 item 7), kept until the assertion expires."""

    __tablename__ = "sts_seen_assertions"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256(client_id, jti)
    exp: Mapped[int] = mapped_column(Integer, index=True)


class LoginFailures(Base):
    """Brute-force counters, shared by every STS process through the database."""

    __tablename__ = "sts_login_failures"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256(kind, realm, name)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[int] = mapped_column(Integer, default=0)
