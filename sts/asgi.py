"""The ASGI entry of the STS: the Flask app in a thread pool, and one native route where agents
wait for work without holding a thread (``sts.jobs.wait``).

Served by uvicorn: ``jobsts serve --production`` runs gunicorn with ``Worker`` below (one event
loop per worker process), or directly::

    JOBSTS_CONFIG=/etc/jobsts/sts.toml gunicorn -c python:sts.gunicorn_conf 'sts.asgi:app'

Every request but ``GET /api/v1/agent/wait`` goes to Flask (``sts.http.wsgi_bridge``), on a pool of
``JOBSTS_GUNICORN_THREADS`` threads: logins, submits and health checks never queue behind
waiting agents, because a waiting agent is one asyncio future and one socket, nothing more.
See docs/architecture.md ("Agents wait on an event loop") for why this and not gevent or push.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flask import Flask

from realms.text import is_ascii_number
from sts.collector_pauses import FrozenSurvivors
from sts.http.protocol import BoundedHttpToolsProtocol
from sts.http.redaction import path_only
from sts.http.wsgi_bridge import BufferedWsgi
from sts.jobs.wait import WAIT_PATH, AgentWaits, Receive, Scope, Send
from sts.wait_listener import on_wait_listener, wait_port

DEFAULT_THREADS = 8
# Seconds a stopping server lets open requests finish; waiting agents are then cut off and
# reconnect (to another replica behind the load balancer).
SHUTDOWN_GRACE = 5
# What the agent-wait listener answers (``sts.wait_listener``): the wait, and a load balancer's checks.
WAIT_LISTENER_PATHS = frozenset({WAIT_PATH, "/healthz", "/readyz"})
WAIT_LISTENER_ONLY = (
    f"this is the agent-wait listener: it serves only GET {WAIT_PATH}, /healthz and /readyz; use the API address"
)


def flask_threads() -> int:
    raw = os.environ.get("JOBSTS_GUNICORN_THREADS", "")
    return int(raw) if is_ascii_number(raw) and int(raw) > 0 else DEFAULT_THREADS


class PathOnlyAccessLog(logging.Filter):
    """uvicorn's access log with the path instead of the full target (no query string)."""

    def filter(self, record: logging.LogRecord) -> bool:
        # Why: a query string may carry a token or code (RFC 6750 §5.3); log only the path.
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], path_only(args[2]), *args[3:])
        return True


class StsAsgi:
    """Routes ``GET /api/v1/agent/wait`` to ``AgentWaits`` and everything else to Flask; on the
    agent-wait listener (``sts.wait_listener``), only the wait and the health checks."""

    def __init__(self, app: Flask, threads: int | None = None) -> None:
        self.flask = app
        # A body up to the app's own limit is read before Flask runs (larger ones stream as before).
        self.wsgi = BufferedWsgi(app, threads or flask_threads(), int(app.config["MAX_CONTENT_LENGTH"] or 0))
        # Token checks and the fallback poll of waiting agents; never the Flask pool.
        self.wait_threads = ThreadPoolExecutor(max_workers=4, thread_name_prefix="jobsts-wait")
        self.waits = AgentWaits(app, self.wait_threads)
        self.collector = FrozenSurvivors()
        self._collector_task: asyncio.Task[None] | None = None
        self.wait_port = wait_port()
        logging.getLogger("uvicorn.access").addFilter(PathOnlyAccessLog())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http" and scope.get("path") == WAIT_PATH:
            await self.waits.handle(scope, receive, send)
        elif (
            kind == "http" and scope.get("path") not in WAIT_LISTENER_PATHS and on_wait_listener(scope, self.wait_port)
        ):
            # Why: the wait listener is the agents' narrow door; logins and the API stay on theirs.
            await self.waits.refusal(None, 404, "not_found", WAIT_LISTENER_ONLY).send(send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        else:
            await self.wsgi(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message: MutableMapping[str, Any] = await receive()
            if message["type"] == "lifespan.startup":
                await self.waits.start()
                self.collector.start()
                self._collector_task = asyncio.create_task(self.collector.run())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._collector_task is not None:
                    self._collector_task.cancel()
                await self.waits.stop()
                self.wait_threads.shutdown(wait=False, cancel_futures=True)
                await send({"type": "lifespan.shutdown.complete"})
                return


def build(config: Any = None) -> StsAsgi:
    """The ASGI app over ``create_app(config)``."""
    from sts.app import create_app

    return StsAsgi(create_app(config))


def uvicorn_settings() -> dict[str, Any]:
    """What uvicorn needs for the STS, in ``jobsts serve`` and in ``Worker``."""
    return {
        "loop": "asyncio",
        "http": BoundedHttpToolsProtocol,
        "lifespan": "on",
        "timeout_graceful_shutdown": SHUTDOWN_GRACE,
        # Why: uvicorn would otherwise believe X-Forwarded-For and X-Forwarded-Proto from any peer
        # in gunicorn's forwarded_allow_ips (127.0.0.1 by default, or FORWARDED_ALLOW_IPS), so a
        # local client could pick its own address for the login throttle and the audit log. The
        # STS's own ``sts.trusted_proxies`` is the one rule for which proxy is believed.
        "proxy_headers": False,
    }


def __getattr__(name: str) -> Any:
    # ``sts.asgi:app`` for gunicorn and uvicorn: built on first access, from JOBSTS_CONFIG.
    if name == "app":
        from sts.observability.audit import configure_logging

        configure_logging()
        application = build()
        globals()["app"] = application
        return application
    raise AttributeError(name)
