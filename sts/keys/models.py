"""The key store's tables: one key ring per realm and its signing keys."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from sts.db import Base


class KeyRing(Base):
    """One row per realm; ``generation`` grows on every key change so other processes reload."""

    __tablename__ = "sts_key_rings"
    # A realm name, or "<realm>#RS256" for the realm's ID-token ring.
    realm: Mapped[str] = mapped_column(String(80), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, default=0)


class SigningKey(Base):
    """A realm's signing key; the private key is AES-GCM encrypted with the master key."""

    __tablename__ = "sts_signing_keys"
    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    realm: Mapped[str] = mapped_column(String(80), index=True)  # the key ring
    algorithm: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))  # next | active | retiring | retired
    private_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[int] = mapped_column(Integer)
    retiring_since: Mapped[int | None] = mapped_column(Integer, nullable=True)
    retired_at: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # When a pre-published (``next``) key starts to sign; NULL for keys that signed at creation.
    activates_at: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Set when the key's successor is scheduled: the key stopped signing then, so no token it
    # signed is valid after this (sts.keys.lifecycle.published_until).
    published_until: Mapped[int] = mapped_column(Integer, default=0)
