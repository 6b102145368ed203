"""Signing in to the console: the authorization code flow with PKCE (RFC 6749 §4.1, RFC 7636)
as the first-party public client ``jobsts-console``, and signing out.

Nothing secret travels in a URL. The browser gets a short-lived, HttpOnly, SameSite=Strict
``jobsts_console_login`` cookie naming the realm, a random sign-in id and the page to return
to; ``state``, the PKCE ``code_verifier`` and the ``nonce`` are MACs of that cookie under the
master key, so they need no storage and only this browser's callback fits them. The code is
redeemed in-process by the token endpoint's own grant (same checks as ``POST /token``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from urllib.parse import urlencode, urlsplit

from flask import g, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from sts.console import sessions
from sts.console.blueprint import bp, page, signed_in
from sts.console.errors import ConsoleLoginInvalid
from sts.http.context import request_context
from sts.oauth.clients import CONSOLE_CALLBACK_PATH, CONSOLE_CLIENT_ID
from sts.oauth.grants import GRANTS
from sts.observability import audit
from sts.services import Services, current_services

LOGIN_COOKIE = "jobsts_console_login"
LOGIN_SECONDS = 600
MAX_NEXT = 512
DEFAULT_NEXT = "/console/jobs"


def safe_next(value: str | None) -> str:
    """A console path to return to after sign-in, or the jobs page.

    Why: a redirect target taken from the query string is an open redirector unless it is
    pinned to this console: only a path below ``/console/``, no scheme, no host, no ``//`` or
    backslash a browser would read as another host, no control characters."""
    if not value or len(value) > MAX_NEXT or not value.isprintable() or "\\" in value:
        return DEFAULT_NEXT
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not value.startswith("/console/") or value.startswith("//"):
        return DEFAULT_NEXT
    return value


def _mac(services: Services, label: str, cookie: str) -> str:
    digest = services.master_key.mac(f"console-login-{label}", cookie.encode())
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _redirect(location: str) -> BaseResponse:
    response = BaseResponse(status=303, headers={"Location": location})
    return response


@bp.get("/")
def home() -> BaseResponse:
    return _redirect(url_for("console.jobs"))


@bp.get("/login")
def sign_in() -> BaseResponse:
    """The console's sign-in page: one button per hosted realm."""
    services = current_services()
    target = safe_next(request.args.get("next"))
    return page("console/sign_in.html", realms=sorted(services.config.realms), next=target)


@bp.post("/login")
def begin() -> BaseResponse:
    """Start the code flow for the chosen realm: set the sign-in cookie and go to its login page."""
    services = current_services()
    realm = request.form.get("realm", "")
    services.config.hosted_realm(realm)
    target = safe_next(request.form.get("next"))
    cookie = base64.urlsafe_b64encode(json.dumps([realm, secrets.token_urlsafe(24), target]).encode()).decode()
    params = {
        "response_type": "code",
        "client_id": CONSOLE_CLIENT_ID,
        "redirect_uri": services.config.base_url + CONSOLE_CALLBACK_PATH,
        "scope": "openid profile",
        "state": _mac(services, "state", cookie),
        "nonce": _mac(services, "nonce", cookie),
        "code_challenge": _challenge(_mac(services, "verifier", cookie)),
        "code_challenge_method": "S256",
    }
    response = _redirect(f"{services.config.issuer(realm)}/authorize?{urlencode(params)}")
    response.set_cookie(
        LOGIN_COOKIE,
        cookie,
        max_age=LOGIN_SECONDS,
        httponly=True,
        secure=sessions.secure_cookies(services.config.base_url),
        samesite="Strict",
        path="/console",
    )
    return response


def _pending(services: Services) -> tuple[str, str, str]:
    """The sign-in this browser started: (cookie, realm, next); checks ``state`` and ``iss``."""
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    try:
        realm, _, target = json.loads(base64.urlsafe_b64decode(cookie.encode()))
        services.config.hosted_realm(str(realm))
    except Exception:  # any malformed cookie is the same refusal
        raise ConsoleLoginInvalid("no sign-in was started in this browser, or it took too long; start again") from None
    # Why: the state ties the callback to this browser's sign-in (RFC 6749 §10.12), and the
    # issuer to the realm it started with (RFC 9207: no mix-up between realms).
    if not hmac.compare_digest(_mac(services, "state", cookie), request.args.get("state", "")):
        raise ConsoleLoginInvalid("the sign-in answer does not belong to the sign-in this browser started")
    if request.args.get("iss") != services.config.issuer(realm):
        raise ConsoleLoginInvalid(f"the sign-in answer did not come from realm {realm}")
    return cookie, str(realm), safe_next(str(target))


@bp.get("/callback")
def callback() -> BaseResponse:
    """The redirect URI: redeem the code with the PKCE verifier and start a session."""
    services = current_services()
    cookie, realm, target = _pending(services)
    if "error" in request.args:
        raise ConsoleLoginInvalid(
            f"realm {realm} refused the sign-in: {request.args.get('error', '')[:64]} "
            f"{request.args.get('error_description', '')[:200]}".strip()
        )
    form = {
        "grant_type": "authorization_code",
        "code": request.args.get("code", ""),
        "redirect_uri": services.config.base_url + CONSOLE_CALLBACK_PATH,
        "client_id": CONSOLE_CLIENT_ID,
        "code_verifier": _mac(services, "verifier", cookie),
    }
    tokens = GRANTS["authorization_code"](services, realm, form, request_context().client_address).issue()
    # Why: a sign-in always gets a fresh session id, and a session this browser still had is
    # ended (its refresh token revoked) rather than left behind.
    sessions.end(services, request.cookies.get(sessions.COOKIE, ""))
    session_id, subject = sessions.start(services, realm, tokens, int(time.time()))
    audit.record("console.signed_in", actor=subject, realm=realm)
    response = _redirect(target)
    sessions.set_cookie(response, services, session_id)
    response.delete_cookie(LOGIN_COOKIE, path="/console")
    return response


@bp.post("/logout")
@signed_in
def sign_out() -> BaseResponse:
    """Sign out (CSRF-checked by ``signed_in``): revoke the refresh token and end the session."""
    services = current_services()
    sessions.end(services, request.cookies.get(sessions.COOKIE, ""))
    audit.record("console.signed_out", actor=str(g.console_signed_in.caller.access_id))
    response = page("console/signed_out.html", signed_in=None)
    sessions.clear_cookie(response, services)
    return response
