"""ID tokens (OpenID Connect Core §2): signed with the realm's RS256 ID-token ring, issued by
the authorization code grant and again by each refresh of an ``openid`` grant (§12.2)."""

from __future__ import annotations

import base64
import hashlib
import time
from typing import TYPE_CHECKING

from sqlalchemy import delete
from sqlalchemy.orm import Session

from realms.wire.claims import id_token_claims
from sts.oauth.models import IdTokenGrant

if TYPE_CHECKING:
    from sts.services import Services

ID_TOKEN_TYP = "JWT"  # noqa: S105 (a JOSE typ, not a secret)


def at_hash(access_token: str) -> str:
    """OpenID Connect Core §3.1.3.6: the left half of SHA-256 (the ID token is RS256), base64url."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


def sign_id_token(
    services: Services,
    realm: str,
    *,
    subject: str,
    client_id: str,
    username: str,
    auth_time: int,
    nonce: str | None,
    access_token: str,
) -> str:
    """An ID token beside ``access_token``; it lives as long as the access token."""
    now = int(time.time())
    claims = id_token_claims(
        issuer=services.config.issuer(realm),
        subject=subject,
        client_id=client_id,
        username=username,
        auth_time=auth_time,
        issued_at=now,
        expires_at=now + services.config.hosted_realm(realm).token.access_token_ttl,
        nonce=nonce,
        access_token_hash=at_hash(access_token),
    )
    return services.keys.sign(services.keys.id_token_ring(realm), claims, ID_TOKEN_TYP)


def remember(
    session: Session, family_id: str, realm: str, client_id: str, subject: str, auth_time: int, expires_at: int
) -> None:
    """Note that refresh family ``family_id`` came from an ``openid`` authorization of ``client_id``."""
    session.add(
        IdTokenGrant(
            family_id=family_id,
            realm=realm,
            client_id=client_id,
            subject=subject,
            auth_time=auth_time,
            expires_at=expires_at,
        )
    )


def find(session: Session, family_id: str, realm: str, client_id: str) -> IdTokenGrant | None:
    """The ``openid`` grant of a refresh family, when the refreshing client is the one it was issued to."""
    row = session.get(IdTokenGrant, family_id)
    return row if row is not None and row.realm == realm and row.client_id == client_id else None


def purge_expired(session: Session, now: int) -> None:
    session.execute(delete(IdTokenGrant).where(IdTokenGrant.expires_at < now))
