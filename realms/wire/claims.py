"""The claims of each token profile the STS signs, built in one place per profile.

``realms.tokens.profiles`` says what a verifier requires of each ``typ``; these builders are
what the signer puts in. Refresh tokens are opaque random strings, not JWTs, so they have no
builder. All times are integer seconds since the epoch.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any


def new_jti() -> str:
    """A fresh token id (RFC 7519 §4.1.7): a random UUID."""
    return str(uuid.uuid4())


def access_token_claims(
    *,
    issuer: str,
    subject: str,
    audience: str,
    realm: str,
    groups: Iterable[str],
    username: str,
    client_id: str,
    issued_at: int,
    expires_at: int,
    jti: str,
) -> dict[str, Any]:
    """An ``at+jwt`` (RFC 9068 §2.2): the user's access ID, the realm's own groups, the client."""
    return {
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "iat": issued_at,
        "nbf": issued_at,
        "exp": expires_at,
        "jti": jti,
        "realm": realm,
        "groups": sorted(groups),
        "preferred_username": username,
        "client_id": client_id,
    }


def agent_token_claims(
    *, issuer: str, node_id: str, audience: str, issued_at: int, expires_at: int, jti: str, key_thumbprint: str
) -> dict[str, Any]:
    """An ``agent+jwt``: a registered node (sub ``node:<id>``) calling the agent API, bound to the
    node key that obtained it: ``cnf`` (RFC 7800 §3.1) holding that key's RFC 7638 thumbprint as
    ``jkt`` (the member RFC 9449 §6.1 defines)."""
    return {
        "iss": issuer,
        "sub": f"node:{node_id}",
        "aud": audience,
        "iat": issued_at,
        "nbf": issued_at,
        "exp": expires_at,
        "jti": jti,
        "client_id": node_id,
        "cnf": {"jkt": key_thumbprint},
    }


def job_token_claims(
    *,
    issuer: str,
    subject: str,
    node_id: str,
    realm: str,
    groups: Iterable[str],
    job_id: str,
    job_digest: str,
    issued_at: int,
    not_before: int,
    expires_at: int,
    jti: str,
    username: str | None,
) -> dict[str, Any]:
    """A ``job+jwt``: whom the job runs for, bound to one job on one node (``aud`` is the node id,
    ``job_digest`` covers the job), valid from ``not_before`` to the job's deadline."""
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "aud": node_id,
        "realm": realm,
        "groups": list(groups),
        "job_id": job_id,
        "job_digest": job_digest,
        "iat": issued_at,
        "nbf": not_before,
        "exp": expires_at,
        "jti": jti,
    }
    if username:
        claims["preferred_username"] = username
    return claims


def id_token_claims(
    *,
    issuer: str,
    subject: str,
    client_id: str,
    username: str,
    auth_time: int,
    issued_at: int,
    expires_at: int,
    nonce: str | None,
    access_token_hash: str | None,
) -> dict[str, Any]:
    """An OpenID Connect ID token (Core §2): ``aud`` is the client, ``sub`` the user's access ID;
    ``nonce`` echoes the authorization request's (§3.1.2.1) and ``at_hash`` binds the access
    token issued beside it (§3.1.3.6)."""
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "aud": client_id,
        "azp": client_id,
        "iat": issued_at,
        "exp": expires_at,
        "auth_time": auth_time,
        "preferred_username": username,
    }
    if nonce is not None:
        claims["nonce"] = nonce
    if access_token_hash is not None:
        claims["at_hash"] = access_token_hash
    return claims
