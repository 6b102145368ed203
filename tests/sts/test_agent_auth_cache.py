"""The agent-authentication cache (``sts.nodes.auth_cache``) never outlives a change: a token
revocation, a node's removal, re-key or realm move committed before a request refuses that
request, although the node was cached by the call just before it."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import text

from sts.nodes.auth_cache import NodeAuthCache
from sts.oauth.revocation import revoke_jti
from sts.services import Services
from tests.sts.conftest import (
    agent_token_request,
    assertion,
    bearer,
    decode_unverified,
    node_keypair,
)

pytestmark = pytest.mark.db
ENDPOINT = "https://sts.test/realms/jobmgr/token"
LEASE = "/api/v1/agent/lease"
WAIT = "/api/v1/agent/wait"


def _agent_token(client: FlaskClient, node_id: str, private: Any) -> str:
    response = agent_token_request(client, node_id, assertion(private, node_id, ENDPOINT))
    assert response.status_code == 200, response.get_json()
    token: str = response.get_json()["access_token"]
    return token


def _cached(client: FlaskClient, services: Services, token: str) -> None:
    """One accepted agent call, after which the node is in this process's cache."""
    response = client.post(LEASE, json={"wait": 0}, headers=bearer(token))
    assert response.status_code == 204, response.get_json()
    assert len(services.node_auth) == 1


def _refused(client: FlaskClient, token: str, code: str) -> None:
    lease = client.post(LEASE, json={"wait": 0}, headers=bearer(token))
    assert lease.status_code == 401 and lease.get_json()["code"] == code
    wait = client.get(WAIT, query_string={"timeout": 1}, headers=bearer(token))
    assert wait.status_code == 401 and wait.get_json()["code"] == code


def test_a_revoked_agent_token_is_refused_by_the_very_next_call(
    client: FlaskClient, services: Services, registered_node: tuple[str, Any]
) -> None:
    token = _agent_token(client, *registered_node)
    _cached(client, services, token)
    revoked = client.post("/realms/jobmgr/revoke", data={"token": token})
    assert revoked.status_code == 200
    _refused(client, token, "token.revoked")


def test_a_revocation_written_in_any_transaction_is_seen_at_once(
    client: FlaskClient, services: Services, registered_node: tuple[str, Any]
) -> None:
    token = _agent_token(client, *registered_node)
    _cached(client, services, token)
    claims = decode_unverified(token)[1]
    with services.db.session() as session:
        revoke_jti(session, claims["jti"], int(claims["exp"]), "revoked by the test")
    _refused(client, token, "token.revoked")


def test_an_unregistered_node_is_refused_by_the_very_next_call(
    client: FlaskClient, services: Services, admin_token: str, registered_node: tuple[str, Any]
) -> None:
    node_id, private = registered_node
    token = _agent_token(client, node_id, private)
    _cached(client, services, token)
    assert client.delete(f"/api/v1/nodes/{node_id}", headers=bearer(admin_token)).status_code == 204
    _refused(client, token, "node.unknown")


def test_a_node_moved_to_another_realm_is_refused_with_its_old_token(
    client: FlaskClient, services: Services, admin_token: str, registered_node: tuple[str, Any]
) -> None:
    node_id, private = registered_node
    token = _agent_token(client, node_id, private)
    _cached(client, services, token)
    moved = client.patch(f"/api/v1/nodes/{node_id}", headers=bearer(admin_token), json={"realm": "cellB"})
    assert moved.status_code == 200, moved.get_json()
    _refused(client, token, "node.unknown")


def test_a_rekeyed_node_refuses_the_old_key(
    client: FlaskClient, services: Services, admin_token: str, registered_node: tuple[str, Any]
) -> None:
    node_id, old_private = registered_node
    _cached(client, services, _agent_token(client, node_id, old_private))
    new_private, new_jwk = node_keypair()
    rekeyed = client.patch(f"/api/v1/nodes/{node_id}", headers=bearer(admin_token), json={"public_jwk": new_jwk})
    assert rekeyed.status_code == 200, rekeyed.get_json()
    old = agent_token_request(client, node_id, assertion(old_private, node_id, ENDPOINT))
    assert old.status_code == 401 and old.get_json()["error"] == "invalid_client"
    fresh = _agent_token(client, node_id, new_private)
    assert client.post(LEASE, json={"wait": 0}, headers=bearer(fresh)).status_code == 204


def test_an_agent_token_got_with_the_old_key_dies_with_the_re_key(
    client: FlaskClient, services: Services, admin_token: str, registered_node: tuple[str, Any]
) -> None:
    """The agent token is bound to the node key that obtained it (cnf.jkt, RFC 7800 §3.1): after a
    re-key, a token got with the old (perhaps leaked) key is refused at once, not at its exp."""
    node_id, old_private = registered_node
    stolen = _agent_token(client, node_id, old_private)
    assert decode_unverified(stolen)[1]["cnf"]["jkt"]
    _cached(client, services, stolen)
    _, new_jwk = node_keypair()
    rekeyed = client.patch(f"/api/v1/nodes/{node_id}", headers=bearer(admin_token), json={"public_jwk": new_jwk})
    assert rekeyed.status_code == 200, rekeyed.get_json()
    _refused(client, stolen, "token.revoked")


@pytest.mark.parametrize("cnf", [None, {}, {"jkt": "A" * 43}, {"jkt": 7}, "jkt"])
def test_an_agent_token_not_bound_to_the_node_key_is_refused(
    client: FlaskClient, services: Services, registered_node: tuple[str, Any], cnf: object
) -> None:
    """Signed by the realm and otherwise valid, but bound to no key or another one."""
    node_id, private = registered_node
    claims = decode_unverified(_agent_token(client, node_id, private))[1]
    if cnf is None:
        del claims["cnf"]
    else:
        claims["cnf"] = cnf
    forged = services.keys.sign("jobmgr", claims, "agent+jwt")
    _refused(client, forged, "token.claims" if cnf is None else "token.revoked")


def test_a_failed_version_read_fails_closed(
    client: FlaskClient, services: Services, registered_node: tuple[str, Any]
) -> None:
    token = _agent_token(client, *registered_node)
    _cached(client, services, token)
    with services.db.engine.begin() as conn:
        conn.execute(text("DROP TABLE sts_auth_version"))
    refused = client.post(LEASE, json={"wait": 0}, headers=bearer(token))
    assert refused.status_code == 503 and refused.get_json()["code"] == "db.unavailable"


def test_the_cache_is_bounded(client: FlaskClient, services: Services, admin_token: str) -> None:
    services.node_auth = NodeAuthCache(max_nodes=2)
    tokens = []
    for index in range(3):
        private, jwk = node_keypair()
        body = {"id": f"n{index}", "realm": "jobmgr", "authgroups": ["web"], "public_jwk": jwk}
        assert client.post("/api/v1/nodes", headers=bearer(admin_token), json=body).status_code == 201
        tokens.append(_agent_token(client, f"n{index}", private))
    for token in tokens:
        assert client.post(LEASE, json={"wait": 0}, headers=bearer(token)).status_code == 204
    assert len(services.node_auth) == 2
