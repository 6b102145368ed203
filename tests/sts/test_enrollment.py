"""Node enrollment with one-time join tokens: single use, expiry, bound to the node, stored hashed."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, update

from sts.nodes.models import JoinToken, Node
from sts.services import Services
from tests.sts.conftest import agent_token_request, assertion, bearer, login, node_keypair

pytestmark = pytest.mark.db
ENDPOINT = "https://sts.test/realms/jobmgr/token"


def _join_token(client: FlaskClient, admin_token: str, node: str = "edge1", **body: Any) -> str:
    response = client.post(
        f"/api/v1/nodes/{node}/join-tokens",
        headers=bearer(admin_token),
        json={"realm": "jobmgr", "authgroups": ["batch"], **body},
    )
    assert response.status_code == 201, response.get_json()
    assert response.headers["Cache-Control"] == "no-store"
    token: str = response.get_json()["join_token"]
    return token


def _enroll(client: FlaskClient, token: str, node: str = "edge1", jwk: dict[str, str] | None = None) -> Any:
    return client.post(
        "/api/v1/nodes/enroll",
        json={"node": node, "join_token": token, "public_jwk": jwk or node_keypair()[1], "trusted_realms": ["cellB"]},
    )


def test_a_node_enrolls_once_and_then_authenticates_with_its_key(
    client: FlaskClient, admin_token: str, services: Services
) -> None:
    token = _join_token(client, admin_token)
    private, jwk = node_keypair()
    enrolled = _enroll(client, token, jwk=jwk)
    assert enrolled.status_code == 201, enrolled.get_json()
    node = enrolled.get_json()
    assert (node["realm"], node["authgroups"], node["trusted_realms"]) == ("jobmgr", ["batch"], ["cellB"])
    assert node["public_jwk"]["kid"] == jwk["kid"]
    answer = agent_token_request(client, "edge1", assertion(private, "edge1", ENDPOINT))
    assert answer.status_code == 200, answer.get_json()
    replay = _enroll(client, token)
    assert replay.status_code == 403 and replay.get_json()["code"] == "join_token.used"
    with services.db.session() as session:
        assert session.get(Node, "edge1").public_jwk["kid"] == jwk["kid"]  # type: ignore[union-attr]


def test_join_tokens_are_stored_hashed(client: FlaskClient, admin_token: str, services: Services) -> None:
    token = _join_token(client, admin_token)
    with services.db.session() as session:
        rows = list(session.scalars(select(JoinToken)))
    assert len(rows) == 1
    stored = " ".join(str(getattr(rows[0], c.key)) for c in JoinToken.__table__.columns)
    assert token not in stored and token.partition("_")[2] not in stored


def test_an_expired_token_is_refused(client: FlaskClient, admin_token: str, services: Services) -> None:
    token = _join_token(client, admin_token, ttl=60)
    with services.db.session() as session:
        session.execute(update(JoinToken).values(expires_at=JoinToken.created_at - 1))
    refused = _enroll(client, token)
    assert refused.status_code == 403 and refused.get_json()["code"] == "join_token.expired"


def test_a_token_enrolls_only_the_node_it_names(client: FlaskClient, admin_token: str) -> None:
    token = _join_token(client, admin_token)
    other = _enroll(client, token, node="edge2")
    assert other.status_code == 403 and other.get_json()["code"] == "join_token.wrong_node"
    assert _enroll(client, token).status_code == 201  # not spent by the refusal


def test_unknown_tokens_bad_keys_and_non_administrators(client: FlaskClient, admin_token: str) -> None:
    unknown = _enroll(client, "jstjoin_" + "A" * 43)
    assert unknown.status_code == 403 and unknown.get_json()["code"] == "join_token.invalid"
    token = _join_token(client, admin_token)
    private_members = {**node_keypair()[1], "d": "AAAA"}
    bad = _enroll(client, token, jwk=private_members)
    assert bad.status_code == 400 and bad.get_json()["code"] == "node.invalid"
    assert _enroll(client, token).status_code == 201  # a refused key does not spend the token
    john = login(client, "john")["access_token"]
    denied = client.post("/api/v1/nodes/edge3/join-tokens", headers=bearer(john), json={"realm": "jobmgr"})
    assert denied.status_code == 403 and denied.get_json()["code"] == "authz.denied"
    too_long = client.post("/api/v1/nodes/edge3/join-tokens", headers=bearer(admin_token), json={"ttl": 10**7})
    assert too_long.status_code == 400 and too_long.get_json()["code"] == "node.invalid"


def test_a_token_for_a_registered_node_replaces_its_key(
    client: FlaskClient, admin_token: str, registered_node: tuple[str, Any]
) -> None:
    token = _join_token(client, admin_token, node="node1")
    jwk = node_keypair()[1]
    replaced = _enroll(client, token, node="node1", jwk=jwk)
    assert replaced.status_code == 200 and replaced.get_json()["public_jwk"]["kid"] == jwk["kid"]
    old_private = registered_node[1]
    refused = agent_token_request(client, "node1", assertion(old_private, "node1", ENDPOINT))
    assert refused.status_code == 401


def test_concurrent_presentations_enroll_once(app: Any, admin_token: str) -> None:
    client = app.test_client()
    token = _join_token(client, admin_token)
    answers: list[int] = []
    start = threading.Barrier(4)

    def present() -> None:
        start.wait(timeout=60)
        answers.append(_enroll(app.test_client(), token).status_code)

    threads = [threading.Thread(target=present) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert sorted(answers) == [201, 403, 403, 403]
