"""Who may introspect what (RFC 7662 §1, §2.1, §4): nodes and administrators; anyone their own tokens;
a monitor or operator never someone else's. Each test fails if its rule is removed."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from authz_tables.roles import Role
from sts.services import Services
from tests.sts.conftest import bearer, login
from tests.sts.fakes import group_id

pytestmark = pytest.mark.db
INTROSPECT = "/realms/jobmgr/introspect"


@pytest.mark.parametrize("role", [Role.MONITOR, Role.OPERATOR])
def test_a_monitor_or_operator_cannot_introspect_anothers_tokens(
    client: FlaskClient, services: Services, role: Role
) -> None:
    services.authz.grant(group_id("jobmgr", "monitors"), role, changed_by="test")
    carol = login(client, "carol")
    admin = login(client, "admin")
    for token in (admin["access_token"], admin["refresh_token"]):
        body = client.post(INTROSPECT, data={"token": token}, headers=bearer(carol["access_token"])).get_json()
        assert body == {"active": False}  # no username, no groups: nothing leaks
    for token in (carol["access_token"], carol["refresh_token"]):
        own = client.post(INTROSPECT, data={"token": token}, headers=bearer(carol["access_token"])).get_json()
        assert own["active"] is True and own["username"] == "carol"


def test_a_request_without_token_is_invalid_request(client: FlaskClient) -> None:
    admin = bearer(login(client, "admin")["access_token"])
    for data in ({}, {"token": ""}):
        response = client.post(INTROSPECT, data=data, headers=admin)
        assert response.status_code == 400
        assert response.get_json()["error"] == "invalid_request"


def test_discovery_advertises_no_unregistered_auth_method(client: FlaskClient) -> None:
    document = client.get("/realms/jobmgr/.well-known/openid-configuration").get_json()
    registered = {
        "none",
        "client_secret_basic",
        "client_secret_post",
        "client_secret_jwt",
        "private_key_jwt",
        "tls_client_auth",
        "self_signed_tls_client_auth",
    }
    for key in [k for k in document if k.endswith("_auth_methods_supported")]:
        assert set(document[key]) <= registered, key
