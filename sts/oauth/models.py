"""The OAuth domain's tables: revoked jtis, refresh tokens, seen client assertions, login counters."""

from __future__ import annotations

from sqlalchemy import Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from sts.db import Base


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
