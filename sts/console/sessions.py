"""Server-side console sessions: one random cookie per signed-in browser, the tokens on the server.

The browser holds only ``jobsts_console`` (256 random bits, HttpOnly, SameSite=Strict, Secure
unless the STS is served over plain http on a loopback address). The session row keeps the
realm's access and refresh tokens sealed with the master key. Each request verifies the access
token exactly as the API does (``sts.http.auth.verify_bearer``: signature, issuer, audience,
revocation) and becomes that caller, so the console authorizes with the API's own code. Shortly
before the access token expires, one request refreshes it (RFC 6749 §6, the refresh grant).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import Request
from sqlalchemy import delete, exists, select, update
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from realms.errors import JobstsError, UnavailableError
from realms.identity.access_id import AccessId
from realms.tokens import ACCESS_TOKEN
from realms.tokens import verify as verify_token
from sts.console.errors import ConsoleCsrf, ConsoleSignedOut
from sts.console.models import ConsoleSession
from sts.http.auth import verify_bearer
from sts.http.context import Caller, request_context
from sts.oauth import refresh_tokens
from sts.oauth.clients import CONSOLE_CLIENT_ID
from sts.oauth.grants import GRANTS
from sts.oauth.models import RevokedToken
from sts.services import Services

COOKIE = "jobsts_console"
COOKIE_PATH = "/console"
CSRF_LABEL = "console-csrf"
# Refresh when less than this much of the access token's life is left; a request that finds
# another one refreshing keeps using the current token meanwhile.
REFRESH_MARGIN = 60
REFRESH_CLAIM_SECONDS = 30
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def secure_cookies(base_url: str) -> bool:
    """Why: a Secure cookie is never sent over plain http, so it is required everywhere except an
    STS whose base URL is plain http on a loopback address (a developer's machine, the tests),
    where nothing crosses a network. Any other http base URL still gets Secure cookies."""
    parts = urlsplit(base_url)
    return not (parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS)


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _aad(id_hash: str, which: str) -> bytes:
    # Why: sealed tokens are bound to their session and slot; a copied row or a swapped column
    # fails to decrypt.
    return f"console-session:{id_hash}:{which}".encode()


@dataclass(frozen=True, slots=True)
class SignedIn:
    """The signed-in browser of this request: its session id hash, CSRF token and caller."""

    id_hash: str
    csrf: str
    caller: Caller


def csrf_token(services: Services, session_id: str) -> str:
    """The session's CSRF token: a MAC of its id, so it needs no storage and no other session's fits."""
    mac = services.master_key.mac(CSRF_LABEL, _hash(session_id).encode())
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def start(services: Services, realm: str, tokens: dict[str, object], now: int) -> tuple[str, str]:
    """Store a new session for the token response of a sign-in: (cookie value, the user's access ID)."""
    session_id = secrets.token_urlsafe(32)
    id_hash = _hash(session_id)
    access, refresh = str(tokens["access_token"]), str(tokens["refresh_token"])
    verified = verify_bearer(access, ACCESS_TOKEN)
    username = verified.claims.get("preferred_username")
    policy = services.config.realms[realm].token
    with services.session() as db:
        db.add(
            ConsoleSession(
                id_hash=id_hash,
                realm=realm,
                subject=verified.subject,
                username=username if isinstance(username, str) else verified.subject,
                access_token=services.master_key.encrypt(access.encode(), _aad(id_hash, "access")),
                refresh_token=services.master_key.encrypt(refresh.encode(), _aad(id_hash, "refresh")),
                access_exp=int(verified.claims["exp"]),
                access_jti=str(verified.claims["jti"])[:128],
                refresh_claimed_at=0,
                created_at=now,
                expires_at=now + policy.refresh_token_ttl,
            )
        )
        # Sessions past their refresh token's life are dropped as new ones begin.
        db.execute(delete(ConsoleSession).where(ConsoleSession.expires_at < now))
    return session_id, verified.subject


def _open(services: Services, row: ConsoleSession, which: str) -> str:
    blob = row.access_token if which == "access" else row.refresh_token
    return services.master_key.decrypt(blob, _aad(row.id_hash, which)).decode()


def _claim_refresh(db: Session, row: ConsoleSession, now: int) -> bool:
    result = db.execute(
        update(ConsoleSession)
        .where(
            ConsoleSession.id_hash == row.id_hash,
            ConsoleSession.access_exp == row.access_exp,
            ConsoleSession.refresh_claimed_at < now - REFRESH_CLAIM_SECONDS,
        )
        .values(refresh_claimed_at=now)
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1


def _refresh(services: Services, row: ConsoleSession, now: int) -> str | None:
    """New tokens through the refresh grant, if this request won the claim; else ``None``."""
    with services.session() as db:
        if not _claim_refresh(db, row, now):
            return None
    form = {
        "grant_type": "refresh_token",
        "refresh_token": _open(services, row, "refresh"),
        "client_id": CONSOLE_CLIENT_ID,
    }
    tokens = GRANTS["refresh_token"](services, row.realm, form, request_context().client_address).issue()
    access = str(tokens["access_token"])
    jti = str(verify_bearer(access, ACCESS_TOKEN).claims["jti"])[:128]
    with services.session() as db:
        db.execute(
            update(ConsoleSession)
            .where(ConsoleSession.id_hash == row.id_hash)
            .values(
                access_token=services.master_key.encrypt(access.encode(), _aad(row.id_hash, "access")),
                refresh_token=services.master_key.encrypt(
                    str(tokens["refresh_token"]).encode(), _aad(row.id_hash, "refresh")
                ),
                access_exp=now + int(str(tokens["expires_in"])),
                access_jti=jti,
                refresh_claimed_at=0,
            )
        )
    return access


def _row(services: Services, session_id: str) -> tuple[ConsoleSession | None, bool]:
    """The session and whether its access token was revoked: one statement per request."""
    if not session_id or len(session_id) > 128:
        return None, False
    revoked = exists().where(RevokedToken.jti == ConsoleSession.access_jti).label("revoked")
    with services.session() as db:
        found = db.execute(select(ConsoleSession, revoked).where(ConsoleSession.id_hash == _hash(session_id))).first()
    return (None, False) if found is None else (found[0], bool(found[1]))


def current(services: Services, request: Request) -> SignedIn:
    """The signed-in caller of this request, set as the request's caller; else ``console.signed_out``."""
    session_id = request.cookies.get(COOKIE, "")
    row, revoked = _row(services, session_id)
    now = int(time.time())
    if row is None or row.expires_at <= now or revoked:
        raise ConsoleSignedOut("not signed in to the console, or the session ended")
    access = _open(services, row, "access")
    refreshed = None
    if row.access_exp - now < REFRESH_MARGIN:
        try:
            refreshed = _refresh(services, row, now)
        except UnavailableError:
            raise
        except JobstsError:
            # Why: a refresh token that is revoked, reused or whose user is gone ends the session.
            end(services, session_id)
            raise ConsoleSignedOut("the console session ended; sign in again") from None
    try:
        if refreshed is not None:
            verified = verify_bearer(refreshed, ACCESS_TOKEN)
        else:
            # The API's verifier (realms/tokens/verify.py); the revocation was read with the row.
            verified = verify_token(
                access, ACCESS_TOKEN, services.keys.trust_resolver(), audience=services.config.audience
            )
    except UnavailableError:
        raise
    except JobstsError:
        raise ConsoleSignedOut("the console session's token is no longer valid; sign in again") from None
    username = verified.claims.get("preferred_username")
    caller = Caller(
        access_id=AccessId.parse(verified.subject),
        realm=verified.realm,
        username=username if isinstance(username, str) else None,
        groups=verified.vouched_groups(),
        token_jti=verified.claims["jti"],
        token_exp=int(verified.claims["exp"]),
    )
    request_context().caller = caller
    return SignedIn(row.id_hash, csrf_token(services, session_id), caller)


def check_csrf(services: Services, request: Request) -> None:
    """Every state-changing console request carries the session's CSRF token in its form."""
    session_id = request.cookies.get(COOKIE, "")
    sent = request.form.get("csrf_token", "")
    # Why: SameSite=Strict already keeps other sites' requests from carrying the cookie; the
    # token is the second, independent defence (and covers browsers that ignore SameSite).
    if not session_id or not sent or not hmac.compare_digest(csrf_token(services, session_id), sent):
        raise ConsoleCsrf("the form did not carry this session's CSRF token; reload the page and retry")


def end(services: Services, session_id: str) -> None:
    """Sign out: revoke the refresh token's family and the access token, then drop the session."""
    row, _ = _row(services, session_id)
    if row is None:
        return
    with services.session() as db:
        token = refresh_tokens.find(db, row.realm, _open(services, row, "refresh"))
        if token is not None:
            refresh_tokens.revoke_family(db, token.family_id)
        try:
            claims = verify_bearer(_open(services, row, "access"), ACCESS_TOKEN).claims
            services.revoke(db, str(claims["jti"]), int(claims["exp"]), "console sign-out")
        except JobstsError:
            pass  # expired or already revoked: nothing left to revoke
        db.execute(delete(ConsoleSession).where(ConsoleSession.id_hash == row.id_hash))


def set_cookie(response: Response, services: Services, session_id: str) -> None:
    response.set_cookie(
        COOKIE,
        session_id,
        httponly=True,
        secure=secure_cookies(services.config.base_url),
        samesite="Strict",
        path=COOKIE_PATH,
    )


def clear_cookie(response: Response, services: Services) -> None:
    response.delete_cookie(
        COOKIE, path=COOKIE_PATH, httponly=True, secure=secure_cookies(services.config.base_url), samesite="Strict"
    )
