"""What every grant shares: reading parameters, and minting the access token (RFC 9068)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar

from realms.config import TokenPolicy
from realms.identity.principal import Principal
from sts.errors import GrantInvalid
from sts.services import Services

MAX_PARAMETER = 4096
DEFAULT_CLIENT_ID = "jobsts"


def invalid_request(message: str, **data: Any) -> GrantInvalid:
    return GrantInvalid(message, error="invalid_request", **data)


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
                raise invalid_request(f"realm {self.realm}: parameter {name} is required")
            return None
        if len(value) > MAX_PARAMETER:
            raise invalid_request(f"realm {self.realm}: parameter {name} is too long")
        return value

    def issue(self) -> dict[str, Any]:
        raise NotImplementedError

    @property
    def issuer(self) -> str:
        return self.services.config.issuer(self.realm)

    def access_token(self, principal: Principal, client_id: str, *, not_after: int | None = None) -> tuple[str, int]:
        """An ``at+jwt`` for ``principal``: sub, groups and realm as in design.md "Tokens".
        ``not_after`` caps ``exp`` (a token exchange never outlives the token presented)."""
        now = int(time.time())
        exp = now + self.policy.access_token_ttl
        if not_after is not None:
            exp = min(exp, not_after)
        claims = {
            "iss": self.issuer, "sub": str(principal.access_id), "aud": self.services.config.audience,
            "iat": now, "nbf": now, "exp": exp, "jti": str(uuid.uuid4()),
            "realm": self.realm, "groups": sorted(str(g) for g in principal.groups if g.realm == self.realm),
            "preferred_username": principal.username, "client_id": client_id,
        }
        return self.services.keys.sign(self.realm, claims, "at+jwt"), exp - now


def client_id_of(form: Mapping[str, str]) -> str:
    """A public client's self-declared id (RFC 9068 §2.2 ``client_id``); informational only."""
    value = form.get("client_id") or DEFAULT_CLIENT_ID
    if len(value) > 64 or not value.isprintable():
        raise invalid_request("parameter client_id is not a printable name of at most 64 characters")
    return value
