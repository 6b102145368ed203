"""``grant_type=refresh_token`` (RFC 6749 §6, rotation per RFC 9700 §4.14.2).

Refresh tokens are single-use: each use returns a new one of the same family, and a spent
one presented again revokes the whole family (someone holds a stolen copy). The user is
looked up in the directory again, so a deleted user cannot refresh. A family that came from
an ``openid`` authorization gets a new ID token with each refresh (OpenID Connect Core §12.2):
same ``sub``, ``aud`` and ``auth_time``, no ``nonce``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sts.oauth import id_tokens, refresh_tokens
from sts.oauth.errors import RefreshTokenInvalid, RefreshTokenReused
from sts.oauth.grants.base import Grant, client_id_of


class RefreshTokenGrant(Grant):
    grant_type: ClassVar[str] = "refresh_token"

    def issue(self) -> dict[str, Any]:
        presented = self.param("refresh_token") or ""
        client_id = client_id_of(self.form, self.realm, self.services.config.clients)
        try:
            with self.services.db.session() as session:
                current = refresh_tokens.check(session, self.realm, presented)
        except RefreshTokenReused as exc:
            # Why: a spent token presented again means two parties hold the family; revoke
            # it all so the thief's copy dies with the victim's (RFC 9700 §4.14.2).
            refresh_tokens.revoke_family_now(self.services.db, exc.data["family_id"])
            raise
        # Look the user up before spending the token: an outage (503) leaves it usable.
        principal = self.services.registries[self.realm].lookup(current.username)
        with self.services.db.session(immediate=True) as session:
            if principal is None:
                refresh_tokens.revoke_family(session, current.family_id)
            else:
                spent = refresh_tokens.spend(session, current)
                new = None
                if spent:
                    new = refresh_tokens.issue(
                        session,
                        self.realm,
                        principal.username,
                        client_id,
                        family_id=current.family_id,
                        expires_at=current.expires_at,
                    )
        if principal is None:
            raise RefreshTokenInvalid(
                f"realm {self.realm}: user {current.username!r} no longer exists", realm=self.realm
            )
        if new is None:
            # Spent between check and spend by a concurrent request: treat as reuse.
            refresh_tokens.revoke_family_now(self.services.db, current.family_id)
            raise RefreshTokenInvalid(f"realm {self.realm}: refresh token was already used", realm=self.realm)
        token, ttl = self.access_token(principal, client_id)
        body: dict[str, Any] = {"access_token": token, "token_type": "Bearer", "expires_in": ttl, "refresh_token": new}
        with self.services.db.session() as session:
            grant = id_tokens.find(session, current.family_id, self.realm, client_id)
            openid = None if grant is None else (grant.subject, grant.auth_time)
        if openid is not None:
            body["id_token"] = id_tokens.sign_id_token(
                self.services,
                self.realm,
                subject=openid[0],
                client_id=client_id,
                username=principal.username,
                auth_time=openid[1],
                nonce=None,
                access_token=token,
            )
        return body
