"""The OpenID provider: the code flow with PKCE through the real login page, ID tokens,
userinfo, discovery checked by three independent validators, and the login page's attacks."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from flask import Flask
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from sts import create_app
from sts.oauth.authorization_codes import s256
from sts.oauth.clients import RegisteredClient
from sts.oauth.id_tokens import at_hash
from tests.sts.conftest import BASE_URL, bearer, login, make_config, spy_on_registries
from tests.sts.oidc_flow import (
    CALLBACK,
    CONSOLE,
    authorize_params,
    code_of,
    form_fields,
    login_for_code,
    open_login,
    pkce,
    redeem,
    submit_login,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from authlib.integrations.httpx_client import OAuth2Client

pytestmark = pytest.mark.db
OTHER = "other-app"
OTHER_CALLBACK = "https://app.test/cb"


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> Iterator[Flask]:
    config = make_config(tmp_path, database_url)
    clients = {**config.clients, ("jobmgr", OTHER): RegisteredClient("jobmgr", OTHER, (OTHER_CALLBACK,))}
    application = create_app(replace(config, clients=clients))
    application.config["TESTING"] = True
    spy_on_registries(application)
    yield application
    application.extensions["jobsts"].close()


def _keys(client: FlaskClient, realm: str = "jobmgr") -> KeySet:
    return KeySet.import_key_set(client.get(f"/realms/{realm}/jwks").get_json())


# --- discovery --------------------------------------------------------------------------
def test_discovery_passes_authlib_idpyoidc_and_oic(client: FlaskClient) -> None:
    from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
    from authlib.oidc.discovery import OpenIDProviderMetadata
    from idpyoidc.message.oidc import ProviderConfigurationResponse as IdpyConfiguration
    from oic.oic.message import ProviderConfigurationResponse as OicConfiguration

    for realm in ("jobmgr", "cellB"):
        document = client.get(f"/realms/{realm}/.well-known/openid-configuration").get_json()
        OpenIDProviderMetadata(document).validate()
        assert IdpyConfiguration(**document).verify()
        assert OicConfiguration(**document).verify()  # type: ignore[no-untyped-call]
        assert document["id_token_signing_alg_values_supported"] == ["RS256"]
        assert document["response_types_supported"] == ["code"]
        assert document["code_challenge_methods_supported"] == ["S256"]
        assert "introspection_endpoint_auth_methods_supported" not in document
        rfc8414 = client.get(f"/.well-known/oauth-authorization-server/realms/{realm}")
        assert rfc8414.status_code == 200 and "max-age" in rfc8414.headers["Cache-Control"]
        AuthorizationServerMetadata(rfc8414.get_json()).validate()
        assert rfc8414.get_json()["issuer"] == f"{BASE_URL}/realms/{realm}"
    assert client.get("/.well-known/oauth-authorization-server/realms/nope").status_code == 404


def test_every_advertised_endpoint_is_served(app: Flask, client: FlaskClient) -> None:
    document = client.get("/realms/jobmgr/.well-known/openid-configuration").get_json()
    adapter = app.url_map.bind("sts.test")
    for name in (
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "userinfo_endpoint",
        "introspection_endpoint",
        "revocation_endpoint",
    ):
        path = urlsplit(document[name]).path
        adapter.match(path, method="POST" if name.endswith(("token_endpoint", "n_endpoint")) else "GET")


def test_jwks_publishes_the_rs256_id_token_key_beside_the_es256_key(client: FlaskClient) -> None:
    algorithms = sorted(k["alg"] for k in client.get("/realms/jobmgr/jwks").get_json()["keys"])
    assert algorithms == ["ES256", "RS256"]


# --- the flow ---------------------------------------------------------------------------
def test_authlib_client_completes_the_code_flow_with_pkce(app: Flask) -> None:
    transport = httpx.WSGITransport(app=app)
    issuer = f"{BASE_URL}/realms/jobmgr"
    verifier = pkce()[0]
    with (
        OAuth2Client(
            client_id=CONSOLE,
            redirect_uri=CALLBACK,
            scope="openid profile",
            code_challenge_method="S256",
            transport=transport,
        ) as oauth,
        httpx.Client(transport=transport, base_url=BASE_URL) as browser,
    ):
        url, state = oauth.create_authorization_url(f"{issuer}/authorize", code_verifier=verifier, nonce="n-42")
        page = browser.get(url)
        assert page.status_code == 200 and "Sign in to" in page.text
        fields = form_fields(page.text)
        fields.update(username="john", password="john-password")
        answer = browser.post(f"{issuer}/authorize", data=fields)
        assert answer.status_code == 303
        location = answer.headers["Location"]
        assert location.startswith(CALLBACK + "?")
        assert parse_qs(urlsplit(location).query)["iss"] == [issuer]
        token = oauth.fetch_token(
            f"{issuer}/token", authorization_response=location, code_verifier=verifier, state=state
        )
        assert token["token_type"] == "Bearer" and token["refresh_token"]
        keys = KeySet.import_key_set(browser.get(f"{issuer}/jwks").json())
        decoded = jwt.decode(token["id_token"], keys, algorithms=["RS256"])
        JWTClaimsRegistry(
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": CONSOLE},
            nonce={"essential": True, "value": "n-42"},
        ).validate(decoded.claims)
        assert decoded.claims["at_hash"] == at_hash(token["access_token"])
        assert decoded.claims["sub"] == "user:jobmgr/uid=john,ou=people,dc=jobmgr,dc=example"
        info = browser.get(f"{issuer}/userinfo", headers=bearer(token["access_token"]))
        assert info.status_code == 200 and info.json()["sub"] == decoded.claims["sub"]
        assert info.json()["preferred_username"] == "john"
        refreshed = oauth.refresh_token(f"{issuer}/token", refresh_token=token["refresh_token"])
        assert refreshed["access_token"] != token["access_token"]
        # OpenID Connect Core §12.2: the same sub, aud and auth_time; no nonce.
        again = jwt.decode(refreshed["id_token"], keys, algorithms=["RS256"]).claims
        assert (again["sub"], again["aud"], again["auth_time"]) == (
            decoded.claims["sub"],
            CONSOLE,
            decoded.claims["auth_time"],
        )
        assert "nonce" not in again and again["at_hash"] == at_hash(refreshed["access_token"])


def test_a_refresh_without_openid_returns_no_id_token(client: FlaskClient) -> None:
    tokens = login(client, "john")
    refreshed = client.post(
        "/realms/jobmgr/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 200 and "id_token" not in refreshed.get_json()


def test_userinfo_refuses_missing_and_other_realm_tokens(client: FlaskClient) -> None:
    missing = client.get("/realms/jobmgr/userinfo")
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
    other = login(client, "bob", realm="cellB")["access_token"]
    refused = client.get("/realms/jobmgr/userinfo", headers=bearer(other))
    assert refused.status_code == 401 and 'error="invalid_token"' in refused.headers["WWW-Authenticate"]


# --- attacks ----------------------------------------------------------------------------
def test_clickjacking_headers_and_no_script(client: FlaskClient) -> None:
    page = open_login(client, authorize_params(pkce()[1]))
    policy = page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy and "default-src 'none'" in policy and "script-src" not in policy
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Cache-Control"] == "no-store"
    assert "<script" not in page.get_data(as_text=True).lower()
    css = client.get("/oauth/login.css")
    assert css.status_code == 200 and css.mimetype == "text/css"
    css.close()


@pytest.mark.parametrize(
    "change",
    [
        {"client_id": "unknown-app"},
        {"redirect_uri": "https://evil.test/cb"},
        {"redirect_uri": CALLBACK + ".evil.test"},
        {"redirect_uri": CALLBACK + "/../../evil"},
        {"redirect_uri": CALLBACK.upper()},
        {"redirect_uri": None},
        {"client_id": OTHER},  # the console's redirect URI is not other-app's
    ],
)
def test_open_redirect_is_refused_on_the_page(client: FlaskClient, change: dict[str, str | None]) -> None:
    page = open_login(client, authorize_params(pkce()[1], **change))
    assert page.status_code == 400 and "Location" not in page.headers
    text = page.get_data(as_text=True)
    assert "authorize.invalid" in text and "<form" not in text
    assert page.headers["X-Frame-Options"] == "DENY"


def test_other_request_errors_go_back_to_the_registered_redirect_uri(client: FlaskClient) -> None:
    verifier, challenge = pkce()
    changes: list[tuple[dict[str, str | None], str]] = [
        ({"code_challenge_method": "plain", "code_challenge": verifier}, "invalid_request"),
        ({"code_challenge": None}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "openid admin"}, "invalid_scope"),
    ]
    for change, error in changes:
        answer = open_login(client, authorize_params(challenge, **change))
        assert answer.status_code == 303, change
        location = urlsplit(answer.headers["Location"])
        assert f"{location.scheme}://{location.netloc}{location.path}" == CALLBACK
        query = parse_qs(location.query)
        assert query["error"] == [error] and query["state"] == ["st-1"]


def test_state_is_escaped_on_the_page(client: FlaskClient) -> None:
    page = open_login(client, authorize_params(pkce()[1], state='"><script>alert(1)</script>'))
    text = page.get_data(as_text=True)
    assert "<script>" not in text and "&lt;script&gt;" in text


def test_csrf_form_without_the_browser_cookie_is_refused(app: Flask) -> None:
    victim, attacker = app.test_client(), app.test_client()
    page = open_login(attacker, authorize_params(pkce()[1]))
    # The attacker's page makes the victim's browser post the attacker's form: no matching cookie.
    forged = submit_login(victim, page, "john")
    assert forged.status_code == 400 and "authorize.csrf" in forged.get_data(as_text=True)
    assert "Location" not in forged.headers


def test_csrf_token_is_bound_to_the_authorization_request(client: FlaskClient) -> None:
    page = open_login(client, authorize_params(pkce()[1]))
    attacker_challenge = pkce()[1]
    changed = submit_login(client, page, "john", code_challenge=attacker_challenge)
    assert changed.status_code == 400 and "authorize.csrf" in changed.get_data(as_text=True)
    blank = submit_login(client, page, "john", csrf_token="")
    assert blank.status_code == 400
    assert code_of(submit_login(client, page, "john"))


def test_wrong_password_shows_the_page_again_and_counts_in_the_shared_throttle(client: FlaskClient) -> None:
    page = open_login(client, authorize_params(pkce()[1]))
    for _ in range(3):  # the test throttle locks after 3 failures
        failed = submit_login(client, page, "john", password="wrong")
        assert failed.status_code == 200 and "invalid username or password" in failed.get_data(as_text=True)
        assert "Location" not in failed.headers
    # The password grant shares the lock: the right password is now refused there too.
    locked = client.post(
        "/realms/jobmgr/token", data={"grant_type": "password", "username": "john", "password": "john-password"}
    )
    assert locked.status_code == 400 and locked.get_json()["code"] == "login.failed"
    assert submit_login(client, page, "john").status_code == 200  # and on the page


def test_code_is_single_use_and_a_replay_revokes_its_tokens(client: FlaskClient) -> None:
    code, verifier = login_for_code(client)
    first = redeem(client, code, verifier)
    assert first.status_code == 200, first.get_json()
    tokens = first.get_json()
    assert client.get("/realms/jobmgr/userinfo", headers=bearer(tokens["access_token"])).status_code == 200
    replay = redeem(client, code, verifier)
    assert replay.status_code == 400
    assert replay.get_json()["error"] == "invalid_grant" and replay.get_json()["code"] == "code.reused"
    assert client.get("/realms/jobmgr/userinfo", headers=bearer(tokens["access_token"])).status_code == 401
    refresh = client.post(
        "/realms/jobmgr/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert refresh.status_code == 400 and refresh.get_json()["error"] == "invalid_grant"


def test_code_for_another_client_wrong_verifier_or_redirect_is_refused(client: FlaskClient) -> None:
    code, verifier = login_for_code(client)
    assert (
        redeem(client, code, verifier, client_id=OTHER, redirect_uri=OTHER_CALLBACK).get_json()["code"]
        == "code.invalid"
    )
    assert redeem(client, code, verifier, client_id="nobody").status_code == 401
    assert redeem(client, code, pkce()[0]).get_json()["code"] == "code.invalid"
    assert redeem(client, code, verifier, redirect_uri=CALLBACK + "?x=1").get_json()["code"] == "code.invalid"
    assert redeem(client, code, "short").get_json()["code"] == "code.invalid"
    # None of the refusals spent it: the rightful client still can.
    assert redeem(client, code, verifier).status_code == 200


def test_code_of_one_realm_is_unknown_in_another(client: FlaskClient) -> None:
    code, verifier = login_for_code(client)
    assert redeem(client, code, verifier, realm="cellB").get_json()["code"] == "code.invalid"


def test_s256_agrees_with_authlib() -> None:
    from authlib.oauth2.rfc7636 import create_s256_code_challenge

    verifier = pkce()[0]
    assert s256(verifier) == create_s256_code_challenge(verifier)
