"""The token endpoint: password, refresh and errors (RFC 6749 §5.1, §5.2)."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from realms.tokens import ACCESS_TOKEN, verify
from sts.services import Services
from tests.sts.conftest import decode_unverified, login
from tests.sts.fakes import group_id, user_id

pytestmark = pytest.mark.db


def _token(client: FlaskClient, realm: str = "jobmgr", **form: str) -> Any:
    return client.post(f"/realms/{realm}/token", data=form)


def test_password_grant_issues_an_access_token_as_in_the_design(client: FlaskClient, services: Services) -> None:
    response = _token(client, grant_type="password", username="john", password="john-password")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 300 and body["refresh_token"]
    header, claims = decode_unverified(body["access_token"])
    assert header["typ"] == "at+jwt" and header["alg"] == "ES256"
    assert header["kid"] in {k["kid"] for k in services.keys.jwks("jobmgr")["keys"]}
    assert claims["iss"] == "https://sts.test/realms/jobmgr"
    assert claims["sub"] == str(user_id("jobmgr", "john"))
    assert claims["aud"] == services.config.audience
    assert claims["realm"] == "jobmgr" and claims["preferred_username"] == "john"
    assert set(claims["groups"]) == {str(group_id("jobmgr", "operators")), str(group_id("jobmgr", "ops-all"))}
    assert claims["exp"] - claims["iat"] == 300 and claims["nbf"] == claims["iat"]
    verified = verify(
        body["access_token"], ACCESS_TOKEN, services.keys.trust_resolver(), audience=services.config.audience
    )
    assert verified.realm == "jobmgr"


def test_same_uid_in_two_realms_gives_two_access_ids(client: FlaskClient) -> None:
    a = decode_unverified(login(client, "john")["access_token"])[1]
    b = decode_unverified(login(client, "john", realm="cellB")["access_token"])[1]
    assert a["sub"] != b["sub"] and b["iss"].endswith("/realms/cellB")


@pytest.mark.parametrize(
    "username,password", [("john", "wrong"), ("nobody", "x"), ("john", ""), ("jo\x00hn", "john-password")]
)
def test_bad_logins_get_one_answer(client: FlaskClient, username: str, password: str) -> None:
    response = _token(client, grant_type="password", username=username, password=password)
    assert response.status_code == 400
    assert response.get_json() == {
        "error": "invalid_grant",
        "code": "login.failed",
        "error_description": "login.failed: invalid username or password",
    }


def test_directory_outage_is_503_not_401(client: FlaskClient, services: Services) -> None:
    services.registries["jobmgr"].down = True  # type: ignore[attr-defined]
    response = _token(client, grant_type="password", username="john", password="john-password")
    assert response.status_code == 503
    assert response.get_json()["error"] == "temporarily_unavailable"
    assert response.get_json()["code"] == "ldap.unavailable"


def test_unknown_realm(client: FlaskClient) -> None:
    response = _token(client, realm="nowhere", grant_type="password", username="john", password="x")
    assert response.status_code == 404
    assert response.get_json()["error"] == "invalid_request" and response.get_json()["code"] == "realm.unknown"


@pytest.mark.parametrize(
    "form,error",
    [
        ({}, "invalid_request"),
        ({"grant_type": "implicit"}, "unsupported_grant_type"),
        ({"grant_type": "password"}, "invalid_request"),
        ({"grant_type": "refresh_token"}, "invalid_request"),
    ],
)
def test_malformed_grant_requests(client: FlaskClient, form: dict[str, str], error: str) -> None:
    response = _token(client, **form)
    assert response.status_code == 400
    assert response.get_json()["error"] == error


def test_repeated_parameters_query_strings_and_json_bodies_are_refused(client: FlaskClient) -> None:
    repeated = client.post(
        "/realms/jobmgr/token",
        data="grant_type=password&username=john&username=admin&password=john-password",
        content_type="application/x-www-form-urlencoded",
    )
    assert repeated.status_code == 400 and repeated.get_json()["error"] == "invalid_request"
    query = client.post(
        "/realms/jobmgr/token?password=john-password", data={"grant_type": "password", "username": "john"}
    )
    assert query.status_code == 400 and query.get_json()["error"] == "invalid_request"
    as_json = client.post(
        "/realms/jobmgr/token", json={"grant_type": "password", "username": "john", "password": "john-password"}
    )
    assert as_json.status_code == 400 and as_json.get_json()["error"] == "invalid_request"


def test_oversized_body_is_413_oauth_error(client: FlaskClient) -> None:
    response = _token(client, grant_type="password", username="john", password="x" * 200_000)
    assert response.status_code == 413
    assert response.get_json()["error"] == "invalid_request"
    assert response.get_json()["code"] == "request.too_large"


def test_refresh_rotates_and_reuse_revokes_the_family(client: FlaskClient) -> None:
    first = login(client, "john")
    second = _token(client, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert second.status_code == 200
    rotated = second.get_json()
    assert rotated["refresh_token"] != first["refresh_token"] and rotated["access_token"]
    reuse = _token(client, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert reuse.status_code == 400 and reuse.get_json()["code"] == "refresh.reused"
    # the whole family is dead, including the newest token
    after = _token(client, grant_type="refresh_token", refresh_token=rotated["refresh_token"])
    assert after.status_code == 400 and after.get_json()["error"] == "invalid_grant"


def test_refresh_tokens_are_stored_only_as_hashes(client: FlaskClient, services: Services) -> None:
    from sqlalchemy import select

    from sts.oauth.models import RefreshToken

    token = login(client, "john")["refresh_token"]
    with services.db.session() as session:
        stored = [r.token_hash for r in session.scalars(select(RefreshToken))]
    assert token not in stored and len(stored) == 1 and len(stored[0]) == 64


def test_deleted_user_cannot_refresh(client: FlaskClient, services: Services) -> None:
    token = login(client, "john")["refresh_token"]
    services.registries["jobmgr"].hidden.add("john")  # type: ignore[attr-defined]
    response = _token(client, grant_type="refresh_token", refresh_token=token)
    assert response.status_code == 400 and response.get_json()["code"] == "refresh.invalid"


def test_refresh_during_an_outage_keeps_the_token_usable(client: FlaskClient, services: Services) -> None:
    token = login(client, "john")["refresh_token"]
    services.registries["jobmgr"].down = True  # type: ignore[attr-defined]
    assert _token(client, grant_type="refresh_token", refresh_token=token).status_code == 503
    services.registries["jobmgr"].down = False  # type: ignore[attr-defined]
    assert _token(client, grant_type="refresh_token", refresh_token=token).status_code == 200


def test_refresh_token_of_one_realm_is_refused_by_another(client: FlaskClient) -> None:
    token = login(client, "john")["refresh_token"]
    response = _token(client, realm="cellB", grant_type="refresh_token", refresh_token=token)
    assert response.status_code == 400 and response.get_json()["code"] == "refresh.invalid"


def test_concurrent_use_of_one_refresh_token_lets_only_one_win(client: FlaskClient, services: Services) -> None:
    from sts.oauth import refresh_tokens

    token = login(client, "john")["refresh_token"]
    with services.db.session() as session:
        row = refresh_tokens.check(session, "jobmgr", token)
    with services.db.session() as session:
        assert refresh_tokens.spend(session, row) is True
    with services.db.session() as session:
        assert refresh_tokens.spend(session, row) is False  # the second racer loses


def test_refresh_never_extends_the_session(client: FlaskClient, services: Services) -> None:
    from sqlalchemy import select

    from sts.oauth.models import RefreshToken

    first = login(client, "john")
    second = _token(client, grant_type="refresh_token", refresh_token=first["refresh_token"]).get_json()
    assert second["refresh_token"]
    with services.db.session() as session:
        expiries = {r.expires_at for r in session.scalars(select(RefreshToken))}
    assert len(expiries) == 1


EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
AT_TYPE = "urn:ietf:params:oauth:token-type:access_token"


def test_token_exchange_same_realm_never_outlives_the_subject(client: FlaskClient) -> None:
    subject = login(client, "john")["access_token"]
    response = _token(client, grant_type=EXCHANGE, subject_token=subject, subject_token_type=AT_TYPE)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["issued_token_type"] == AT_TYPE and body["token_type"] == "Bearer"
    old, new = decode_unverified(subject)[1], decode_unverified(body["access_token"])[1]
    assert new["sub"] == old["sub"] and new["exp"] <= old["exp"] and new["jti"] != old["jti"]


@pytest.mark.parametrize(
    "extra,error",
    [
        ({"actor_token": "x", "actor_token_type": AT_TYPE}, "invalid_request"),
        ({"audience": "https://elsewhere.test"}, "invalid_target"),
        ({"requested_token_type": "urn:ietf:params:oauth:token-type:refresh_token"}, "invalid_request"),
        ({"subject_token_type": "urn:ietf:params:oauth:token-type:saml2"}, "invalid_request"),
    ],
)
def test_token_exchange_refusals(client: FlaskClient, extra: dict[str, str], error: str) -> None:
    subject = login(client, "john")["access_token"]
    form = {"grant_type": EXCHANGE, "subject_token": subject, "subject_token_type": AT_TYPE, **extra}
    response = _token(client, **form)
    assert response.status_code == 400 and response.get_json()["error"] == error


def test_token_exchange_refuses_other_realms_revoked_and_deleted(client: FlaskClient, services: Services) -> None:
    subject = login(client, "john")["access_token"]
    other = _token(client, realm="cellB", grant_type=EXCHANGE, subject_token=subject, subject_token_type=AT_TYPE)
    assert other.status_code == 400 and other.get_json()["error"] == "invalid_grant"
    services.registries["jobmgr"].hidden.add("john")  # type: ignore[attr-defined]
    gone = _token(client, grant_type=EXCHANGE, subject_token=subject, subject_token_type=AT_TYPE)
    assert gone.status_code == 400 and gone.get_json()["error"] == "invalid_grant"
    services.registries["jobmgr"].hidden.clear()  # type: ignore[attr-defined]
    client.post("/realms/jobmgr/revoke", data={"token": subject})
    revoked = _token(client, grant_type=EXCHANGE, subject_token=subject, subject_token_type=AT_TYPE)
    assert revoked.status_code == 400 and "token.revoked" in revoked.get_json()["error_description"]
