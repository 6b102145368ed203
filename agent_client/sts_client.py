"""The agent's HTTP client for the STS<->agent contract (docs: brief, "The STS <-> agent HTTP contract").

* Agent token: client credentials with a ``private_key_jwt`` assertion signed by the node
  key (RFC 7523 §2.2, RFC 7521 §4.2); response as RFC 6749 §5.1.
* ``/api/v1/agent/lease``, ``/jobs/<id>/start``, ``/heartbeat``, ``/result``, ``/revocations``.
* ``/realms/<realm>/jwks`` (RFC 7517) for the trust store, with its Cache-Control max-age.

Errors: transport failures and 5xx are ``agent.sts_unavailable``; other refusals are
``agent.sts_refused`` carrying the problem's ``code``; a lost lease is ``agent.lease_lost``.
"""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from agent_client.errors import AgentConfigInvalid, LeaseLost, StsRefused, StsUnavailable
from realms.tokens.keys import jwk_thumbprint

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = 120
TOKEN_RENEW_MARGIN = 30
PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
_KEY_ALGORITHMS: dict[type, tuple[str, ...]] = {
    ec.EllipticCurvePrivateKey: ("ES256",),
    ed25519.Ed25519PrivateKey: ("EdDSA",),
    rsa.RSAPrivateKey: ("RS256", "PS256"),
}


