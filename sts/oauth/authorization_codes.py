"""Authorization codes (RFC 6749 §4.1.2) with their PKCE challenge (RFC 7636 §4.4).

A code is 256 random bits, stored only as its hash (``sts.one_time_secrets``), valid for ``CODE_TTL`` seconds and
for one use. It remembers whom it was issued to (client, redirect URI), the user, the
``nonce`` and the S256 challenge. Redeeming a code a second time revokes every token issued
from its first use (RFC 6749 §4.1.2: "SHOULD revoke").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from sts.oauth.models import AuthorizationCode
from sts.one_time_secrets import matches, new_secret, secret_hash

CODE_TTL = 60
VERIFIER_MIN, VERIFIER_MAX = 43, 128
VERIFIER_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


@dataclass(frozen=True, slots=True)
class CodeGrantRequest:
    """What the user approved at the login page, to be bound to the code."""

    realm: str
    client_id: str
    redirect_uri: str
    code_challenge: str
    nonce: str | None
    scope: str
    subject: str
    username: str
    groups: tuple[str, ...]
    auth_time: int


def s256(verifier: str) -> str:
    """``BASE64URL(SHA256(ASCII(code_verifier)))`` (RFC 7636 §4.2)."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


def verifier_matches(verifier: str, challenge: str) -> bool:
    """RFC 7636 §4.1 syntax, then §4.6 comparison (constant time)."""
    if not VERIFIER_MIN <= len(verifier) <= VERIFIER_MAX or not set(verifier) <= VERIFIER_CHARS:
        return False
    return hmac.compare_digest(s256(verifier), challenge)


def issue(session: Session, request: CodeGrantRequest, now: int | None = None) -> str:
    """Store a new code for ``request``; returns the code (only its hash is kept)."""
    now = int(time.time()) if now is None else now
    code = new_secret()
    session.execute(delete(AuthorizationCode).where(AuthorizationCode.expires_at < now - CODE_TTL))
    session.add(
        AuthorizationCode(
            code_hash=secret_hash(code),
            realm=request.realm,
            client_id=request.client_id,
            redirect_uri=request.redirect_uri,
            code_challenge=request.code_challenge,
            nonce=request.nonce,
            scope=request.scope,
            subject=request.subject,
            username=request.username,
            groups=list(request.groups),
            auth_time=request.auth_time,
            expires_at=now + CODE_TTL,
        )
    )
    return code


def find(session: Session, realm: str, code: str) -> AuthorizationCode | None:
    if not code or len(code) > 128:
        return None
    row = session.get(AuthorizationCode, secret_hash(code))
    return row if row is not None and matches(code, row.code_hash) and row.realm == realm else None


def spend(session: Session, row: AuthorizationCode, now: int) -> bool:
    """Mark ``row`` used; ``False`` if another request used it first."""
    result = session.execute(
        update(AuthorizationCode)
        .where(AuthorizationCode.code_hash == row.code_hash, AuthorizationCode.used_at.is_(None))
        .values(used_at=now)
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1


def record_tokens(session: Session, row_hash: str, access_jti: str, access_exp: int, family_id: str) -> None:
    """Remember what the code's first use issued, so that a replay can revoke it."""
    session.execute(
        update(AuthorizationCode)
        .where(AuthorizationCode.code_hash == row_hash)
        .values(access_jti=access_jti, access_exp=access_exp, family_id=family_id)
    )
