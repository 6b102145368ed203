"""``grant_type=authorization_code`` (RFC 6749 §4.1.3) with PKCE (RFC 7636 §4.5, §4.6).

The client is public and registered; the code must be its own, for the same redirect URI,
unused, unexpired, and the ``code_verifier`` must hash to the stored S256 challenge. The
answer carries an access token, a refresh token and, for the ``openid`` scope, an ID token
(OpenID Connect Core §3.1.3.3).
"""

from __future__ import annotations

import time
import uuid
from typing import Any, ClassVar

from realms.tokens import ACCESS_TOKEN
from realms.wire.claims import access_token_claims, new_jti
from sts.oauth import authorization_codes, id_tokens, refresh_tokens
from sts.oauth.errors import ClientUnknown, CodeInvalid, CodeReused
from sts.oauth.grants.base import Grant
from sts.oauth.models import AuthorizationCode


class AuthorizationCodeGrant(Grant):
    grant_type: ClassVar[str] = "authorization_code"

    def issue(self) -> dict[str, Any]:
        client_id = self.param("client_id") or ""
        if (self.realm, client_id) not in self.services.config.clients:
            raise ClientUnknown(f"realm {self.realm}: client_id {client_id[:64]!r} is not registered")
        code = self.param("code") or ""
        redirect_uri = self.param("redirect_uri") or ""
        verifier = self.param("code_verifier") or ""
        now = int(time.time())
        jti, family_id = new_jti(), str(uuid.uuid4())
        exp = now + self.policy.access_token_ttl
        with self.services.db.session() as session:
            row = authorization_codes.find(session, self.realm, code)
            if row is None or row.expires_at <= now:
                raise CodeInvalid(f"realm {self.realm}: authorization code is unknown or expired", realm=self.realm)
            if row.used_at is not None:
                self._revoke_first_use(row)
            # Why: a code is bound to the client and redirect URI it was issued for and to the
            # PKCE challenge: a stolen code is useless without the verifier (RFC 7636 §1).
            if row.client_id != client_id or row.redirect_uri != redirect_uri:
                raise CodeInvalid(f"realm {self.realm}: code was issued to another client or redirect_uri")
            if not authorization_codes.verifier_matches(verifier, row.code_challenge):
                raise CodeInvalid(f"realm {self.realm}: code_verifier does not match the code_challenge")
            if not authorization_codes.spend(session, row, now):
                raise CodeReused(f"realm {self.realm}: authorization code was already used", realm=self.realm)
            # Recorded with the spend, in one transaction, so a replay always finds what to revoke.
            authorization_codes.record_tokens(session, row.code_hash, jti, exp, family_id)
            grant = _Snapshot(row)
        access = self._access_token(grant, jti, now, exp)
        with self.services.db.session() as session:
            refresh = refresh_tokens.issue(
                session, self.realm, grant.username, client_id, ttl=self.policy.refresh_token_ttl, family_id=family_id
            )
            if "openid" in grant.scope.split():
                id_tokens.remember(
                    session,
                    family_id,
                    self.realm,
                    client_id,
                    grant.subject,
                    grant.auth_time,
                    now + self.policy.refresh_token_ttl,
                )
        body: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": exp - now,
            "refresh_token": refresh,
            "scope": grant.scope,
        }
        if "openid" in grant.scope.split():
            body["id_token"] = id_tokens.sign_id_token(
                self.services,
                self.realm,
                subject=grant.subject,
                client_id=grant.client_id,
                username=grant.username,
                auth_time=grant.auth_time,
                nonce=grant.nonce,
                access_token=access,
            )
        return body

    def _revoke_first_use(self, row: AuthorizationCode) -> None:
        # Why: RFC 6749 §4.1.2: a code used twice means it leaked; revoke what it produced.
        with self.services.db.session() as session:
            if row.access_jti is not None and row.access_exp is not None:
                self.services.revoke(session, row.access_jti, row.access_exp, "authorization code replayed")
            if row.family_id is not None:
                refresh_tokens.revoke_family(session, row.family_id)
        raise CodeReused(f"realm {self.realm}: authorization code was already used; its tokens are revoked")

    def _access_token(self, grant: _Snapshot, jti: str, now: int, exp: int) -> str:
        claims = access_token_claims(
            issuer=self.issuer,
            subject=grant.subject,
            audience=self.services.config.audience,
            realm=self.realm,
            groups=grant.groups,
            username=grant.username,
            client_id=grant.client_id,
            issued_at=now,
            expires_at=exp,
            jti=jti,
        )
        return self.services.keys.sign(self.realm, claims, ACCESS_TOKEN.typ)


class _Snapshot:
    """The code row's values, read inside its transaction."""

    def __init__(self, row: AuthorizationCode) -> None:
        self.client_id, self.subject, self.username = row.client_id, row.subject, row.username
        self.groups, self.scope, self.nonce, self.auth_time = tuple(row.groups), row.scope, row.nonce, row.auth_time
