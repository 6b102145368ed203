"""What every grant shares: reading parameters, and minting the access token (RFC 9068)."""

from __future__ import annotations

import time
from collections.abc import Container, Mapping
from typing import Any, ClassVar

from realms.config import TokenPolicy
from realms.identity.principal import Principal
from realms.tokens import ACCESS_TOKEN
from realms.wire.claims import access_token_claims, new_jti
from sts.oauth.errors import GrantInvalid
from sts.oauth.public_clients import public_client_id
from sts.services import Services

MAX_PARAMETER = 4096


class Grant:
    """One grant type. ``issue()`` returns the RFC 6749 §5.1 response body or raises a JobstsError."""

    grant_type: ClassVar[str] = ""

    def __init__(self, services: Services, realm: str, form: Mapping[str, str], client_address: str) -> None:
        self.services, self.realm, self.form, self.client_address = services, realm, form, client_address
        self.policy: TokenPolicy = services.config.realms[realm].token

    def param(self, name: str, *, required: bool = True) -> str | None:
        value = self.form.get(name)
        if value is None or value == "":
            if required:
                raise GrantInvalid(f"realm {self.realm}: parameter {name} is required")
            return None
        if len(value) > MAX_PARAMETER:
            raise GrantInvalid(f"realm {self.realm}: parameter {name} is too long")
        return value

    def issue(self) -> dict[str, Any]:
        raise NotImplementedError

    @property
    def issuer(self) -> str:
        return self.services.config.issuer(self.realm)

    def access_token(self, principal: Principal, client_id: str, *, not_after: int | None = None) -> tuple[str, int]:
        """An ``at+jwt`` for ``principal`` with the groups this realm vouches for. ``not_after``
        caps ``exp`` (a token exchange never outlives the token presented)."""
        now = int(time.time())
        exp = now + self.policy.access_token_ttl
        if not_after is not None:
            exp = min(exp, not_after)
        claims = access_token_claims(
            issuer=self.issuer,
            subject=str(principal.access_id),
            audience=self.services.config.audience,
            realm=self.realm,
            groups=(str(g) for g in principal.groups if g.realm == self.realm),
            username=principal.username,
            client_id=client_id,
            issued_at=now,
            expires_at=exp,
            jti=new_jti(),
        )
        return self.services.keys.sign(self.realm, claims, ACCESS_TOKEN.typ), exp - now


def client_id_of(form: Mapping[str, str], realm: str, registered: Container[tuple[str, str]]) -> str:
    """The client's id for the token (RFC 9068 §2.2 ``client_id``): a known one, or the default."""
    return public_client_id(form, realm, registered)
