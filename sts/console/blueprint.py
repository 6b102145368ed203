"""The console's blueprint: security headers on every answer, errors as pages, and sign-in.

Why these headers: the pages show untrusted text (job specs and output), so even if escaping
failed somewhere, the Content-Security-Policy runs no inline script and no script from
anywhere but this origin (the console ships none), forms post only here, and no other site may
frame a page (clickjacking). Nothing is cached, and no URL leaks through Referer.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar, cast
from urllib.parse import urlencode

from flask import Blueprint, Response, g, make_response, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from realms.errors import JobstsError
from sts.console import sessions
from sts.console.error_docs import explain, spans
from sts.console.errors import ConsoleSignedOut
from sts.http.errors import HTTP_CODES
from sts.services import current_services

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates", static_folder="static")


@bp.after_request
def _security_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    if request.endpoint != "console.static":
        response.headers["Cache-Control"] = "no-store"
    return response


def page(template: str, status: int = 200, **context: Any) -> Response:
    """A console page: HTML, autoescaped (Jinja's default for .html templates)."""
    context.setdefault("signed_in", g.get("console_signed_in"))
    context.setdefault("markdown_spans", spans)
    body = render_template(template, **context)
    response = make_response(body, status)
    response.content_type = "text/html; charset=utf-8"
    return response


@bp.errorhandler(JobstsError)
def _refusal(error: JobstsError) -> BaseResponse:
    if isinstance(error, ConsoleSignedOut) and request.method == "GET":
        return redirect(url_for("console.sign_in") + "?" + urlencode({"next": request.full_path.rstrip("?")}), 303)
    status = error.status if 400 <= error.status < 600 else 500
    if status >= 500:
        log.warning("console: %s", error)
    return page("console/error.html", status, code=error.code, message=error.message, doc=explain(error.code))


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> BaseResponse:
    status = error.code or 500
    return page(
        "console/error.html",
        status,
        code=HTTP_CODES.get(status, "http.error"),
        message=error.description or "",
        doc=None,
    )


def signed_in(view: F) -> F:
    """Decorator: the view runs as the session's caller; state-changing requests need the CSRF token."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        services = current_services()
        g.console_signed_in = sessions.current(services, request)
        if request.method not in ("GET", "HEAD"):
            sessions.check_csrf(services, request)
        return view(*args, **kwargs)

    return cast(F, wrapper)
