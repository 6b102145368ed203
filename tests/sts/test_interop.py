"""Interoperability: a standard OAuth2 client (Authlib on httpx) fetches tokens, and a second
JOSE implementation (joserfc) verifies them through discovery and the JWKS."""

from __future__ import annotations

import time
import warnings
from typing import Any

import httpx
import pytest
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from cryptography.hazmat.primitives import serialization
from flask import Flask
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet
from joserfc.jwt import JWTClaimsRegistry

from tests.sts.conftest import BASE_URL

with warnings.catch_warnings():
    # Authlib announces a future "httpx2" module; the httpx client is what exists today.
    warnings.simplefilter("ignore")
    from authlib.integrations.httpx_client import OAuth2Client

pytestmark = pytest.mark.db


def _verify_with_joserfc(http: httpx.Client, realm: str, token: str, audience: str) -> dict[str, Any]:
    discovery = http.get(f"{BASE_URL}/realms/{realm}/.well-known/openid-configuration").json()
    keys = KeySet.import_key_set(http.get(discovery["jwks_uri"]).json())
    decoded = jwt.decode(token, keys, algorithms=["ES256"])
    JWTClaimsRegistry(
        iss={"essential": True, "value": discovery["issuer"]}, aud={"essential": True, "value": audience}
    ).validate(decoded.claims)
    assert decoded.header["kid"] in {k["kid"] for k in keys.as_dict()["keys"]}
    return dict(decoded.claims)


def test_password_grant_with_authlib_verified_by_joserfc(app: Flask) -> None:
    transport = httpx.WSGITransport(app=app)
    audience = app.extensions["jobsts"].config.audience
    with OAuth2Client(client_id="jobsts-cli", token_endpoint_auth_method="none", transport=transport) as client:
        token = client.fetch_token(
            f"{BASE_URL}/realms/jobmgr/token", grant_type="password", username="john", password="john-password"
        )
        assert token["token_type"] == "Bearer" and token["refresh_token"]
        refreshed = client.refresh_token(f"{BASE_URL}/realms/jobmgr/token", refresh_token=token["refresh_token"])
        assert refreshed["access_token"] != token["access_token"]
    with httpx.Client(transport=transport) as http:
        claims = _verify_with_joserfc(http, "jobmgr", refreshed["access_token"], audience)
        assert claims["sub"] == "user:jobmgr/uid=john,ou=people,dc=jobmgr,dc=example"
        assert claims["exp"] > time.time()
        other = _verify_with_joserfc(http, "cellB", _password(http, "cellB", "bob"), audience)
        assert other["iss"].endswith("/realms/cellB")
        with pytest.raises(Exception, match=r"(?i)signature|key"):
            _verify_with_joserfc(http, "cellB", refreshed["access_token"], audience)


def _password(http: httpx.Client, realm: str, user: str) -> str:
    response = http.post(
        f"{BASE_URL}/realms/{realm}/token",
        data={"grant_type": "password", "username": user, "password": f"{user}-password"},
    )
    return str(response.json()["access_token"])


def test_client_credentials_with_authlib_private_key_jwt(app: Flask, registered_node: tuple[str, Any]) -> None:
    node_id, private = registered_node
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    endpoint = f"{BASE_URL}/realms/jobmgr/token"
    transport = httpx.WSGITransport(app=app)
    auth = PrivateKeyJWT(endpoint, claims={"exp": int(time.time()) + 120}, alg="ES256")
    with OAuth2Client(
        client_id=node_id, client_secret=ECKey.import_key(pem), token_endpoint_auth_method=auth, transport=transport
    ) as client:
        token = client.fetch_token(endpoint, grant_type="client_credentials")
    with httpx.Client(transport=transport) as http:
        claims = _verify_with_joserfc(http, "jobmgr", token["access_token"], app.extensions["jobsts"].config.audience)
    assert claims["sub"] == f"node:{node_id}"
