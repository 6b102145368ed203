"""A chunked request body (no ``Content-Length``) becomes an ordinary body before any view reads it.

Werkzeug reads no body at all without a ``Content-Length`` unless the server marks the stream as
terminated (gunicorn always does; ``sts.http.wsgi_bridge`` does for chunked requests), and then
stops reading silently at the size limit: a chunked login, job or revocation over the limit
would reach its view cut short instead of refused. Here the body is read whole, at most one byte
past the limit, and served to the view with its length (RFC 9112 §7.1: the length is known once
the last chunk arrived).
"""

from __future__ import annotations

import io
from typing import Any

from werkzeug.exceptions import RequestEntityTooLarge


def settle_chunked_body(environ: dict[str, Any], limit: int | None) -> None:
    """Read a terminated body without ``Content-Length`` whole; over ``limit`` bytes, 413."""
    if not environ.get("wsgi.input_terminated") or environ.get("CONTENT_LENGTH"):
        return
    stream = environ["wsgi.input"]
    body = stream.read() if limit is None else stream.read(limit + 1)
    if limit is not None and len(body) > limit:
        # Why: a body cut at the limit could still parse (a form loses its last fields).
        raise RequestEntityTooLarge()
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    # Werkzeug ignores a Content-Length beside a chunked Transfer-Encoding: the body is now whole.
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    del environ["wsgi.input_terminated"]
