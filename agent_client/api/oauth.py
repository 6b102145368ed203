"""The realm endpoints of the STS: token (RFC 6749), revocation (RFC 7009) and JWKS (RFC 7517)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from agent_client.api.client import StsApi
from agent_client.api.problems import malformed

CLI_CLIENT_ID = "jobsts-cli"


@dataclass(frozen=True, slots=True)
class TokenResponse:
    """A successful token response (RFC 6749 §5.1), bearer tokens only (RFC 6750)."""

    access_token: str
    expires_in: int
    refresh_token: str | None


def token_path(realm: str) -> str:
    return f"/realms/{quote(realm, safe='')}/token"


def parse_token_response(body: Any, caller: str = "") -> TokenResponse:
    """RFC 6749 §5.1: ``access_token`` and ``token_type`` Bearer are required; ``expires_in`` defaults to 60."""
    if not isinstance(body, dict):
        raise malformed("token response", caller, "not a JSON object")
    token, expires_in, refresh = body.get("access_token"), body.get("expires_in", 60), body.get("refresh_token")
    if not isinstance(token, str) or not token or str(body.get("token_type", "")).lower() != "bearer":
        raise malformed("token response", caller, "no bearer access_token")
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float) or expires_in < 0:
        raise malformed("token response", caller, "expires_in is not a number of seconds")
    if refresh is not None and not isinstance(refresh, str):
        raise malformed("token response", caller, "refresh_token is not a string")
    return TokenResponse(token, int(expires_in), refresh)


def password_grant(api: StsApi, realm: str, username: str, password: str) -> TokenResponse:
    """RFC 6749 §4.3: the resource owner password credentials grant, for the public CLI client."""
    form = {"grant_type": "password", "username": username, "password": password, "client_id": CLI_CLIENT_ID}
    body = api.call_json("POST", token_path(realm), f"the login of {username}", anonymous=True, data=form)
    return parse_token_response(body)


def revoke(api: StsApi, realm: str, token: str) -> None:
    """RFC 7009 §2.1; the answer is not checked (the STS answers 200 even for an unknown token)."""
    api.call(
        "POST",
        f"/realms/{quote(realm, safe='')}/revoke",
        "a revocation",
        anonymous=True,
        check=False,
        data={"token": token},
    )


def _max_age(header: str | None) -> int | None:
    if not header:
        return None
    match = re.search(r"(?:^|,)\s*max-age\s*=\s*(\d{1,9})\s*(?:,|$)", header, re.I)
    return int(match.group(1)) if match else None


def jwks(api: StsApi, realm: str) -> tuple[dict[str, Any], int | None]:
    """``GET /realms/<realm>/jwks`` (RFC 7517 §5) and its Cache-Control max-age (RFC 9111 §5.2.2.1)."""
    response = api.call("GET", f"/realms/{quote(realm, safe='')}/jwks", f"the JWKS of realm {realm}", anonymous=True)
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise malformed(f"JWKS of realm {realm}", api.caller, "not a JSON object")
    return body, _max_age(response.headers.get("cache-control"))
