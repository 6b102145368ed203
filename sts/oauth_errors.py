"""RFC 6749 §5.2 error responses for the OAuth2 endpoints (token, introspect, revoke).

``error`` is the standard name; ``error_description`` starts with the stable jobsts code
(``login.failed: invalid username or password``), also given alone as ``code``.
"""

from __future__ import annotations

from flask import Response, jsonify

from realms.errors import InputError, JobstsError, LoginFailed, UnavailableError
from realms.tokens.errors import TokenError
from sts.errors import (
    AssertionInvalid,
    GrantInvalid,
    NodeUnknown,
    RealmUnknown,
    RefreshTokenInvalid,
)


def _printable(text: str) -> str:
    # RFC 6749 §5.2: error_description is limited to %x20-21 / %x23-5B / %x5D-7E.
    return "".join(ch for ch in text if 0x20 <= ord(ch) <= 0x7E and ch not in '"\\')[:300]


def oauth_error(error: str, status: int, code: str, message: str) -> Response:
    response = jsonify({"error": error, "error_description": _printable(f"{code}: {message}"), "code": code})
    response.status_code = status
    # RFC 6749 §5.1: responses carrying (or refusing) credentials must not be cached.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="jobsts", error="invalid_client"'
    return response


def classify(exc: JobstsError) -> tuple[str, int]:
    """The OAuth2 ``error`` and HTTP status for a jobsts error raised by a grant."""
    if isinstance(exc, GrantInvalid):
        return str(exc.data.get("error", "invalid_request")), int(exc.data.get("status", 400))
    if isinstance(exc, AssertionInvalid | NodeUnknown | TokenError):
        return "invalid_client", 401
    if isinstance(exc, LoginFailed | RefreshTokenInvalid):
        return "invalid_grant", 400
    if isinstance(exc, RealmUnknown):
        return "invalid_request", 404
    if isinstance(exc, UnavailableError):
        return "temporarily_unavailable", 503
    if isinstance(exc, InputError):
        return "invalid_request", 400
    return "server_error", 500


def error_response(exc: JobstsError) -> Response:
    error, status = classify(exc)
    return oauth_error(error, status, exc.code, exc.message)
