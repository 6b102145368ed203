"""Revoked token jtis (RFC 7009). A jti is kept until the token would have expired anyway,
so the list agents fetch stays as short as the tokens' lifetimes allow."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from sts.nodes.auth_cache import bump_auth_version
from sts.oauth.models import RevokedToken


def revoke_jti(session: Session, jti: str, exp: int, reason: str) -> None:
    """Revoke ``jti`` until ``exp``. Revoking twice keeps the later expiry (RFC 7009 §2.1)."""
    # Why: a revocation must refuse the very next agent call of every process, so the
    # agent-authentication cache version moves in this same transaction.
    bump_auth_version(session)
    values: dict[str, Any] = {"jti": jti[:128], "exp": int(exp), "reason": reason[:200], "revoked_at": int(time.time())}
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        pg = pg_insert(RevokedToken).values(**values)
        session.execute(
            pg.on_conflict_do_update(
                index_elements=["jti"], set_={"exp": pg.excluded.exp}, where=RevokedToken.exp < pg.excluded.exp
            )
        )
        return
    if dialect == "sqlite":
        lite = sqlite_insert(RevokedToken).values(**values)
        session.execute(
            lite.on_conflict_do_update(
                index_elements=["jti"], set_={"exp": lite.excluded.exp}, where=RevokedToken.exp < lite.excluded.exp
            )
        )
        return
    existing = session.get(RevokedToken, values["jti"])
    if existing is None:
        session.add(RevokedToken(**values))
    elif existing.exp < values["exp"]:
        existing.exp = values["exp"]


def is_revoked(session: Session, jti: str) -> bool:
    return session.scalar(select(RevokedToken.jti).where(RevokedToken.jti == jti[:128])) is not None


def list_active(session: Session, now: int | None = None) -> list[tuple[str, int]]:
    """``(jti, exp)`` of every revocation whose token has not expired yet, oldest expiry first."""
    now = int(time.time()) if now is None else now
    rows = session.execute(
        select(RevokedToken.jti, RevokedToken.exp).where(RevokedToken.exp >= now).order_by(RevokedToken.exp)
    )
    return [(jti, exp) for jti, exp in rows]


def purge_expired(session: Session, now: int, keep_seconds: int = 60) -> int:
    """Drop revocations of tokens expired more than ``keep_seconds`` ago (beyond any leeway)."""
    result = session.execute(delete(RevokedToken).where(RevokedToken.exp < now - keep_seconds))
    return int(getattr(result, "rowcount", 0) or 0)
