"""Nodes: registration (administrator only), private_key_jwt client credentials, agent tokens."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Blueprint, Flask
from flask.testing import FlaskClient

from sts.http.auth import require_agent
from sts.http.context import request_context
from sts.services import Services
from tests.sts.conftest import agent_token_request, assertion, bearer, decode_unverified, login, node_keypair

pytestmark = pytest.mark.db
ENDPOINT = "https://sts.test/realms/jobmgr/token"


def test_register_show_update_list_unregister(client: FlaskClient, admin_token: str) -> None:
    _, jwk = node_keypair("EdDSA")
    created = client.post(
        "/api/v1/nodes", headers=bearer(admin_token), json={"id": "n2", "realm": "cellB", "public_jwk": jwk}
    )
    assert created.status_code == 201
    assert created.get_json()["public_jwk"]["kid"] == jwk["kid"] and created.get_json()["authgroups"] == []
    again = client.post(
        "/api/v1/nodes", headers=bearer(admin_token), json={"id": "n2", "realm": "cellB", "public_jwk": jwk}
    )
    assert again.status_code == 409 and again.get_json()["code"] == "node.exists"
    patched = client.patch("/api/v1/nodes/n2", headers=bearer(admin_token), json={"trusted_realms": ["jobmgr"]})
    assert patched.status_code == 200 and patched.get_json()["trusted_realms"] == ["jobmgr"]
    listed = client.get("/api/v1/nodes", headers=bearer(admin_token)).get_json()
    assert [n["id"] for n in listed["nodes"]] == ["n2"]
    assert client.delete("/api/v1/nodes/n2", headers=bearer(admin_token)).status_code == 204
    missing = client.get("/api/v1/nodes/n2", headers=bearer(admin_token))
    assert missing.status_code == 404 and missing.get_json()["code"] == "node.unknown"


def test_only_administrators_register_nodes(client: FlaskClient) -> None:
    _, jwk = node_keypair()
    token = login(client, "john")["access_token"]
    response = client.post(
        "/api/v1/nodes", headers=bearer(token), json={"id": "n3", "realm": "jobmgr", "public_jwk": jwk}
    )
    assert response.status_code == 403 and response.get_json()["code"] == "authz.denied"


def test_monitor_grant_lets_carol_read_but_not_write(client: FlaskClient, services: Services) -> None:
    from authz_tables.roles import Role
    from tests.sts.fakes import group_id

    services.authz.grant(group_id("jobmgr", "monitors"), Role.MONITOR, changed_by="test")
    token = login(client, "carol")["access_token"]
    assert client.get("/api/v1/nodes", headers=bearer(token)).status_code == 200
    _, jwk = node_keypair()
    refused = client.post(
        "/api/v1/nodes", headers=bearer(token), json={"id": "x", "realm": "jobmgr", "public_jwk": jwk}
    )
    assert refused.status_code == 403


@pytest.mark.parametrize(
    "body,needle",
    [
        ({"id": "../etc", "realm": "jobmgr"}, "node id"),
        ({"id": "n", "realm": "elsewhere"}, "not hosted"),
        ({"id": "n", "realm": "jobmgr", "public_jwk": {"kty": "oct", "k": "c2VjcmV0", "alg": "HS256"}}, "public_jwk"),
        ({"id": "n", "realm": "jobmgr", "authgroups": ["bad group"]}, "authgroups"),
        ({"id": "n", "realm": "jobmgr", "extra": 1}, "unknown field"),
    ],
)
def test_bad_registrations(client: FlaskClient, admin_token: str, body: dict[str, Any], needle: str) -> None:
    body = {"public_jwk": node_keypair()[1], **body}
    response = client.post("/api/v1/nodes", headers=bearer(admin_token), json=body)
    assert response.status_code == 400 and response.get_json()["code"] == "node.invalid"
    assert needle in response.get_json()["detail"]


def test_private_jwk_is_refused(client: FlaskClient, admin_token: str) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    private = ec.generate_private_key(ec.SECP256R1())
    jwk = dict(node_keypair()[1])
    jwk["d"] = "AAAA"
    del private
    response = client.post(
        "/api/v1/nodes", headers=bearer(admin_token), json={"id": "n", "realm": "jobmgr", "public_jwk": jwk}
    )
    assert response.status_code == 400 and "private" in response.get_json()["detail"]


def test_client_credentials_issue_an_agent_token(
    client: FlaskClient, registered_node: tuple[str, Any], services: Services
) -> None:
    node_id, private = registered_node
    response = agent_token_request(client, node_id, assertion(private, node_id, ENDPOINT))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 300 and "refresh_token" not in body
    header, claims = decode_unverified(body["access_token"])
    assert header["typ"] == "agent+jwt"
    assert claims["sub"] == "node:node1" and claims["aud"] == services.config.audience
    assert claims["iss"] == "https://sts.test/realms/jobmgr"


def test_replayed_assertion_is_refused(client: FlaskClient, registered_node: tuple[str, Any]) -> None:
    node_id, private = registered_node
    signed = assertion(private, node_id, ENDPOINT)
    assert agent_token_request(client, node_id, signed).status_code == 200
    replay = agent_token_request(client, node_id, signed)
    assert replay.status_code == 401
    assert replay.get_json()["error"] == "invalid_client" and replay.get_json()["code"] == "token.replayed"


@pytest.mark.parametrize(
    "change,code",
    [
        ({"aud": "https://sts.test/realms/cellB/token"}, "client.assertion"),
        ({"aud": "https://evil.test/realms/jobmgr/token"}, "client.assertion"),
        ({"sub": "node2"}, "client.assertion"),
        ({"exp": 1}, "client.assertion"),
        ({"exp": 10**10}, "client.assertion"),
        ({"jti": None}, "client.assertion"),
        ({"iss": "ghost", "sub": "ghost"}, "node.unknown"),
    ],
)
def test_bad_assertions(
    client: FlaskClient, registered_node: tuple[str, Any], change: dict[str, Any], code: str
) -> None:
    node_id, private = registered_node
    response = agent_token_request(client, change.get("iss", node_id), assertion(private, node_id, ENDPOINT, **change))
    assert response.status_code == 401 and response.get_json()["code"] == code


def test_assertion_signed_by_another_key_or_with_hmac_is_refused(
    client: FlaskClient, registered_node: tuple[str, Any]
) -> None:
    node_id, _ = registered_node
    other, _ = node_keypair()
    wrong_key = agent_token_request(client, node_id, assertion(other, node_id, ENDPOINT))
    assert wrong_key.status_code == 401 and wrong_key.get_json()["code"] == "client.assertion"
    hmac = agent_token_request(client, node_id, assertion(b"k" * 32, node_id, ENDPOINT, algorithm="HS256"))
    assert hmac.status_code == 401


def test_node_of_another_realm_cannot_use_this_realms_endpoint(
    client: FlaskClient, registered_node: tuple[str, Any]
) -> None:
    node_id, private = registered_node
    response = agent_token_request(
        client, node_id, assertion(private, node_id, "https://sts.test/realms/cellB/token"), realm="cellB"
    )
    assert response.status_code == 401 and response.get_json()["code"] == "node.unknown"


@pytest.fixture
def probe_app(app: Flask) -> Flask:
    """The app with a probe route behind ``require_agent`` (registered before any request)."""
    probe = Blueprint("probe", __name__)

    @probe.get("/api/v1/agent/probe")
    @require_agent
    def whoami() -> dict[str, Any]:
        node = request_context().node
        assert node is not None
        return {"node": node.id, "realm": node.realm}

    app.register_blueprint(probe)
    return app


def test_require_agent_sets_the_node(probe_app: Flask, registered_node: tuple[str, Any]) -> None:
    client = probe_app.test_client()
    node_id, private = registered_node
    token = agent_token_request(client, node_id, assertion(private, node_id, ENDPOINT)).get_json()["access_token"]
    response = client.get("/api/v1/agent/probe", headers=bearer(token))
    assert response.status_code == 200 and response.get_json() == {"node": "node1", "realm": "jobmgr"}
    user_token = login(client, "admin")["access_token"]
    confused = client.get("/api/v1/agent/probe", headers=bearer(user_token))
    assert confused.status_code == 401 and confused.get_json()["code"] == "token.type"
    admin = bearer(user_token)
    assert client.delete(f"/api/v1/nodes/{node_id}", headers=admin).status_code == 204
    gone = client.get("/api/v1/agent/probe", headers=bearer(token))
    assert gone.status_code == 401 and gone.get_json()["code"] == "node.unknown"
