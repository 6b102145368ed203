"""Every text input of a request is valid UTF-8 text, or the request is refused ``request.text``.

Werkzeug decodes the query string and form bodies with replacement characters, headers as
Latin-1, and JSON's ``"\\ud800"`` escapes into unpaired surrogates. None of that reaches a view
here: the raw bytes of the path, query string, headers, form body and JSON body are checked
once, strictly, before any view runs (RFC 3629 §3, RFC 8259 §8.1, RFC 3986 §2.5).
"""

from __future__ import annotations

import json
from typing import ClassVar
from urllib.parse import parse_qsl

from flask import Flask, current_app, request

from realms.errors import InputError
from realms.text import check_tree, check_utf8_bytes
from sts.http.auth import verify_agent_signature
from sts.http.bodies import settle_chunked_body
from sts.http.context import request_context


class RequestTextInvalid(InputError):
    """A path, query parameter, header, form field or JSON string that is not valid UTF-8 text."""

    code: ClassVar[str] = "request.text"


def _refuse(message: str) -> RequestTextInvalid:
    return RequestTextInvalid(message)


def _check_urlencoded(raw: str, what: str) -> None:
    # Why the shortcut is the same check: without "%" nothing is percent-decoded, so every
    # name and value is a piece of ``raw`` itself, which is ASCII, hence valid UTF-8.
    if raw.isascii() and "%" not in raw:
        return
    try:
        # Why: strict decoding of each percent-decoded name and value, where Werkzeug would
        # silently put U+FFFD in place of the bad bytes.
        parse_qsl(raw, keep_blank_values=True, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise _refuse(f"{what}: a parameter is not valid UTF-8 after percent-decoding") from None


def check_request_text() -> None:
    """``before_request``: refuse the request if any of its text inputs is not UTF-8 text."""
    view = current_app.view_functions.get(request.endpoint or "")
    limit = getattr(view, "max_body_bytes", None)
    if isinstance(limit, int):
        length, usual = request.content_length, request.max_content_length or 0
        if limit > usual and (length is None or length > usual):
            # Why: only agents send such bodies (batches of results); without a valid agent token,
            # anyone could make the STS read, decode and parse megabytes before the view refuses.
            verify_agent_signature()
        # A view that takes larger bodies says so on itself; the limit must be set before the
        # first read of the body, which happens here.
        request.max_content_length = limit
    if view is not None and getattr(view, "oauth_endpoint", False):
        # Why: the OAuth endpoints answer every refusal in RFC 6749 §5.2 form, this one included.
        request_context().oauth_form = True
    settle_chunked_body(request.environ, request.max_content_length)
    environ = request.environ
    check_utf8_bytes(str(environ.get("PATH_INFO", "")).encode("latin-1", "replace"), "path", _refuse)
    query = check_utf8_bytes(request.query_string, "query string", _refuse)
    _check_urlencoded(query, "query string")
    for name, value in request.headers.items():
        check_utf8_bytes(value.encode("latin-1", "replace"), f"header {name[:40]}", _refuse)
    mimetype = request.mimetype
    if mimetype == "application/x-www-form-urlencoded":
        body = check_utf8_bytes(request.get_data(cache=True), "form body", _refuse)
        _check_urlencoded(body, "form body")
    elif mimetype == "application/json" or mimetype.endswith("+json"):
        body = check_utf8_bytes(request.get_data(cache=True), "JSON body", _refuse)
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            return  # the view answers malformed JSON with its own code
        check_tree(document, "JSON body", _refuse)


def init_app(app: Flask) -> None:
    app.before_request(check_request_text)
