"""Where the bearer token comes from (RFC 6750 §2.1), as ``httpx.Auth`` flows.

* ``UserAuth``: the stored login of ``jobsts login``. An access token about to expire, or one the
  STS answers 401 to, is refreshed through the refresh_token grant (RFC 6749 §6); the rotated
  tokens are written back to the tokens file (0600). A long ``submit --wait`` outlives its
  access token this way.
* ``AgentAuth``: the client_credentials grant (RFC 6749 §4.4) with a ``private_key_jwt``
  assertion signed by the node key (RFC 7523 §2.2, RFC 7521 §4.2); the agent token is cached,
  renewed before it expires and after a 401.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Generator
from pathlib import Path

import httpx
import jwt
from cryptography.hazmat.primitives import serialization

from agent_client.api.login_store import StoredLogin, current_login, forget_session, store_session
from agent_client.api.oauth import TokenResponse, parse_token_response, token_path
from agent_client.api.problems import malformed, refusal
from agent_client.errors import AgentConfigInvalid, NodeKeyMissing, SessionMissing
from realms.tokens.algorithms import PrivateKey, algorithms_for
from realms.tokens.keys import jwk_thumbprint

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = 120
TOKEN_RENEW_MARGIN = 30
REFRESH_MARGIN_SECONDS = 30
Flow = Generator[httpx.Request, httpx.Response, None]


def load_node_key(path: Path, algorithm: str) -> PrivateKey:
    """Read the node's PEM private key and check it can sign with ``algorithm``."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise NodeKeyMissing(f"node key {path} does not exist: run jobsts agent init", field="agent.key_file") from None
    except OSError as exc:
        raise AgentConfigInvalid(f"node key {path}: cannot read: {exc.strerror}", field="agent.key_file") from None
    except (ValueError, TypeError) as exc:
        message = f"node key {path}: not an unencrypted PEM private key ({exc})"
        raise AgentConfigInvalid(message, field="agent.key_file") from None
    usable = algorithms_for(key)
    if not usable:
        raise AgentConfigInvalid(f"node key {path} is of an unsupported type or size", field="agent.key_file")
    if algorithm not in usable:
        raise AgentConfigInvalid(
            f"node key {path} cannot sign {algorithm}; use one of {', '.join(usable)}", field="agent.key_algorithm"
        )
    return key  # type: ignore[return-value]


def _token_response(response: httpx.Response, caller: str) -> TokenResponse:
    try:
        body = response.json()
    except ValueError:
        raise malformed("token response", caller, "not JSON") from None
    return parse_token_response(body, caller)


class AgentAuth(httpx.Auth):
    """One node's agent token: fetched with a fresh client assertion, cached until shortly before expiry."""

    requires_response_body = True

    def __init__(
        self,
        base_url: str,
        node_id: str,
        realm: str,
        key: PrivateKey,
        algorithm: str,
        *,
        clock: Callable[[], float] = time.time,
        audience: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.node_id, self.realm, self.key, self.algorithm = node_id, realm, key, algorithm
        self.token_url = f"{self.base_url}/realms/{realm}/token"
        # The token endpoint as the STS names it (its issuer + /token): behind a proxy it is not
        # the URL the agent posts to.
        self.audience = audience or self.token_url
        self._kid = jwk_thumbprint(key.public_key())
        self._clock = clock
        self._token: str | None = None
        self._expires = 0.0

    def client_assertion(self, now: float | None = None) -> str:
        """RFC 7523 §3: iss = sub = node id, aud = the token endpoint, unique jti, short exp."""
        issued = int(self._clock() if now is None else now)
        claims = {
            "iss": self.node_id,
            "sub": self.node_id,
            "aud": self.audience,
            "jti": uuid.uuid4().hex,
            "iat": issued,
            "exp": issued + ASSERTION_LIFETIME,
        }
        return jwt.encode(claims, self.key, algorithm=self.algorithm, headers={"kid": self._kid})

    def _renew(self) -> Flow:
        form = {
            "grant_type": "client_credentials",
            "client_id": self.node_id,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": self.client_assertion(),
        }
        response = yield httpx.Request("POST", self.token_url, data=form)
        caller = f"node {self.node_id}"
        if not response.is_success:
            raise refusal(response, self.base_url, "the agent token", caller)
        tokens = _token_response(response, caller)
        self._token, self._expires = tokens.access_token, self._clock() + tokens.expires_in

    def auth_flow(self, request: httpx.Request) -> Flow:
        if self._token is None or self._clock() >= self._expires - TOKEN_RENEW_MARGIN:
            yield from self._renew()
        request.headers["Authorization"] = f"Bearer {self._token}"
        response = yield request
        if response.status_code == 401:
            # Why: the STS may have dropped the token early (key rotation, node re-registered).
            yield from self._renew()
            request.headers["Authorization"] = f"Bearer {self._token}"
            yield request


class UserAuth(httpx.Auth):
    """The stored login for ``url``, refreshed when it is about to expire or is refused with 401."""

    requires_response_body = True

    def __init__(self, url: str, *, clock: Callable[[], float] = time.time) -> None:
        self.url = url.rstrip("/")
        self._clock = clock

    def _refresh(self, login: StoredLogin) -> Generator[httpx.Request, httpx.Response, StoredLogin]:
        if not login.refresh_token:
            raise SessionMissing(f"the login for {self.url} expired; run jobsts login again")
        form = {"grant_type": "refresh_token", "refresh_token": login.refresh_token}
        response = yield httpx.Request("POST", f"{self.url}{token_path(login.realm)}", data=form)
        if response.status_code == 400:
            # Why: a refused refresh token (expired, revoked, reused) never works again; drop it.
            forget_session(self.url)
            raise SessionMissing(f"the login for {self.url} can no longer be refreshed; run jobsts login again")
        if not response.is_success:
            raise refusal(response, self.url, "the refresh of the login", "")
        # Why: the refresh token rotates; the new pair must be stored before it is used.
        store_session(self.url, login.realm, login.username, _token_response(response, ""))
        return current_login(self.url)

    def auth_flow(self, request: httpx.Request) -> Flow:
        login = current_login(self.url)
        refreshed = login.expires_at - login.refresh_margin(REFRESH_MARGIN_SECONDS) <= self._clock()
        if refreshed:
            login = yield from self._refresh(login)
        request.headers["Authorization"] = f"Bearer {login.access_token}"
        response = yield request
        if response.status_code == 401 and not refreshed and login.refresh_token:
            login = yield from self._refresh(login)
            request.headers["Authorization"] = f"Bearer {login.access_token}"
            yield request
