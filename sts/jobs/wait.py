"""``GET /api/v1/agent/wait``: an agent waits here, holding no thread and no database connection,
until its node may have work or ``timeout`` seconds pass; then it leases (``/api/v1/agent/lease``).

The route is native ASGI (``sts.asgi`` routes it here; everything else goes to Flask). It
authenticates exactly as the Flask agent endpoints do (``sts.http.auth.authenticated_node``, run
in a thread with a Flask request context, refusals rendered by the same error boundary), then
parks one future in this process's ``WaiterRegistry``. Wake-ups come from submits
(``sts.jobs.wakeup``) and from a fallback poll every ``POLL_SECONDS`` that asks the database,
in one indexed query per chunk of waiting nodes, which of them have queued work: so a lost
notification (a dropped LISTEN connection, a submit on another process over SQLite) delays a
job by seconds, never strands it. The same poll writes agent presence and runs the reaper.

A wait that finds no work ends at a random point of its last fifth (``wait_seconds``), not at
``timeout`` exactly: agents that started together (a replica's restart, a failover) would
otherwise re-wait together every period, and everything the replica serves would queue behind
that herd.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import random
import time
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs

from flask import Blueprint, Flask, Response, jsonify, request
from sqlalchemy import exc as sa_exc

from realms.errors import JobstsError
from realms.text import is_ascii_number
from sts.db import DatabaseUnavailable
from sts.http.auth import agent_node, authenticated_node, require_agent
from sts.http.errors import problem, render
from sts.jobs.errors import JobInvalidSpec
from sts.jobs.ready import HAS_WORK, has_work_params, ready_nodes, ready_on
from sts.jobs.views import maybe_reap
from sts.jobs.wakeup import WaiterRegistry, install, listen, listen_conninfo
from sts.nodes.auth_cache import read_auth_version
from sts.nodes.presence import FLUSH_SECONDS, Presence
from sts.observability.metrics import AGENT_WAITS, AGENTS_WAITING
from sts.services import Services, current_services

log = logging.getLogger(__name__)
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

WAIT_PATH = "/api/v1/agent/wait"
DEFAULT_TIMEOUT = 25
MAX_TIMEOUT = 60
POLL_SECONDS = 2.0
POLL_ENV = "JOBSTS_WAIT_POLL_SECONDS"


def poll_seconds() -> float:
    """The fallback poll's period: ``JOBSTS_WAIT_POLL_SECONDS`` or ``POLL_SECONDS``."""
    raw = os.environ.get(POLL_ENV, "")
    try:
        value = float(raw)
    except ValueError:
        return POLL_SECONDS
    return value if 0 < value < math.inf else POLL_SECONDS


# The fraction of a wait's timeout over which its end is spread (``wait_seconds``).
SPREAD = 0.2


def wait_seconds(timeout: int, draw: Callable[[], float] = random.random) -> float:
    """How long a wait of ``timeout`` seconds lasts when no work comes: uniform in
    ``[(1 - SPREAD) * timeout, timeout]``, from ``draw()`` uniform in ``[0, 1]`` (injectable).
    Re-waits of agents that started together drift apart instead of arriving as one herd."""
    return timeout * (1.0 - SPREAD * draw())


class Reply:
    """A finished HTTP answer, ready to send over ASGI."""

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    @classmethod
    def json(cls, status: int, document: dict[str, Any]) -> Reply:
        headers = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
        return cls(status, headers, json.dumps(document).encode("utf-8"))

    async def send(self, send: Send) -> None:
        headers = [*self.headers, (b"content-length", str(len(self.body)).encode("ascii"))]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


def _timeout(scope: Scope) -> int:
    return parse_timeout(scope.get("query_string", b"").decode("latin-1"))


def parse_timeout(query: str) -> int:
    """The ``timeout`` query parameter: whole seconds, 1 to ``MAX_TIMEOUT``."""
    raw = parse_qs(query).get("timeout", [str(DEFAULT_TIMEOUT)])[-1]
    if not is_ascii_number(raw) or not 1 <= int(raw) <= MAX_TIMEOUT:
        raise JobInvalidSpec(f"timeout: must be 1 to {MAX_TIMEOUT} seconds", field="timeout")
    return int(raw)


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return ""


def _reply_of(response: Response) -> Reply:
    headers = [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in response.headers.items()
        if name.lower() != "content-length"
    ]
    return Reply(response.status_code, headers, response.get_data())


