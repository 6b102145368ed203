"""``grant_type=urn:ietf:params:oauth:grant-type:token-exchange`` (RFC 8693), same-realm only.

Exchanges a valid access token of this realm for a fresh one whose groups are read again
from the directory. Deliberately narrow: no delegation (``actor_token`` is refused), no other
audience than the job manager's, no other token type, and the new token never outlives the
one presented, so an exchange cannot extend a session or widen what a token may reach.
"""

from __future__ import annotations

from typing import Any, ClassVar

from realms.errors import JobstsError
from realms.tokens import ACCESS_TOKEN, verify
from realms.tokens.errors import TokenRevoked
from sts.oauth.errors import GrantInvalid, GrantRefused, TargetInvalid
from sts.oauth.grants.base import Grant, client_id_of
from sts.oauth.revocation import is_revoked

ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105 - a URN, not a secret
SUBJECT_TYPES = frozenset({ACCESS_TOKEN_TYPE, "urn:ietf:params:oauth:token-type:jwt"})


class TokenExchangeGrant(Grant):
    grant_type: ClassVar[str] = "urn:ietf:params:oauth:grant-type:token-exchange"

    def _check_request(self) -> None:
        if self.form.get("subject_token_type") not in SUBJECT_TYPES:
            raise GrantInvalid(f"realm {self.realm}: subject_token_type must be {ACCESS_TOKEN_TYPE}")
        if self.form.get("requested_token_type", ACCESS_TOKEN_TYPE) != ACCESS_TOKEN_TYPE:
            raise GrantInvalid(f"realm {self.realm}: only access tokens can be requested")
        # Why: delegation (an actor acting for the subject) would let one principal carry
        # another's identity to a node; jobsts has no rule for it, so it is refused outright.
        if self.form.get("actor_token") or self.form.get("actor_token_type"):
            raise GrantInvalid(f"realm {self.realm}: delegation (actor_token) is not supported")
        audience = self.form.get("audience") or self.form.get("resource")
        if audience is not None and audience != self.services.config.audience:
            raise TargetInvalid(f"realm {self.realm}: audience {audience[:80]!r} is not served here")

    def issue(self) -> dict[str, Any]:
        self._check_request()
        subject_token = self.param("subject_token") or ""
        try:
            verified = verify(
                subject_token,
                ACCESS_TOKEN,
                self.services.keys.trust_resolver(),
                audience=self.services.config.audience,
                leeway=self.policy.leeway,
            )
            with self.services.db.session() as session:
                if is_revoked(session, verified.claims["jti"]):
                    raise TokenRevoked(f"token {verified.claims['jti'][:64]} was revoked", realm=verified.realm)
        except JobstsError as exc:
            raise GrantRefused(f"realm {self.realm}: subject_token refused: {exc.code}") from None
        if verified.realm != self.realm:
            raise GrantRefused(f"realm {self.realm}: subject_token was issued by realm {verified.realm}")
        username = verified.claims.get("preferred_username")
        principal = self.services.registries[self.realm].lookup(username) if isinstance(username, str) else None
        if principal is None or str(principal.access_id) != verified.subject:
            raise GrantRefused(f"realm {self.realm}: the token's user no longer exists")
        token, ttl = self.access_token(
            principal,
            client_id_of(self.form, self.realm, self.services.config.clients),
            not_after=int(verified.claims["exp"]),
        )
        return {
            "access_token": token,
            "issued_token_type": ACCESS_TOKEN_TYPE,
            "token_type": "Bearer",
            "expires_in": max(0, ttl),
        }
