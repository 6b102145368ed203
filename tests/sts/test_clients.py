"""Only known clients at the token endpoint (sts/oauth/clients.py): unknown ``client_id`` values and
Basic client authentication are refused with ``invalid_client``, never taken as typed or ignored."""

from __future__ import annotations

import base64

import pytest
from flask.testing import FlaskClient

from tests.sts.conftest import decode_unverified

pytestmark = pytest.mark.db
TOKEN = "/realms/jobmgr/token"
PASSWORD = {"grant_type": "password", "username": "john", "password": "john-password"}


@pytest.mark.parametrize("client_id", ["evil", "jobsts-cli ", "JOBSTS", "node1"])
def test_an_unknown_client_id_is_refused(client: FlaskClient, client_id: str) -> None:
    response = client.post(TOKEN, data={**PASSWORD, "client_id": client_id})
    assert response.status_code == 401
    body = response.get_json()
    assert body["error"] == "invalid_client" and body["code"] == "client.unknown"
    assert "access_token" not in body


@pytest.mark.parametrize("client_id", [None, "jobsts", "jobsts-cli"])
def test_registered_public_clients_and_no_client_id_are_accepted(client: FlaskClient, client_id: str | None) -> None:
    data = dict(PASSWORD) if client_id is None else {**PASSWORD, "client_id": client_id}
    response = client.post(TOKEN, data=data)
    assert response.status_code == 200
    claims = decode_unverified(response.get_json()["access_token"])[1]
    assert claims["client_id"] == (client_id or "jobsts")


def test_the_refresh_grant_refuses_an_unknown_client_id(client: FlaskClient) -> None:
    refresh = client.post(TOKEN, data=PASSWORD).get_json()["refresh_token"]
    response = client.post(TOKEN, data={"grant_type": "refresh_token", "refresh_token": refresh, "client_id": "evil"})
    assert response.status_code == 401 and response.get_json()["code"] == "client.unknown"


def test_basic_client_authentication_is_refused_with_a_basic_challenge(client: FlaskClient) -> None:
    basic = base64.b64encode(b"jobsts-cli:secret").decode()
    response = client.post(TOKEN, data=PASSWORD, headers={"Authorization": f"Basic {basic}"})
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_client"
    assert response.headers["WWW-Authenticate"].startswith("Basic ")