def load_node_key(path: Path, algorithm: str) -> PrivateKey:
    """Read the node's PEM private key and check it can sign with ``algorithm``."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise AgentConfigInvalid(f"node key {path}: cannot read: {exc.strerror}", field="agent.key_file") from None
    except (ValueError, TypeError) as exc:
        message = f"node key {path}: not an unencrypted PEM private key ({exc})"
        raise AgentConfigInvalid(message, field="agent.key_file") from None
    for kind, algorithms in _KEY_ALGORITHMS.items():
        if isinstance(key, kind):
            if algorithm not in algorithms:
                raise AgentConfigInvalid(
                    f"node key {path} cannot sign {algorithm}; use one of {', '.join(algorithms)}",
                    field="agent.key_algorithm",
                )
            if isinstance(key, ec.EllipticCurvePrivateKey) and not isinstance(key.curve, ec.SECP256R1):
                raise AgentConfigInvalid(f"node key {path} is not a P-256 key", field="agent.key_file")
            return key  # type: ignore[return-value]
    raise AgentConfigInvalid(f"node key {path} is of an unsupported type", field="agent.key_file")


def _max_age(header: str | None) -> int | None:
    if not header:
        return None
    match = re.search(r"(?:^|,)\s*max-age\s*=\s*(\d{1,9})\s*(?:,|$)", header, re.I)
    return int(match.group(1)) if match else None


class StsClient:
    """One agent's session with the STS: caches its agent token and renews it before expiry."""

    def __init__(
        self,
        base_url: str,
        node_id: str,
        realm: str,
        key: PrivateKey,
        algorithm: str,
        *,
        verify: bool | str = True,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.node_id, self.realm, self.key, self.algorithm = node_id, realm, key, algorithm
        self._kid = jwk_thumbprint(key.public_key())
        self._http = httpx.Client(verify=verify, timeout=timeout, transport=transport, follow_redirects=False)
        self._token: str | None = None
        self._token_expires = 0.0

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> StsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/realms/{self.realm}/token"

    def client_assertion(self, now: float | None = None) -> str:
        """RFC 7523 §3: iss = sub = node id, aud = the token endpoint, unique jti, short exp."""
        issued = int(time.time() if now is None else now)
        claims = {
            "iss": self.node_id,
            "sub": self.node_id,
            "aud": self.token_url,
            "jti": uuid.uuid4().hex,
            "iat": issued,
            "exp": issued + ASSERTION_LIFETIME,
        }
        return jwt.encode(claims, self.key, algorithm=self.algorithm, headers={"kid": self._kid})

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            message = f"STS {self.base_url} did not answer: {type(exc).__name__}"
            raise StsUnavailable(message, node=self.node_id) from None
        if response.status_code >= 500:
            raise StsUnavailable(f"STS {self.base_url} answered {response.status_code}", node=self.node_id)
        return response

    @staticmethod
    def _problem(response: httpx.Response) -> tuple[str, str]:
        try:
            body = response.json()
        except ValueError:
            return "", response.text[:200]
        if not isinstance(body, dict):
            return "", ""
        code = body.get("code") or body.get("error") or ""
        detail = body.get("detail") or body.get("error_description") or body.get("title") or ""
        return str(code)[:80], str(detail)[:300]

    def _refused(self, response: httpx.Response, what: str) -> StsRefused:
        code, detail = self._problem(response)
        return StsRefused(
            f"STS refused {what} for node {self.node_id}: {response.status_code} {code} {detail}".rstrip(),
            status=response.status_code,
            problem_code=code,
        )

    def agent_token(self, *, force: bool = False) -> str:
        """A valid agent+jwt, from cache or a fresh client-credentials grant."""
        if not force and self._token is not None and time.time() < self._token_expires - TOKEN_RENEW_MARGIN:
            return self._token
        response = self._send(
            "POST",
            self.token_url,
            data={
                "grant_type": "client_credentials",
                "client_id": self.node_id,
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": self.client_assertion(),
            },
        )
        if response.status_code != 200:
            raise self._refused(response, "the agent token")
        body = response.json()
        token, expires_in = body.get("access_token"), body.get("expires_in", 60)
        if not isinstance(token, str) or str(body.get("token_type", "")).lower() != "bearer":
            raise StsRefused(f"STS sent no bearer token to node {self.node_id}", status=200, problem_code="")
        self._token, self._token_expires = token, time.time() + float(expires_in)
        return token

    def _api(self, method: str, path: str, what: str, **kwargs: Any) -> httpx.Response:
        """An agent API call with the bearer token; one retry with a fresh token after a 401."""
        url = f"{self.base_url}/api/v1/agent/{path}"
        for attempt in (0, 1):
            headers = {"Authorization": f"Bearer {self.agent_token(force=attempt == 1)}"}
            response = self._send(method, url, headers=headers, **kwargs)
            if response.status_code != 401:
                break
        if response.status_code == 409:
            code, detail = self._problem(response)
            if code == "job.lease_lost":
                raise LeaseLost(f"node {self.node_id} lost the lease of {what}: {detail}", node=self.node_id)
        if response.status_code >= 300:
            raise self._refused(response, what)
        return response

    def lease(self, wait: int = 0) -> dict[str, Any] | None:
        """``POST /api/v1/agent/lease``: the lease (job, job_token, lease_expires_at) or ``None``."""
        kwargs: dict[str, Any] = {"json": {"wait": wait}, "timeout": wait + 15.0}
        response = self._api("POST", "lease", "a lease", **kwargs)
        if response.status_code == 204:
            return None
        body = response.json()
        if not isinstance(body, dict) or not isinstance(body.get("job"), dict) or "job_token" not in body:
            raise StsRefused(f"STS sent a malformed lease to node {self.node_id}", status=200, problem_code="")
        return body

    def start(self, job_id: str) -> None:
        self._api("POST", f"jobs/{job_id}/start", f"job {job_id}", json={})

    def heartbeat(self, job_id: str) -> int:
        body = self._api("POST", f"jobs/{job_id}/heartbeat", f"job {job_id}", json={}).json()
        return int(body.get("lease_expires_at", 0))

    def result(self, job_id: str, payload: dict[str, Any]) -> None:
        self._api("POST", f"jobs/{job_id}/result", f"job {job_id}", json=payload)

    def revocations(self) -> dict[str, int]:
        """``GET /api/v1/agent/revocations``: jti → exp."""
        body = self._api("GET", "revocations", "the revocation list").json()
        revoked: dict[str, int] = {}
        for item in body.get("revoked", []) if isinstance(body, dict) else []:
            if isinstance(item, dict) and isinstance(item.get("jti"), str):
                revoked[item["jti"]] = int(item.get("exp") or 0)
        return revoked

    def jwks(self, realm: str) -> tuple[dict[str, Any], int | None]:
        """``GET /realms/<realm>/jwks`` and its Cache-Control max-age (a ``trust_store.JwksFetcher``)."""
        response = self._send("GET", f"{self.base_url}/realms/{realm}/jwks")
        if response.status_code != 200:
            raise self._refused(response, f"the JWKS of realm {realm}")
        body = response.json()
        if not isinstance(body, dict):
            raise StsRefused(f"JWKS of realm {realm} is not a JSON object", status=200, problem_code="")
        return body, _max_age(response.headers.get("cache-control"))
