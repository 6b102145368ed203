"""The console's server-side sessions (``sts_console_sessions``, Alembic revision 0008)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from sts.db import Base


class ConsoleSession(Base):
    """One signed-in browser. The cookie holds a random id; only its SHA-256 is stored, and the
    realm's tokens are kept sealed with the master key (bound to that hash), never in the browser."""

    __tablename__ = "sts_console_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    realm: Mapped[str] = mapped_column(String(63))
    subject: Mapped[str] = mapped_column(String(1200))
    username: Mapped[str] = mapped_column(String(256))
    access_token: Mapped[bytes] = mapped_column(LargeBinary)
    refresh_token: Mapped[bytes] = mapped_column(LargeBinary)
    access_exp: Mapped[int] = mapped_column(BigInteger)
    # The access token's jti, so one statement reads the session and whether it was revoked.
    access_jti: Mapped[str] = mapped_column(String(128))
    # Set by the one request that refreshes the tokens, so concurrent requests never present
    # the same single-use refresh token twice (which would revoke the whole family).
    refresh_claimed_at: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_sts_console_sessions_expires", "expires_at"),)
