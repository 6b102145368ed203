"""Helpers that drive the real login page with Flask's test client, as a browser would."""

from __future__ import annotations

import base64
import hashlib
import secrets
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.sts.conftest import BASE_URL

CONSOLE = "jobsts-console"
CALLBACK = f"{BASE_URL}/console/callback"


class _Form(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}
        self.action: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "form":
            self.action = values.get("action")
        if tag == "input" and values.get("type") == "hidden" and values.get("name"):
            self.fields[str(values["name"])] = values.get("value") or ""


def form_fields(html: str) -> dict[str, str]:
    """The hidden fields of the login form (the request and its CSRF token)."""
    parser = _Form()
    parser.feed(html)
    return parser.fields


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_params(challenge: str, **overrides: Any) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": CONSOLE,
        "redirect_uri": CALLBACK,
        "scope": "openid profile",
        "state": "st-1",
        "nonce": "n-1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


def open_login(client: FlaskClient, params: dict[str, str], realm: str = "jobmgr") -> TestResponse:
    return client.get(f"/realms/{realm}/authorize?{urlencode(params)}", base_url=BASE_URL)


def submit_login(
    client: FlaskClient,
    page: TestResponse,
    username: str,
    password: str | None = None,
    realm: str = "jobmgr",
    **changes: str,
) -> TestResponse:
    fields = form_fields(page.get_data(as_text=True))
    fields.update(username=username, password=f"{username}-password" if password is None else password)
    fields.update(changes)
    return client.post(f"/realms/{realm}/authorize", data=fields, base_url=BASE_URL)


def code_of(response: TestResponse) -> str:
    assert response.status_code == 303, response.get_data(as_text=True)
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    return query["code"][0]


def login_for_code(
    client: FlaskClient, username: str = "john", realm: str = "jobmgr", **overrides: Any
) -> tuple[str, str]:
    """Run the login page; returns (code, verifier)."""
    verifier, challenge = pkce()
    page = open_login(client, authorize_params(challenge, **overrides), realm)
    assert page.status_code == 200, page.get_data(as_text=True)
    return code_of(submit_login(client, page, username, realm=realm)), verifier


def redeem(client: FlaskClient, code: str, verifier: str, realm: str = "jobmgr", **overrides: str) -> TestResponse:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CALLBACK,
        "client_id": CONSOLE,
        "code_verifier": verifier,
    }
    data.update(overrides)
    return client.post(f"/realms/{realm}/token", data=data, base_url=BASE_URL)
