"""Issue 4, "Verification rules and bad input": every bad bearer token on /api/v1 gets its own
code, a 401 with WWW-Authenticate (RFC 6750 §3), and never a 500."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from flask.testing import FlaskClient

from sts.services import Services
from tests.sts.conftest import bearer, node_keypair
from tests.sts.fakes import user_id

pytestmark = pytest.mark.db
API = "/api/v1/nodes"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def compact(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"sig") -> str:
    return ".".join([b64(json.dumps(header).encode()), b64(json.dumps(claims).encode()), b64(signature)])


def claims_for(services: Services, issuing: str = "jobmgr", **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    user = user_id(issuing, "admin" if issuing == "jobmgr" else "bob")
    claims = {
        "iss": services.config.issuer(issuing),
        "sub": str(user),
        "aud": services.config.audience,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": str(uuid.uuid4()),
        "realm": issuing,
        "groups": [],
    }
    claims.update(extra)
    return claims


def refused(client: FlaskClient, token: str, code: str) -> None:
    response = client.get(API, headers=bearer(token))
    assert response.status_code == 401, response.get_json()
    assert response.get_json()["code"] == code
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="jobsts", error="invalid_token"')


def _private(services: Services, realm: str) -> Any:
    private = services.keys.realm_keys(realm).private
    assert private is not None
    return private


def active_kid(services: Services, realm: str = "jobmgr") -> str:
    active = services.keys.realm_keys(realm).active
    assert active is not None
    return active.kid


def test_a_good_admin_token_passes(client: FlaskClient, mint: Callable[..., str]) -> None:
    token = mint(sub=str(user_id("jobmgr", "admin")))
    assert client.get(API, headers=bearer(token)).status_code == 200


def test_missing_or_non_bearer_credentials(client: FlaskClient) -> None:
    for headers in ({}, {"Authorization": "Basic YWRtaW46eA=="}, {"Authorization": "Bearer "}):
        response = client.get(API, headers=headers)
        assert response.status_code == 401 and response.get_json()["code"] == "auth.required"
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="jobsts"'
    query = client.get(f"{API}?access_token=x")
    assert query.status_code == 401


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_in_any_case(client: FlaskClient, services: Services, alg: str) -> None:
    token = compact({"alg": alg, "typ": "at+jwt", "kid": active_kid(services)}, claims_for(services))
    refused(client, token, "token.algorithm")


def test_alg_none_with_empty_signature(client: FlaskClient, services: Services) -> None:
    token = compact({"alg": "none", "typ": "at+jwt"}, claims_for(services), b"")
    refused(client, token, "token.malformed")


@pytest.mark.parametrize("alg,digest", [("HS256", hashlib.sha256), ("HS512", hashlib.sha512)])
def test_hmac_signed_with_the_public_key(client: FlaskClient, services: Services, alg: str, digest: Any) -> None:
    active = services.keys.realm_keys("jobmgr").active
    assert active is not None
    pem = active.verification.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    head = b64(json.dumps({"alg": alg, "typ": "at+jwt", "kid": active.kid}).encode())
    body = b64(json.dumps(claims_for(services)).encode())
    for secret in (pem, json.dumps(active.jwk).encode()):
        mac = hmac.new(secret, f"{head}.{body}".encode(), digest).digest()
        refused(client, f"{head}.{body}.{b64(mac)}", "token.algorithm")


@pytest.mark.parametrize("member", ["jwk", "jku", "x5u", "x5c"])
def test_embedded_keys_and_key_urls(client: FlaskClient, services: Services, member: str) -> None:
    attacker, attacker_jwk = node_keypair()
    value: Any = {
        "jwk": attacker_jwk,
        "jku": "https://evil.test/jwks",
        "x5u": "https://evil.test/cert",
        "x5c": ["MIIB"],
    }[member]
    token = jwt.encode(
        claims_for(services),
        attacker,
        algorithm="ES256",
        headers={"typ": "at+jwt", "kid": attacker_jwk["kid"], member: value},
    )
    refused(client, token, "token.header")


@pytest.mark.parametrize("kid", ["../../../../etc/passwd", "' OR '1'='1' --", "/dev/null", "x" * 129, ""])
def test_kid_that_looks_like_a_path_or_sql(client: FlaskClient, services: Services, kid: str) -> None:
    private = _private(services, "jobmgr")
    token = jwt.encode(claims_for(services), private, algorithm="ES256", headers={"typ": "at+jwt", "kid": kid})
    refused(client, token, "token.unknown_key")


def test_token_of_realm_a_signed_with_realm_b_key(client: FlaskClient, services: Services) -> None:
    b_private = _private(services, "cellB")
    token = jwt.encode(
        claims_for(services, "jobmgr"),
        b_private,
        algorithm="ES256",
        headers={"typ": "at+jwt", "kid": active_kid(services, "cellB")},
    )
    refused(client, token, "token.unknown_key")


def test_realm_b_cannot_vouch_for_a_user_of_realm_a(client: FlaskClient, services: Services) -> None:
    token = services.keys.sign("cellB", claims_for(services, "cellB", sub=str(user_id("jobmgr", "admin"))), "at+jwt")
    refused(client, token, "token.claims")


@pytest.mark.parametrize("typ", ["job+jwt", "agent+jwt", "JWT"])
def test_profile_confusion(client: FlaskClient, services: Services, typ: str) -> None:
    token = services.keys.sign("jobmgr", claims_for(services, job_id="j", job_digest="d"), typ)
    refused(client, token, "token.type")


@pytest.mark.parametrize(
    "change,code",
    [
        ({"exp": -3600}, "token.expired"),  # dates: offsets from the test's own now
        ({"nbf": 3600}, "token.not_yet_valid"),
        ({"aud": "https://other.test/api"}, "token.audience"),
        ({"aud": ["https://sts.test/api", "x"]}, "token.audience"),
        ({"iss": "https://evil.test/realms/jobmgr"}, "realm.untrusted"),
        ({"realm": "cellB"}, "token.claims"),
        ({"exp": "tomorrow"}, "token.claims"),
    ],
)
def test_claim_failures(client: FlaskClient, services: Services, change: dict[str, Any], code: str) -> None:
    now = int(time.time())
    dated: dict[str, Any] = {
        name: now + value if name in ("exp", "nbf") and isinstance(value, int) else value
        for name, value in change.items()
    }
    refused(client, _sign_raw(services, claims_for(services, **dated)), code)


def _sign_raw(services: Services, claims: dict[str, Any]) -> str:
    return jwt.encode(
        claims, _private(services, "jobmgr"), algorithm="ES256", headers={"typ": "at+jwt", "kid": active_kid(services)}
    )


def test_tampered_token(client: FlaskClient, mint: Callable[..., str]) -> None:
    token = mint(sub=str(user_id("jobmgr", "john")))
    head, body, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=="))
    claims["sub"] = str(user_id("jobmgr", "admin"))
    refused(client, f"{head}.{b64(json.dumps(claims).encode())}.{sig}", "token.signature")


def test_oversized_token(client: FlaskClient, services: Services) -> None:
    # Signed around the STS's signer, which refuses such a token itself (token.too_large).
    token = _sign_raw(services, {**claims_for(services), "groups": ["group:jobmgr/cn=g" + str(i) for i in range(1200)]})
    refused(client, token, "token.malformed")


def test_deeply_nested_json(client: FlaskClient, services: Services) -> None:
    nested: Any = "x"
    for _ in range(50):
        nested = {"a": nested}
    token = _sign_raw(services, claims_for(services, extra=nested))
    refused(client, token, "token.malformed")
    deep = "[" * 5000 + "]" * 5000
    head = b64(json.dumps({"alg": "ES256", "typ": "at+jwt", "kid": "k"}).encode())
    refused(client, f"{head}.{b64(deep.encode())}.{b64(b'sig')}", "token.malformed")


def test_revoked_token(client: FlaskClient, mint: Callable[..., str]) -> None:
    token = mint(sub=str(user_id("jobmgr", "admin")))
    assert client.post("/realms/jobmgr/revoke", data={"token": token}).status_code == 200
    refused(client, token, "token.revoked")
