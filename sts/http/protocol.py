"""uvicorn's httptools protocol with a bounded request head (RFC 6585 §5: 431; at most
``HEAD_TIMEOUT`` seconds to send it) and problem documents for the requests its parser refuses
(RFC 9112; code ``request.malformed``).

uvicorn keeps every header it is sent: a request whose head never ends grows the worker without
limit, and one with many repeated headers is joined into the WSGI environ one concatenation at a
time (a2wsgi), quadratic work on the event loop that freezes every request and agent wait of the
worker. This protocol counts the head as it arrives and answers 431 with a problem document
(code ``request.headers_too_large``) past ``MAX_HEAD_BYTES`` or ``MAX_HEADER_FIELDS``, as
gunicorn's own workers do with ``limit_request_fields`` and ``limit_request_field_size``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from realms.text import is_ascii_number

# A head holds a request line and headers: tokens and a session cookie fit many times over.
MAX_HEAD_BYTES = 64 * 1024
MAX_HEADER_FIELDS = 100
# Seconds a connection may take to send a whole request head, from its opening or from the
# first byte of each request (nginx's client_header_timeout is 60 s; agents send theirs at once).
HEAD_TIMEOUT = 30
HEAD_TIMEOUT_ENV = "JOBSTS_REQUEST_HEAD_TIMEOUT"


@functools.cache
def head_timeout() -> float:
    """``JOBSTS_REQUEST_HEAD_TIMEOUT`` (whole seconds, at least 1) or ``HEAD_TIMEOUT``; read once
    per process, not on every request."""
    raw = os.environ.get(HEAD_TIMEOUT_ENV, "")
    return float(raw) if is_ascii_number(raw) and int(raw) >= 1 else float(HEAD_TIMEOUT)


def _problem(status: int, code: str, detail: str) -> bytes:
    """An RFC 9457 problem document, as ``sts.http.errors.problem`` renders one inside the app."""
    document = {"type": f"https://jobsts.dev/errors#{code}", "title": code, "status": status, "code": code}
    return json.dumps({**document, "detail": detail}).encode("ascii")


HEAD_TOO_LARGE = _problem(
    431,
    "request.headers_too_large",
    f"the request line and headers must stay within {MAX_HEAD_BYTES} bytes and {MAX_HEADER_FIELDS} header fields",
)
MALFORMED = _problem(
    400,
    "request.malformed",
    "the request is not valid HTTP/1.1 (RFC 9112): a malformed request line or header, or an ambiguous body "
    "length (two Content-Length headers, Content-Length with Transfer-Encoding, a Transfer-Encoding other "
    "than chunked)",
)
STATUS_LINES = {400: b"HTTP/1.1 400 Bad Request\r\n", 431: b"HTTP/1.1 431 Request Header Fields Too Large\r\n"}


class HeadTooLarge(Exception):
    """Raised inside a parser callback to stop parsing a head that is over the limits."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` that refuses a request head over ``MAX_HEAD_BYTES`` bytes or
    ``MAX_HEADER_FIELDS`` fields with 431, before the app sees it, and closes the connection; a
    request the parser refuses gets 400 ``request.malformed`` instead of uvicorn's plain text."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._raw = 0  # bytes read while this head was still incomplete
        self._parsed = 0  # request target and header fields parsed so far
        self._fields = 0
        self._too_large = False
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def _start_head_timer(self) -> None:
        # Why: a connection that sends its head slowly, or nothing at all, holds a socket and a
        # file descriptor for good (slowloris); a whole head gets HEAD_TIMEOUT seconds, then the
        # connection is closed.
        self._stop_head_timer()
        self._head_timer = self.loop.call_later(head_timeout(), self._head_too_slow)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._too_large:
            return
        in_head = self._in_head
        super().data_received(data)
        if in_head and self._in_head:
            # Why count raw bytes too: the parser buffers a header until its line ends, so a
            # single endless header would never reach ``on_header``.
            self._raw += len(data)
            if self._raw > MAX_HEAD_BYTES:
                self._refuse()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._raw, self._parsed, self._fields = True, 0, 0, 0
        self._start_head_timer()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields += 1
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._stop_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head, self._raw, self._parsed, self._fields = True, 0, 0, 0

    def _count(self, size: int) -> None:
        self._parsed += size
        if self._parsed > MAX_HEAD_BYTES or self._fields > MAX_HEADER_FIELDS:
            self._too_large = True
            raise HeadTooLarge  # the parser stops; uvicorn then calls send_400_response

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request the parser refused: a problem document with a code."""
        if self._too_large:
            self._refuse()
        else:
            self._answer(400, MALFORMED)

    def _refuse(self) -> None:
        self._too_large = True
        self._answer(431, HEAD_TOO_LARGE)

    def _answer(self, status: int, problem: bytes) -> None:
        """Write ``problem`` and close: after a refused head the connection cannot be trusted."""
        if self.transport.is_closing():
            return
        head = (
            STATUS_LINES[status] + b"content-type: application/problem+json\r\n"
            b"content-length: " + str(len(problem)).encode("ascii") + b"\r\n"
            b"connection: close\r\n\r\n"
        )
        self.transport.write(head + problem)
        self.transport.close()
