"""Flask under the ASGI server: each request on a thread pool, with one hand-off each way.

a2wsgi's ``WSGIMiddleware`` lets the Flask thread pull the body and push the response through
the event loop, and the thread blocks on each of those hops (the body, the status line, each
chunk, the end): four waits per request for the loop to come round, under load a quarter of a
submit's time. The STS's requests and answers are small and never streamed, so this bridge
reads a body up to ``preload_limit`` on the loop before the thread starts (a chunked one too,
which then reaches Flask with its length), and the thread hands back the whole answer when it
ends. A larger body goes through a2wsgi as before, so its size limit is still Flask's
(``MAX_CONTENT_LENGTH``, or a view's ``max_body_bytes``: enforced before a byte is read, or
for a chunked body as it is read). Only an agent, past its token check, can hold a Flask thread
by sending a body slowly.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import io
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

from a2wsgi import WSGIMiddleware
from a2wsgi.wsgi import build_environ

from realms.text import is_ascii_number

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Answer = tuple[int, list[tuple[bytes, bytes]], bytes]


def _content_length(scope: Scope) -> int | None:
    """The declared body length; ``None`` when the body is chunked or its length is not a plain number."""
    length: int | None = 0
    for name, value in scope.get("headers", ()):
        if name == b"transfer-encoding":
            return None
        if name == b"content-length":
            length = int(value) if is_ascii_number(value.decode("latin-1")) and length == 0 else None
    return length


def _chunked_bodies_read(app: WsgiApp) -> WsgiApp:
    """``app`` reading a chunked body to its end, within the view's size limit (Werkzeug
    reads no body at all without a Content-Length unless the server marks the stream as
    terminated; with the mark it enforces ``max_content_length`` as it reads)."""

    def terminated(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if "chunked" in str(environ.get("HTTP_TRANSFER_ENCODING", "")).lower():
            # Why: otherwise a chunked job, login or batch of results reads as an empty body,
            # and what it carried is silently dropped instead of read or refused.
            environ["wsgi.input_terminated"] = True
        return app(environ, start_response)

    return terminated


def _replayed(prefix: bytes, receive: Receive) -> Receive:
    """``receive`` with ``prefix``, the part of the body already read, delivered first."""
    pending = [prefix]

    async def replay() -> MutableMapping[str, Any]:
        if pending:
            return {"type": "http.request", "body": pending.pop(), "more_body": True}
        return await receive()

    return replay


class BufferedWsgi:
    """ASGI app over a WSGI app: a small body is read on the loop, the answer is sent once the
    thread is done; other requests go to a2wsgi."""

    def __init__(self, app: WsgiApp, threads: int, preload_limit: int) -> None:
        self.app = app
        self.preload_limit = preload_limit
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="WSGI")
        self.streaming = WSGIMiddleware(_chunked_bodies_read(app), workers=threads)  # type: ignore[arg-type]
        self.streaming.executor = self.executor  # one pool of Flask threads, whichever bridge

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        length = _content_length(scope)
        if scope["type"] != "http" or (length is not None and length > self.preload_limit):
            await self.streaming(scope, receive, send)  # type: ignore[arg-type]
            return
        # Why a chunked body too is read here, on the loop: a client that sends it slowly (or
        # never ends it) must not hold a Flask thread; a few such would starve /healthz.
        body = bytearray()
        ended = length == 0
        while not ended and len(body) <= (self.preload_limit if length is None else length):
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before its body arrived
            body += message.get("body", b"")
            ended = not message.get("more_body", False)
        if not ended:
            # A chunked body past the preload limit: what was read, then the rest, through
            # a2wsgi (the view's own limit applies as it is read; sts.http.bodies).
            await self.streaming(scope, _replayed(bytes(body), receive), send)  # type: ignore[arg-type]
            return
        environ = cast(dict[str, Any], build_environ(scope, io.BytesIO(bytes(body))))  # type: ignore[arg-type]
        if length is None:
            # The chunked body is whole: from here on it is an ordinary body of known length.
            environ["CONTENT_LENGTH"] = str(len(body))
            environ.pop("HTTP_TRANSFER_ENCODING", None)
        run = functools.partial(contextvars.copy_context().run, self._call, environ)
        status, headers, content = await asyncio.get_running_loop().run_in_executor(self.executor, run)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    def _call(self, environ: dict[str, Any]) -> Answer:
        """Run the WSGI app to completion on this thread; its whole answer."""
        started: list[Any] = []
        chunks: list[bytes] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], None]:
            if exc_info is not None and started:
                raise exc_info[1].with_traceback(exc_info[2])
            started[:] = [status, headers]
            return chunks.append

        iterable = self.app(environ, start_response)
        try:
            chunks.extend(iterable)
        finally:
            close = getattr(iterable, "close", None)
            if close is not None:
                close()
        status, headers = started
        encoded = [(name.strip().lower().encode("latin-1"), value.strip().encode("latin-1")) for name, value in headers]
        return int(status.split(" ", 1)[0]), encoded, b"".join(chunks)
