"""The authorization endpoint (RFC 6749 §3.1, §4.1; PKCE RFC 7636; OpenID Connect Core
§3.1.2) and its login page.

``GET /realms/<realm>/authorize`` shows the login page; the form posts back to the same URL,
the user is checked by the one login service (``sts.oauth.login``, same throttle as the
password grant), and the browser goes to the client's redirect URI with a one-time code.
The page runs no script and may not be framed; see docs/security.md, "Login page".
"""

from __future__ import annotations

import secrets
import time
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Blueprint, Response, make_response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from realms.errors import LoginFailed
from sts.http.context import request_context
from sts.oauth import authorization_codes
from sts.oauth.authorization_codes import CodeGrantRequest
from sts.oauth.authorization_request import (
    AuthorizationRequest,
    AuthorizationRequestInvalid,
    LoginFormForged,
    RedirectError,
    check_csrf,
    csrf_token,
    parse,
)
from sts.observability import audit
from sts.observability.metrics import LOGINS
from sts.services import Services, current_services

R = TypeVar("R", bound=BaseResponse)
bp = Blueprint("authorize", __name__, template_folder="templates", static_folder="static", static_url_path="/oauth")
BROWSER_COOKIE = "jobsts_authorize"
MAX_FORM_FIELD = 4096


def _security_headers(response: R, form_target: str | None = None) -> R:
    """Why: no script at all, no framing (clickjacking), nothing cached or leaked by Referer.
    ``form-action`` allows the redirect after the post (browsers apply it to redirects)."""
    targets = "'self'" + (f" {form_target}" if form_target else "")
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; style-src 'self'; img-src 'self'; form-action {targets}; "
        "frame-ancestors 'none'; base-uri 'none'"
    )
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def _origin(uri: str) -> str:
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}"


def _page(realm: str, status: int, *, fatal: str | None = None, **context: Any) -> Response:
    values: dict[str, Any] = {"username": "", "error": None, **context}
    body = render_template(
        "login.html",
        realm=realm,
        fatal=fatal,
        css_url=url_for("authorize.static", filename="login.css"),
        action=url_for("authorize.authorize", realm=realm),
        **values,
    )
    response = make_response(body, status)
    response.content_type = "text/html; charset=utf-8"
    return response


def _form_page(
    services: Services, authz: AuthorizationRequest, *, error: str | None = None, username: str = ""
) -> Response:
    secret = request.cookies.get(BROWSER_COOKIE) or secrets.token_urlsafe(32)
    response = _page(
        authz.realm,
        200,
        client_id=authz.client_id,
        hidden=authz.hidden_fields(),
        csrf=csrf_token(services.master_key, secret, authz),
        error=error,
        username=username,
    )
    # Why: the CSRF secret lives in an HttpOnly, SameSite=Strict cookie that another site
    # can neither read nor send; the form's token is a MAC over it and the request.
    response.set_cookie(
        BROWSER_COOKIE,
        secret,
        httponly=True,
        secure=services.config.base_url.startswith("https://"),
        samesite="Strict",
        path=f"/realms/{authz.realm}/authorize",
    )
    return _security_headers(response, _origin(authz.redirect_uri))


def _to_client(authz: AuthorizationRequest, issuer: str, **params: str) -> BaseResponse:
    response = redirect(authz.redirect(issuer, **params), code=303)
    return _security_headers(response)


def _params() -> dict[str, str]:
    source = request.form if request.method == "POST" else request.args
    return {name: source.get(name, "")[:MAX_FORM_FIELD] for name in source}


@bp.route("/realms/<realm>/authorize", methods=["GET", "POST"])
def authorize(realm: str) -> BaseResponse:
    services = current_services()
    services.config.hosted_realm(realm)
    issuer = services.config.issuer(realm)
    params = _params()
    try:
        authz = parse(realm, params, services.config.clients)
    except AuthorizationRequestInvalid as error:
        # Why: an unknown client or redirect URI is never redirected to (open redirector).
        return _security_headers(_page(realm, 400, fatal=f"{error.code}: {error.message}"))
    except RedirectError as failure:
        return _to_client(
            failure.request, issuer, error=failure.error.error, error_description=failure.error.description
        )
    if request.method == "GET":
        return _form_page(services, authz)
    try:
        check_csrf(services.master_key, request.cookies.get(BROWSER_COOKIE), params.get("csrf_token", ""), authz)
    except LoginFormForged as error:
        audit.record("login", outcome="csrf", realm=realm, code=error.code, client=authz.client_id)
        return _security_headers(_page(realm, 400, fatal=f"{error.code}: {error.message}"))
    username = params.get("username", "")
    try:
        principal = services.login.login(realm, username, params.get("password", ""), request_context().client_address)
    except LoginFailed as failure:
        outcome = getattr(failure, "outcome", None) or "failed"
        LOGINS.labels(realm, outcome).inc()
        audit.record(
            "login", outcome=outcome, realm=realm, code=failure.code, username=username, client=authz.client_id
        )
        return _form_page(services, authz, error=failure.message, username=username[:256])
    LOGINS.labels(realm, "ok").inc()
    audit.record(
        "login", actor=str(principal.access_id), realm=realm, username=principal.username, client=authz.client_id
    )
    grant = CodeGrantRequest(
        realm=realm,
        client_id=authz.client_id,
        redirect_uri=authz.redirect_uri,
        code_challenge=authz.code_challenge,
        nonce=authz.nonce,
        scope=authz.scope,
        subject=str(principal.access_id),
        username=principal.username,
        groups=tuple(sorted(str(g) for g in principal.groups if g.realm == realm)),
        auth_time=int(time.time()),
    )
    with services.db.session() as session:
        code = authorization_codes.issue(session, grant)
    return _to_client(authz, issuer, code=code)
