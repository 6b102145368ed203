"""The one boundary where errors become HTTP responses. It renders; it does not classify.

Every jobsts error class carries its ``code``, its HTTP ``status`` and its RFC 6749 ``oauth_error``
(``realms.errors``). ``/api/v1`` and the discovery endpoints answer RFC 9457 problem+json with
the stable ``code``; the OAuth endpoints marked with ``oauth_endpoint`` (token, revoke), and
any ``OAuthRequestError``, answer an RFC 6749 §5.2 error object. A refused bearer credential
carries its RFC 6750 §3 challenge. Nothing returns a traceback.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import Flask, Response, jsonify, request
from sqlalchemy import exc as sa_exc
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from realms.errors import JobstsError, LoginFailed
from sts.db import DatabaseUnavailable
from sts.errors import AuthRequired, OAuthRequestError
from sts.http.context import request_context

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])
HTTP_CODES = {
    400: "request.invalid",
    401: "auth.required",
    403: "auth.forbidden",
    404: "not_found",
    405: "request.method",
    413: "request.too_large",
    415: "request.media_type",
}


def oauth_endpoint(view: F) -> F:
    """Decorator: every jobsts error of this view is answered in RFC 6749 §5.2 form."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        request_context().oauth_form = True
        return view(*args, **kwargs)

    wrapper.oauth_endpoint = True  # type: ignore[attr-defined]  # read by sts.http.text_inputs
    return cast(F, wrapper)


def problem(status: int, code: str, detail: str, **extra: Any) -> Response:
    """An RFC 9457 problem document with the jobsts ``code``."""
    body = {
        "type": f"https://jobsts.dev/errors#{code}",
        "title": code,
        "status": status,
        "code": code,
        "detail": detail,
        **extra,
    }
    response = jsonify(body)
    response.status_code = status
    response.content_type = "application/problem+json"
    return response


def _printable(text: str, limit: int) -> str:
    # RFC 6749 §5.2: error_description is limited to %x20-21 / %x23-5B / %x5D-7E.
    return "".join(ch for ch in text if 0x20 <= ord(ch) <= 0x7E and ch not in '"\\')[:limit]


def oauth_error(error: str, status: int, code: str, message: str) -> Response:
    """An RFC 6749 §5.2 error object; ``error_description`` starts with the stable jobsts code."""
    response = jsonify({"error": error, "error_description": _printable(f"{code}: {message}", 300), "code": code})
    response.status_code = status
    # RFC 6749 §5.1: responses carrying (or refusing) credentials must not be cached.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    if status == 401:
        # RFC 6749 §5.2: the challenge names the scheme the client authenticated with; a client
        # that authenticated in the body (private_key_jwt, or none) used no HTTP scheme.
        scheme = request.headers.get("Authorization", "").partition(" ")[0]
        if scheme.isalnum():
            response.headers["WWW-Authenticate"] = f'{scheme} realm="jobsts", error="invalid_client"'
    return response


def _oauth_status(error: JobstsError) -> int:
    # RFC 6749 §5.2: a failed client authentication is a 401; every other error keeps its status.
    return 401 if error.oauth_error == "invalid_client" else error.status


def _problem_for(error: JobstsError) -> Response:
    response = problem(error.status, error.code, error.message)
    # Why: RFC 6750 §3: a refused bearer credential says so in a challenge. A refused password
    # (credentials sent with a job) is not a bearer failure and gets none.
    if error.status == 401 and not isinstance(error, LoginFailed):
        if isinstance(error, AuthRequired):
            response.headers["WWW-Authenticate"] = 'Bearer realm="jobsts"'
        else:
            response.headers["WWW-Authenticate"] = (
                f'Bearer realm="jobsts", error="invalid_token", error_description="{_printable(error.code, 200)}"'
            )
    # RFC 6750 §3.1: a valid bearer token without the privilege needed is insufficient_scope.
    context = request_context()
    if error.status == 403 and (context.caller is not None or context.node is not None):
        response.headers["WWW-Authenticate"] = (
            f'Bearer realm="jobsts", error="insufficient_scope", error_description="{_printable(error.code, 200)}"'
        )
    return response


def render(error: JobstsError) -> Response:
    """The response for ``error`` in the current request."""
    if error.status >= 500:
        log.error("request failed: %s", error)
    if isinstance(error, OAuthRequestError) or request_context().oauth_form:
        return oauth_error(error.oauth_error, _oauth_status(error), error.code, error.message)
    return _problem_for(error)


def init_app(app: Flask) -> None:
    app.register_error_handler(JobstsError, render)

    @app.errorhandler(sa_exc.OperationalError)
    @app.errorhandler(sa_exc.InterfaceError)
    @app.errorhandler(sa_exc.TimeoutError)
    def _database_unavailable(error: Exception) -> Response:
        """A database that is down or restarting is a 503 ``db.unavailable`` on every endpoint
        (not a 500), and the pool reconnects once it is back."""
        log.warning("database unavailable: %s", type(error).__name__)
        failure = DatabaseUnavailable("the database is unavailable; retry shortly")
        return problem(failure.status, failure.code, failure.message)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        status = error.code or 500
        if isinstance(error, RequestEntityTooLarge) and request_context().oauth_form:
            return oauth_error("invalid_request", 413, "request.too_large", "the request body is too large")
        return problem(status, HTTP_CODES.get(status, "http.error"), error.description or error.name)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        # Why: a traceback in a response leaks internals; log it, answer a stable code.
        log.exception("unexpected error")
        return problem(500, "internal.error", "internal error; see the service log")
