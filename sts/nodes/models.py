"""The registered nodes' table."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from sts.db import Base


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
    # When its agent last called the STS (epoch seconds; sts.nodes.presence batches the writes).
    last_seen_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class JoinToken(Base):
    """A one-time node join token (``sts.nodes.enrollment``), stored only as its SHA-256."""

    __tablename__ = "sts_join_tokens"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    node_id: Mapped[str] = mapped_column(String(63), index=True)
    realm: Mapped[str] = mapped_column(String(63))
    authgroups: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(1200))
    expires_at: Mapped[int] = mapped_column(Integer, index=True)
    used_at: Mapped[int | None] = mapped_column(Integer, nullable=True)


class AuthVersion(Base):
    """The single row (id = 1) whose ``version`` grows with every revocation and node change."""

    __tablename__ = "sts_auth_version"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(BigInteger)
