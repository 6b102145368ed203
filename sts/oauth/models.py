"""The OAuth domain's tables: revoked jtis, refresh tokens, seen client assertions, login counters."""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Integer, String
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


class AuthorizationCode(Base):
    """An authorization code (RFC 6749 §4.1.2), stored as its SHA-256, with its PKCE challenge
    and, once used, the access token jti and refresh family it produced (revoked on replay)."""

    __tablename__ = "sts_authorization_codes"
    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    realm: Mapped[str] = mapped_column(String(63))
    client_id: Mapped[str] = mapped_column(String(64))
    redirect_uri: Mapped[str] = mapped_column(String(2048))
    code_challenge: Mapped[str] = mapped_column(String(64))
    nonce: Mapped[str | None] = mapped_column(String(512), nullable=True)
    scope: Mapped[str] = mapped_column(String(512))
    subject: Mapped[str] = mapped_column(String(1200))
    username: Mapped[str] = mapped_column(String(256))
    groups: Mapped[list[str]] = mapped_column(JSON)
    auth_time: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[int] = mapped_column(Integer, index=True)
    used_at: Mapped[int | None] = mapped_column(Integer, nullable=True)
    access_jti: Mapped[str | None] = mapped_column(String(128), nullable=True)
    access_exp: Mapped[int | None] = mapped_column(Integer, nullable=True)
    family_id: Mapped[str | None] = mapped_column(String(36), nullable=True)


class IdTokenGrant(Base):
    """A refresh-token family that came from an ``openid`` authorization: each refresh of it
    returns an ID token too (OpenID Connect Core §12.2). Kept as long as the family can live."""

    __tablename__ = "sts_id_token_grants"
    family_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    realm: Mapped[str] = mapped_column(String(63))
    client_id: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(1200))
    auth_time: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[int] = mapped_column(Integer, index=True)
