"""The one boundary where jobsts errors become HTTP responses.

``/api/v1`` answers RFC 9457 problem+json with a stable ``code``; the OAuth2 endpoints
answer RFC 6749 §5.2 error objects (see ``sts.oauth_errors``). Nothing returns a traceback.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from sqlalchemy import exc as sa_exc
from werkzeug.exceptions import HTTPException

from realms.errors import ConfigError, InputError, JobstsError, UnavailableError

log = logging.getLogger(__name__)

# Status per error class; the most specific class listed wins. Packages add to this table.
STATUS_BY_ERROR: dict[type[JobstsError], int] = {
    InputError: 400,
    UnavailableError: 503,
    ConfigError: 500,
}


def _register_sts_statuses() -> None:
    from authz_tables.errors import AuthzDenied
    from sts.errors import NodeExists, NodeUnknown, RealmUnknown, UserUnknown

    STATUS_BY_ERROR.update({AuthzDenied: 403, RealmUnknown: 404, NodeUnknown: 404, UserUnknown: 404,
                            NodeExists: 409})


_register_sts_statuses()


def status_for(error: JobstsError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


def problem(status: int, code: str, detail: str, **extra: Any) -> Response:
    body = {"type": f"https://jobsts.dev/errors#{code}", "title": code, "status": status, "code": code,
            "detail": detail, **extra}
    response = jsonify(body)
    response.status_code = status
    response.content_type = "application/problem+json"
    return response


def init_app(app: Flask) -> None:
    @app.errorhandler(JobstsError)
    def _jobsts_error(error: JobstsError) -> Response:
        status = status_for(error)
        if status >= 500:
            log.error("request failed: %s", error)
        return problem(status, error.code, error.message)

    @app.errorhandler(sa_exc.OperationalError)
    @app.errorhandler(sa_exc.InterfaceError)
    @app.errorhandler(sa_exc.TimeoutError)
    def _database_unavailable(error: Exception) -> Response:
        """A database that is down or restarting is a 503 ``db.unavailable`` on every endpoint
        (not a 500), and the pool's pre-ping reconnects once it is back."""
        from sts.jobs.errors import JobStoreUnavailable

        log.warning("database unavailable: %s", type(error).__name__)
        failure = JobStoreUnavailable("the database is unavailable; retry shortly")
        return problem(503, failure.code, failure.message)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        status = error.code or 500
        code = {400: "request.invalid", 401: "auth.required", 403: "auth.forbidden", 404: "not_found",
                405: "request.method", 413: "request.too_large", 415: "request.media_type"}.get(status, "http.error")
        return problem(status, code, error.description or error.name)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        # Why: a traceback in a response leaks internals; log it, answer a stable code.
        log.exception("unexpected error")
        return problem(500, "internal.error", "internal error; see the service log")