class AgentWaits:
    """The wait route of one process: its registry, its listener, its fallback poll."""

    def __init__(self, app: Flask, threads: ThreadPoolExecutor, draw: Callable[[], float] = random.random) -> None:
        self.app, self.threads = app, threads
        self.draw = draw  # the random source of ``wait_seconds``
        self.services: Services = app.extensions["jobsts"]
        # Reads only: no BEGIN and no ROLLBACK round trip around each wait's one statement.
        self._engine = self.services.db.engine.execution_options(isolation_level="AUTOCOMMIT")
        self.presence = Presence()
        self.registry: WaiterRegistry | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._soon: set[asyncio.Task[None]] = set()
        self._last_flush = time.monotonic()
        self._arrived: list[tuple[str, asyncio.Future[tuple[str, bool] | Reply]]] = []  # to admit (``_admit``)

    async def start(self) -> None:
        """Start on the server's event loop (ASGI lifespan startup)."""
        self.registry = WaiterRegistry(asyncio.get_running_loop())
        install(self.registry)
        self._tasks.append(asyncio.create_task(self._poll_forever()))
        conninfo = listen_conninfo(self.services.config.database_url)
        if conninfo is not None:
            self._tasks.append(asyncio.create_task(listen(conninfo, self.registry, self._poll_soon)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        install(None)

    def _poll_soon(self) -> None:
        task = asyncio.get_running_loop().create_task(self._poll_once())
        self._soon.add(task)  # held until done: the loop keeps only weak references to tasks
        task.add_done_callback(self._soon.discard)

    async def _poll_forever(self) -> None:
        period = poll_seconds()
        while True:
            await asyncio.sleep(period)
            await self._poll_once()

    async def _poll_once(self) -> None:
        registry = self.registry
        if registry is None:
            return
        try:
            ready = await asyncio.get_running_loop().run_in_executor(self.threads, self._poll_work, registry.nodes())
        except Exception:  # the poll must outlive one bad round, whatever the database did
            log.exception("fallback poll failed")
            return
        for node in ready:
            registry.wake(node, "poll")
        registry.forget()

    def _poll_work(self, nodes: list[str]) -> set[str]:
        """In a thread: the reaper, the presence flush when due, and which waiting nodes have work."""
        try:
            maybe_reap(self.services)
            if time.monotonic() - self._last_flush >= FLUSH_SECONDS:
                self._last_flush = time.monotonic()
                with self.services.session() as session:
                    self.presence.flush(session, self.services.now(), nodes)
            return ready_nodes(self.services, nodes) if nodes else set()
        except JobstsError as exc:
            log.warning("fallback poll skipped: %s", exc.message)
            return set()

    async def _admit(self, authorization: str) -> tuple[str, bool] | Reply:
        """The node of a valid agent token and whether it has work now, or the refusal: admitted
        with the other waits that arrived in the same turn of the loop (``_admit_many``)."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[tuple[str, bool] | Reply] = loop.create_future()
        self._arrived.append((authorization, answer))
        if len(self._arrived) == 1:
            loop.call_soon(self._admit_arrived)
        return await answer

    def _admit_arrived(self) -> None:
        batch, self._arrived = self._arrived, []
        try:
            done = asyncio.get_running_loop().run_in_executor(self.threads, self._admit_many, [a for a, _ in batch])
        except RuntimeError as exc:  # the pool shut down: each wait's boundary answers 500
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return

        def answer(done: asyncio.Future[list[tuple[str, bool] | Reply]]) -> None:
            error = None if done.cancelled() else done.exception()
            for index, (_, future) in enumerate(batch):
                if future.done():  # its request is gone (cancelled)
                    continue
                if done.cancelled():  # the pool shut down (the server stops)
                    future.cancel()
                elif error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(done.result()[index])

        done.add_done_callback(answer)

    def _admit_many(self, authorizations: list[str]) -> list[tuple[str, bool] | Reply]:
        """In a thread, for a batch of waits: each token checked as every agent endpoint checks it
        (``sts.http.auth.agent_node``), the cache's authentication version read once for the
        batch (after all of them arrived) and which nodes have work now in one statement
        (``ready_on``); a cached batch costs two round trips however large. A refusal is the
        reply the Flask error boundary renders. A wait alone costs one (``_admit_one``)."""
        if len(authorizations) == 1:
            return [self._admit_one(authorizations[0])]
        now = self.services.now()
        outcomes: list[str | Reply] = []
        try:
            with self._engine.connect() as conn:
                version = read_auth_version(conn)
                for authorization in authorizations:
                    try:
                        node, _verified, _ = agent_node(self.services, authorization, None, self._engine, version)
                    except JobstsError as exc:
                        outcomes.append(self.refusal(exc))
                        continue
                    self.presence.seen(node.id)
                    outcomes.append(node.id)
                nodes = [outcome for outcome in outcomes if isinstance(outcome, str)]
                ready = ready_on(conn, nodes, now) if nodes else set()
        except (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError) as exc:
            # As every Flask endpoint answers (sts.http.errors): a 503, never a 500.
            log.warning("database unavailable: %s", type(exc).__name__)
            unavailable = self.refusal(DatabaseUnavailable("the database is unavailable; retry shortly"))
            return [unavailable for _ in authorizations]
        return [outcome if isinstance(outcome, Reply) else (outcome, outcome in ready) for outcome in outcomes]

    def _admit_one(self, authorization: str) -> tuple[str, bool] | Reply:
        """``_admit_many`` of one wait, in one statement on a cache hit: the authentication
        version and whether the node has work now, read together."""
        now = self.services.now()
        try:
            node, _verified, work = agent_node(
                self.services, authorization, (HAS_WORK, lambda node_id: has_work_params(node_id, now)), self._engine
            )
        except JobstsError as exc:
            return self.refusal(exc)
        except (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError) as exc:
            log.warning("database unavailable: %s", type(exc).__name__)
            return self.refusal(DatabaseUnavailable("the database is unavailable; retry shortly"))
        self.presence.seen(node.id)
        return node.id, bool(work)

    def refusal(self, error: JobstsError | None, status: int = 0, code: str = "", detail: str = "") -> Reply:
        """A refusal rendered by the one error boundary (``sts.http.errors``)."""
        with self.app.test_request_context(WAIT_PATH):
            return _reply_of(render(error) if error is not None else problem(status, code, detail))

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ``GET /api/v1/agent/wait``: 200 ``{"work": true}`` when the node may have
        work, ``{"work": false}`` when its time passed (``wait_seconds``: within the last fifth
        of ``timeout``)."""
        try:
            await self._handle(scope, receive, send)
        except Exception:  # the one boundary of this route: never a traceback to the client
            log.exception("agent wait failed")
            await self.refusal(None, 500, "internal.error", "internal error; see the service log").send(send)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("method") != "GET":
            await self.refusal(None, 405, "request.method", f"use GET on {WAIT_PATH}").send(send)
            return
        authorization = _header(scope, b"authorization")
        registry = self.registry
        # Notifications from here on count for this wait: one arriving while the thread checks
        # the token and the queue still wakes it (see ``WaiterRegistry.mark``).
        mark = registry.mark() if registry is not None else 0
        try:
            outcome = await self._admit(authorization)
            if isinstance(outcome, Reply):
                await outcome.send(send)
                return
            node_id, has_work = outcome
            try:
                timeout = _timeout(scope)
            except JobstsError as exc:
                await self.refusal(exc).send(send)
                return
            if registry is None:  # no lifespan (a server without it): answer at once, the agent leases
                await Reply.json(200, {"work": True}).send(send)
                return
            future = registry.add(node_id)
            if has_work or registry.notified_since(node_id, mark):
                future.set_result(True)
        finally:
            if registry is not None:
                registry.release(mark)
        started = time.monotonic()
        disconnect: asyncio.Task[None] | None = None
        done: set[asyncio.Future[Any]] = set()
        try:
            disconnect = asyncio.create_task(_disconnected(receive))
            pending: set[asyncio.Future[Any]] = {future, disconnect}
            # Counted once parked (after the check): the gauge is the agents really waiting.
            AGENTS_WAITING.inc()
            try:
                done, _ = await asyncio.wait(
                    pending, timeout=wait_seconds(timeout, self.draw), return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                AGENTS_WAITING.dec()
        finally:
            registry.discard(node_id, future)
            if disconnect is not None:
                disconnect.cancel()
        if future in done:
            AGENT_WAITS.labels("work").observe(time.monotonic() - started)
            await Reply.json(200, {"work": True}).send(send)
        elif disconnect in done:
            AGENT_WAITS.labels("gone").observe(time.monotonic() - started)
        else:
            AGENT_WAITS.labels("timeout").observe(time.monotonic() - started)
            await Reply.json(200, {"work": False}).send(send)


bp = Blueprint("agent_wait", __name__, url_prefix="/api/v1/agent")


@bp.get("/wait")
@require_agent
def wait_on_a_thread() -> Response:
    """The same route on a plain WSGI server (``sts.wsgi``, the Flask test client), where no
    event loop exists: it waits holding its thread, woken by submits of this process and
    polling every ``poll_interval``. ``sts.asgi`` answers this path itself and never gets here."""
    services, node = current_services(), authenticated_node()
    timeout = parse_timeout(request.query_string.decode("latin-1"))
    give_up = time.monotonic() + wait_seconds(timeout)
    while not ready_nodes(services, [node.id]):
        remaining = give_up - time.monotonic()
        if remaining <= 0:
            return _no_store(jsonify({"work": False}))
        services.wait_for_work(min(remaining, services.poll_interval))
    return _no_store(jsonify({"work": True}))


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response
