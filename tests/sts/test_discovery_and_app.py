"""Discovery, JWKS, health, OpenAPI, and app hardening (issuer from base_url, body cap, no tracebacks)."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from sts.services import Services
from tests.sts.conftest import decode_unverified, login

pytestmark = pytest.mark.db


def test_discovery_document(client: FlaskClient) -> None:
    response = client.get("/realms/cellB/.well-known/openid-configuration")
    assert response.status_code == 200 and "max-age" in response.headers["Cache-Control"]
    body = response.get_json()
    assert body["issuer"] == "https://sts.test/realms/cellB"
    assert body["token_endpoint"] == "https://sts.test/realms/cellB/token"
    assert body["jwks_uri"] == "https://sts.test/realms/cellB/jwks"
    assert "private_key_jwt" in body["token_endpoint_auth_methods_supported"]


def test_spoofed_host_never_changes_the_issuer(client: FlaskClient) -> None:
    headers = {"Host": "evil.test", "X-Forwarded-Host": "evil.test", "X-Forwarded-Proto": "http"}
    body = client.get("/realms/jobmgr/.well-known/openid-configuration", headers=headers).get_json()
    assert "evil" not in str(body)
    token = client.post(
        "/realms/jobmgr/token",
        headers=headers,
        data={"grant_type": "password", "username": "john", "password": "john-password"},
    ).get_json()["access_token"]
    assert decode_unverified(token)[1]["iss"] == "https://sts.test/realms/jobmgr"


def test_unknown_realm_discovery_is_404(client: FlaskClient) -> None:
    for path in ("/realms/nowhere/jwks", "/realms/nowhere/.well-known/openid-configuration"):
        response = client.get(path)
        assert response.status_code == 404 and response.get_json()["code"] == "realm.unknown"


def test_health(client: FlaskClient) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["checks"]["keys:jobmgr"] == "ok"


def test_debug_off_and_no_traceback(app: Flask, services: Services) -> None:
    assert app.debug is False
    client = app.test_client()
    services.keys._cache.clear()
    original = services.keys._load

    def broken(realm: str) -> object:
        raise RuntimeError("secret internal detail")

    services.keys._load = broken  # type: ignore[assignment,method-assign]
    try:
        response = client.get("/realms/jobmgr/jwks")
    finally:
        services.keys._load = original  # type: ignore[method-assign]
    assert response.status_code == 500
    assert response.get_json()["code"] == "internal.error"
    assert b"secret internal detail" not in response.data and b"Traceback" not in response.data


def test_api_body_cap(client: FlaskClient, admin_token: str) -> None:
    response = client.post(
        "/api/v1/nodes",
        data=b"{" + b" " * 200_000 + b"}",
        headers={"Authorization": f"Bearer {admin_token}", "Content-Type": "application/json"},
    )
    assert response.status_code == 413


def _flask_routes(app: Flask) -> set[tuple[str, str]]:
    routes = set()
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        for method in rule.methods or ():
            if method not in ("HEAD", "OPTIONS"):
                routes.add((method.lower(), path))
    return routes


def test_openapi_matches_the_routes(app: Flask) -> None:
    document = app.test_client().get("/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    documented = {(method, path) for path, operations in document["paths"].items() for method in operations}
    assert documented == _flask_routes(app)
    # The server's own refusals, before any route: described once, for every operation.
    assert {"HeadersTooLarge", "Malformed"} <= set(document["components"]["responses"])


def test_access_ids(client: FlaskClient, admin_token: str) -> None:
    response = client.get("/api/v1/access-ids/jobmgr/john", headers={"Authorization": f"Bearer {admin_token}"})
    assert response.status_code == 200
    body = response.get_json()
    assert body["access_id"] == "user:jobmgr/uid=john,ou=people,dc=jobmgr,dc=example"
    assert "group:jobmgr/cn=operators,ou=groups,dc=jobmgr,dc=example" in body["groups"]
    missing = client.get("/api/v1/access-ids/jobmgr/ghost", headers={"Authorization": f"Bearer {admin_token}"})
    assert missing.status_code == 404 and missing.get_json()["code"] == "user.unknown"
    john = login(client, "john")["access_token"]
    denied = client.get("/api/v1/access-ids/jobmgr/john", headers={"Authorization": f"Bearer {john}"})
    assert denied.status_code == 403 and denied.get_json()["code"] == "authz.denied"


def test_readyz_reports_a_missing_database(app: Flask, services: Services) -> None:
    client = app.test_client()
    services.db.engine.dispose()
    original_url = services.db.engine.url
    from sts.db import make_engine

    broken = make_engine("sqlite:////nonexistent-dir/x.db")
    services.db.engine, keep = broken, services.db.engine
    try:
        response = client.get("/readyz")
    finally:
        services.db.engine = keep
        broken.dispose()
    assert original_url == keep.url
    assert response.status_code == 503 and response.get_json()["checks"]["database"] == "unavailable"
