"""Opaque refresh tokens: 256 random bits, stored only as their hash (``sts.one_time_secrets``),
single-use, grouped in families.

A family is one login session; every token of a family shares its absolute expiry, so
rotation never extends a session beyond ``refresh_token_ttl``.
"""

from __future__ import annotations

import logging
import time
import uuid

from sqlalchemy import Connection, insert, update
from sqlalchemy.orm import Session

from sts.db import Database
from sts.oauth.errors import RefreshTokenInvalid, RefreshTokenReused
from sts.oauth.models import RefreshToken
from sts.one_time_secrets import matches, new_secret, secret_hash

log = logging.getLogger(__name__)
# One statement for every token: its compiled form is cached, only the row changes (an
# ``insert(...).values(row)`` would be a new statement, keyed and compiled anew, per login).
_INSERT = insert(RefreshToken.metadata.tables[RefreshToken.__tablename__])


def issue(
    session: Session | Connection,
    realm: str,
    username: str,
    client_id: str,
    *,
    ttl: int | None = None,
    family_id: str | None = None,
    expires_at: int | None = None,
) -> str:
    """A new refresh token; only its hash is stored (one Core INSERT in the caller's
    transaction). ``client_id`` is kept for the audit log only."""
    now = int(time.time())
    token = new_secret()
    row = {
        "token_hash": secret_hash(token),
        "family_id": family_id or str(uuid.uuid4()),
        "realm": realm,
        "username": username,
        "issued_at": now,
        "expires_at": expires_at if expires_at is not None else now + int(ttl or 0),
        "spent_at": None,
        "revoked": False,
    }
    session.execute(_INSERT, row)
    log.info("refresh token issued: realm=%s user=%s client=%s", realm, username, client_id)
    return token


def find(session: Session, realm: str, token: str) -> RefreshToken | None:
    if not token or len(token) > 512:
        return None
    row = session.get(RefreshToken, secret_hash(token))
    return row if row is not None and matches(token, row.token_hash) and row.realm == realm else None


def check(session: Session, realm: str, token: str) -> RefreshToken:
    """The live token row, or ``RefreshTokenInvalid``. A spent token revokes its family and
    raises ``RefreshTokenReused`` (the revocation is flushed in this session first)."""
    row = find(session, realm, token)
    now = int(time.time())
    if row is None or row.revoked or row.expires_at <= now:
        raise RefreshTokenInvalid(f"realm {realm}: refresh token is unknown, expired or revoked", realm=realm)
    if row.spent_at is not None:
        raise RefreshTokenReused(
            f"realm {realm}: refresh token was already used; its session is revoked",
            realm=realm,
            family_id=row.family_id,
        )
    return row


def spend(session: Session, row: RefreshToken) -> bool:
    """Mark ``row`` spent; ``False`` if another request spent (or revoked) it first."""
    result = session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.token_hash == row.token_hash, RefreshToken.spent_at.is_(None), RefreshToken.revoked.is_(False)
        )
        .values(spent_at=int(time.time()))
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1


def revoke_family(session: Session, family_id: str) -> None:
    session.execute(update(RefreshToken).where(RefreshToken.family_id == family_id).values(revoked=True))


def revoke_family_now(db: Database, family_id: str) -> None:
    with db.session() as session:
        revoke_family(session, family_id)
    log.warning("refresh token family %s revoked", family_id)
