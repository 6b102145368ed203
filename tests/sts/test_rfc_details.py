"""RFC details of the OAuth endpoints: RFC 7009 §2.1/§2.2 revocation, RFC 6750 §3.1
insufficient_scope, RFC 6749 §5.2 invalid_client challenges, and client assertions as
off-the-shelf libraries sign them by default (Authlib: 3600 s)."""

from __future__ import annotations

import time
import uuid
import warnings
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from flask import Flask
from flask.testing import FlaskClient
from joserfc import jwt as jose_jwt
from joserfc.jwk import ECKey
from sqlalchemy import select

from sts.oauth.models import SeenAssertion
from sts.services import Services
from tests.sts.conftest import BASE_URL, agent_token_request, assertion, bearer, login

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from authlib.integrations.httpx_client import OAuth2Client
    from authlib.oauth2.rfc7523 import PrivateKeyJWT

pytestmark = pytest.mark.db
TOKEN_URL = f"{BASE_URL}/realms/jobmgr/token"


def test_revocation_without_token_is_invalid_request(client: FlaskClient) -> None:
    response = client.post("/realms/jobmgr/revoke", data={"token_type_hint": "access_token"})
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_request"


def test_revocation_success_is_an_empty_200_without_html(client: FlaskClient) -> None:
    token = login(client, "john")["access_token"]
    for presented in (token, "not-a-token-we-know"):
        response = client.post("/realms/jobmgr/revoke", data={"token": presented})
        assert response.status_code == 200 and response.data == b""
        assert "html" not in (response.headers.get("Content-Type") or "")


def test_forbidden_with_a_valid_token_says_insufficient_scope(client: FlaskClient) -> None:
    token = login(client, "john")["access_token"]
    response = client.post("/api/v1/nodes", headers=bearer(token), json={"id": "n9", "realm": "jobmgr"})
    assert response.status_code == 403
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ") and 'error="insufficient_scope"' in challenge


def test_invalid_client_names_the_scheme_the_client_used(client: FlaskClient) -> None:
    form = {"grant_type": "client_credentials", "client_id": "n1", "client_secret": "s"}
    basic = client.post(
        "/realms/jobmgr/token", data={"grant_type": "client_credentials"}, headers={"Authorization": "Basic bjE6cw=="}
    )
    assert basic.status_code == 401 and basic.get_json()["error"] == "invalid_client"
    assert basic.headers["WWW-Authenticate"].startswith("Basic ")
    in_body = client.post("/realms/jobmgr/token", data=form)
    assert in_body.status_code == 401 and in_body.get_json()["error"] == "invalid_client"
    # Authenticated in the body: no HTTP scheme was used, so no Bearer challenge is claimed.
    assert not in_body.headers.get("WWW-Authenticate", "").startswith("Bearer")


def test_authlib_default_private_key_jwt_is_accepted(app: Flask, registered_node: tuple[str, Any]) -> None:
    node_id, private = registered_node
    auth = PrivateKeyJWT(TOKEN_URL, alg="ES256")
    pem = private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    with OAuth2Client(
        client_id=node_id,
        client_secret=ECKey.import_key(pem),
        token_endpoint_auth_method=auth,
        transport=httpx.WSGITransport(app=app),
    ) as oauth:
        token = oauth.fetch_token(TOKEN_URL, grant_type="client_credentials")
    assert token["token_type"] == "Bearer" and token["access_token"].count(".") == 2


def test_joserfc_signed_assertion_is_accepted(client: FlaskClient, registered_node: tuple[str, Any]) -> None:
    node_id, private = registered_node
    now = int(time.time())
    key = ECKey.import_key(private)
    signed = jose_jwt.encode(
        {"alg": "ES256"},
        {"iss": node_id, "sub": node_id, "aud": TOKEN_URL, "iat": now, "exp": now + 3600, "jti": str(uuid.uuid4())},
        key,
    )
    assert agent_token_request(client, node_id, signed).status_code == 200


def test_assertion_lifetime_cap_and_replay_cache_covering_it(
    client: FlaskClient, services: Services, registered_node: tuple[str, Any]
) -> None:
    node_id, private = registered_node
    now = int(time.time())
    too_long = assertion(private, node_id, TOKEN_URL, exp=now + 3600 + 600)
    refused = agent_token_request(client, node_id, too_long)
    assert refused.status_code == 401 and refused.get_json()["code"] == "client.assertion"
    long_lived = assertion(private, node_id, TOKEN_URL, exp=now + 3000)
    assert agent_token_request(client, node_id, long_lived).status_code == 200
    with services.db.session() as session:
        remembered = max(session.scalars(select(SeenAssertion.exp)))
    assert remembered >= now + 3000  # the jti is kept for the assertion's whole life
    replay = agent_token_request(client, node_id, long_lived)
    assert replay.status_code == 401 and replay.get_json()["code"] == "token.replayed"
