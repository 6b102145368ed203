"""Introspection (RFC 7662) and revocation (RFC 7009)."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from authz_tables.roles import Role
from sts.oauth.revocation import list_active
from sts.services import Services
from tests.sts.conftest import agent_token_request, assertion, bearer, login
from tests.sts.fakes import group_id

pytestmark = pytest.mark.db
ENDPOINT = "https://sts.test/realms/jobmgr/token"


def test_introspection_needs_an_authenticated_caller(client: FlaskClient) -> None:
    token = login(client, "john")["access_token"]
    assert client.post("/realms/jobmgr/introspect", data={"token": token}).status_code == 401
    own = client.post("/realms/jobmgr/introspect", data={"token": token}, headers=bearer(token))
    assert own.status_code == 200 and own.get_json()["active"] is True  # a caller may introspect its own token


def test_an_administrator_introspects_access_and_refresh_tokens(client: FlaskClient, services: Services) -> None:
    services.authz.grant(group_id("jobmgr", "monitors"), Role.ADMINISTRATOR, changed_by="test")
    monitor = bearer(login(client, "carol")["access_token"])
    john = login(client, "john")
    body = client.post("/realms/jobmgr/introspect", data={"token": john["access_token"]}, headers=monitor).get_json()
    assert body["active"] is True and body["username"] == "john" and body["token_type"] == "at+jwt"
    refresh = client.post("/realms/jobmgr/introspect", data={"token": john["refresh_token"]}, headers=monitor)
    assert refresh.get_json()["active"] is True and refresh.get_json()["token_type"] == "refresh_token"
    other_realm = client.post("/realms/cellB/introspect", data={"token": john["access_token"]}, headers=monitor)
    assert other_realm.get_json() == {"active": False}
    assert client.post("/realms/jobmgr/introspect", data={"token": "garbage.x.y"}, headers=monitor).get_json() == {
        "active": False
    }


def test_node_introspects_with_its_agent_token(client: FlaskClient, registered_node: tuple[str, Any]) -> None:
    node_id, private = registered_node
    agent = agent_token_request(client, node_id, assertion(private, node_id, ENDPOINT)).get_json()["access_token"]
    john = login(client, "john")["access_token"]
    body = client.post("/realms/jobmgr/introspect", data={"token": john}, headers=bearer(agent)).get_json()
    assert body["active"] is True and body["sub"].startswith("user:jobmgr/")


def test_revocation_of_access_and_refresh_tokens(client: FlaskClient, services: Services) -> None:
    john = login(client, "john")
    assert client.post("/realms/jobmgr/revoke", data={"token": john["access_token"]}).status_code == 200
    with services.db.session() as session:
        assert [jti for jti, _ in list_active(session)]
    assert client.post("/realms/jobmgr/revoke", data={"token": john["refresh_token"]}).status_code == 200
    refreshed = client.post(
        "/realms/jobmgr/token", data={"grant_type": "refresh_token", "refresh_token": john["refresh_token"]}
    )
    assert refreshed.status_code == 400
    assert client.post("/realms/jobmgr/revoke", data={"token": "unknown"}).status_code == 200
    assert client.post("/realms/nowhere/revoke", data={"token": "x"}).status_code == 404


def test_housekeeping_drops_only_what_has_expired(client: FlaskClient, services: Services) -> None:
    import time

    from sqlalchemy import func, select

    from sts.oauth.models import RefreshToken, RevokedToken
    from sts.oauth.revocation import revoke_jti

    login(client, "john")
    now = int(time.time())
    with services.db.session() as session:
        revoke_jti(session, "old", now - 3600, "test")
        revoke_jti(session, "live", now + 3600, "test")
    services.housekeeper.run(now)
    with services.db.session() as session:
        assert [jti for jti, _ in list_active(session, now - 7200)] == ["live"]
        assert session.scalar(select(func.count()).select_from(RefreshToken)) == 1
        assert session.scalar(select(func.count()).select_from(RevokedToken)) == 1
    services.housekeeper.run(now + 10 * 86400)
    with services.db.session() as session:
        assert session.scalar(select(func.count()).select_from(RefreshToken)) == 0
