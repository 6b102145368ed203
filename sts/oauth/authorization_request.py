"""An authorization request (RFC 6749 §4.1.1 with PKCE, RFC 7636 §4.3; OpenID Connect Core
§3.1.2.1), validated, and the CSRF token that binds the login form to it.

Validation comes in two steps, as RFC 6749 §4.1.2.1 orders: first the client and its exact
redirect URI (a failure is shown on the page, never redirected, or the STS would be an open
redirector), then everything else (a failure is redirected to the client with ``error``).
"""

from __future__ import annotations

import base64
import hmac
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import ClassVar
from urllib.parse import urlencode, urlsplit

from realms.errors import InputError
from sts.keys.master_key import MasterKey
from sts.oauth.clients import RegisteredClient

SUPPORTED_SCOPES = ("openid", "profile")
MAX_STATE = 512
CHALLENGE_LENGTH = 43
CSRF_LABEL = "login-form-csrf"


class AuthorizationRequestInvalid(InputError):
    """The client or redirect URI of an authorization request is unknown: shown on the login
    page, never redirected (RFC 6749 §4.1.2.1)."""

    code: ClassVar[str] = "authorize.invalid"


class LoginFormForged(InputError):
    """The login form's CSRF token does not belong to this browser and authorization request."""

    code: ClassVar[str] = "authorize.csrf"


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    realm: str
    client_id: str
    redirect_uri: str
    response_type: str
    scope: str
    state: str | None
    nonce: str | None
    code_challenge: str
    code_challenge_method: str

    def hidden_fields(self) -> dict[str, str]:
        """The request's parameters, carried through the login form."""
        return {k: v for k, v in asdict(self).items() if k != "realm" and v is not None}

    def redirect(self, issuer: str, **params: str) -> str:
        """The client's redirect URI with ``params``, ``state`` and ``iss`` (RFC 9207) in the query."""
        values = dict(params)
        if self.state is not None:
            values["state"] = self.state
        values["iss"] = issuer
        separator = "&" if urlsplit(self.redirect_uri).query else "?"
        return f"{self.redirect_uri}{separator}{urlencode(values)}"

    @property
    def scopes(self) -> tuple[str, ...]:
        return tuple(self.scope.split())


class RedirectableError(Exception):
    """An error to send back to the (verified) redirect URI, RFC 6749 §4.1.2.1."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error, self.description = error, description


def _optional(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if len(value) > MAX_STATE or not value.isprintable():
        raise RedirectableError("invalid_request", f"{name} is longer than {MAX_STATE} characters or not printable")
    return value


def parse(
    realm: str, params: Mapping[str, str], clients: Mapping[tuple[str, str], RegisteredClient]
) -> AuthorizationRequest:
    """Validate ``params``. Raises ``AuthorizationRequestInvalid`` (page) or ``RedirectableError``."""
    client_id, redirect_uri = params.get("client_id", ""), params.get("redirect_uri", "")
    client = clients.get((realm, client_id))
    if client is None:
        raise AuthorizationRequestInvalid(f"realm {realm}: client_id {client_id[:64]!r} is not registered")
    # Why: the redirect URI must be given and match a registered one exactly; a prefix or
    # pattern match lets an attacker steer the code to a URL they control.
    if not client.allows(redirect_uri):
        raise AuthorizationRequestInvalid(f"realm {realm}: redirect_uri is not registered for client {client_id}")
    empty = AuthorizationRequest(realm, client_id, redirect_uri, "", "", None, None, "", "")
    try:
        state = _optional(params, "state")
    except RedirectableError as error:
        raise RedirectError(empty, error) from None
    base = AuthorizationRequest(realm, client_id, redirect_uri, "", "", state, None, "", "")
    try:
        return _parse_rest(base, params)
    except RedirectableError as error:
        raise RedirectError(base, error) from None


class RedirectError(Exception):
    """A ``RedirectableError`` with the request whose redirect URI and state it goes back to."""

    def __init__(self, request: AuthorizationRequest, error: RedirectableError) -> None:
        super().__init__(error.description)
        self.request, self.error = request, error


def _parse_rest(base: AuthorizationRequest, params: Mapping[str, str]) -> AuthorizationRequest:
    if params.get("response_type") != "code":
        raise RedirectableError("unsupported_response_type", "response_type must be code")
    method = params.get("code_challenge_method", "")
    challenge = params.get("code_challenge", "")
    # Why: PKCE is required of every client, and only S256: "plain" sends the verifier itself.
    if method != "S256":
        raise RedirectableError("invalid_request", "code_challenge_method must be S256 (PKCE is required)")
    if len(challenge) != CHALLENGE_LENGTH or not all(c.isalnum() or c in "-_" for c in challenge):
        raise RedirectableError("invalid_request", "code_challenge must be a base64url SHA-256 (43 characters)")
    scopes = (params.get("scope") or "").split()
    unknown = [s for s in scopes if s not in SUPPORTED_SCOPES]
    if unknown:
        raise RedirectableError("invalid_scope", f"scope {unknown[0][:40]!r} is not supported")
    return AuthorizationRequest(
        realm=base.realm,
        client_id=base.client_id,
        redirect_uri=base.redirect_uri,
        response_type="code",
        scope=" ".join(dict.fromkeys(scopes)),
        state=base.state,
        nonce=_optional(params, "nonce"),
        code_challenge=challenge,
        code_challenge_method=method,
    )


def csrf_token(master_key: MasterKey, browser_secret: str, request: AuthorizationRequest) -> str:
    """The form's CSRF token: a MAC over this browser's cookie secret and the whole request.

    Why: a token bound to both means a form posted from another site (which cannot read the
    cookie) fails, and so does a valid token replayed with a changed request (another
    redirect URI, challenge or client)."""
    message = json.dumps([browser_secret, asdict(request)], sort_keys=True).encode()
    return base64.urlsafe_b64encode(master_key.mac(CSRF_LABEL, message)).rstrip(b"=").decode()


def check_csrf(master_key: MasterKey, browser_secret: str | None, token: str, request: AuthorizationRequest) -> None:
    if (
        not browser_secret
        or not token
        or not hmac.compare_digest(csrf_token(master_key, browser_secret, request), token)
    ):
        raise LoginFormForged(f"realm {request.realm}: the login form is not from this browser's authorization request")
