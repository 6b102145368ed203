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
import os
import random
import time
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs

from flask import Blueprint, Flask, Response, jsonify, request
from sqlalchemy import BigInteger, Connection, String, and_, bindparam, exists, func, or_, select
from sqlalchemy import exc as sa_exc

from realms.errors import JobstsError
from sts.db import DatabaseUnavailable
from sts.http.auth import agent_node, authenticated_node, require_agent
from sts.http.errors import problem, render
from sts.jobs.errors import JobInvalidSpec
from sts.jobs.models import Job
from sts.jobs.states import JobState
from sts.jobs.views import maybe_reap
from sts.jobs.wakeup import WaiterRegistry, install, listen, listen_conninfo
from sts.nodes.models import Node
from sts.nodes.presence import CONNECTED_SECONDS, FLUSH_SECONDS, Presence
from sts.observability.metrics import AGENT_WAITS, AGENTS_WAITING, FleetSnapshot
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
    return value if value > 0 else POLL_SECONDS


CHUNK = 500
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


_JOBS = Job.__table__


def _ready(nodes: Any, now: Any) -> Any:
    """Jobs of ``nodes`` (a list or one node) that a lease would take or reap at ``now`` (or its parameter)."""
    node_match = _JOBS.c.node_id.in_(nodes) if isinstance(nodes, list) else _JOBS.c.node_id == nodes
    return node_match & or_(
        and_(_JOBS.c.state == JobState.QUEUED.value, _JOBS.c.not_before <= now, _JOBS.c.deadline > now),
        and_(
            _JOBS.c.state.in_((JobState.LEASED.value, JobState.RUNNING.value)),
            _JOBS.c.lease_expires_at < now,
        ),
    )


# ``EXISTS`` a job the node could lease, or reap, now: built once, bound per wait (``HAS_WORK_PARAMS``).
HAS_WORK = exists().where(_ready(bindparam("wait_node", type_=String), bindparam("wait_now", type_=BigInteger)))


def has_work_params(node_id: str, now: int) -> dict[str, Any]:
    """The values of ``HAS_WORK`` for ``node_id`` at ``now``."""
    return {"wait_node": node_id, "wait_now": now}


def ready_on(conn: Connection, nodes: list[str], now: int) -> set[str]:
    """Which of ``nodes`` have a job they could lease at ``now``, or a lease past its expiry (one
    index seek per node and state, chunked; Core on the caller's connection). A lease reaps its
    node first, so an expired lease is work too: the agent's next lease requeues (never started)
    or loses (started) that job at once, instead of after the periodic reaper's interval."""
    ready: set[str] = set()
    for start in range(0, len(nodes), CHUNK):
        chunk = nodes[start : start + CHUNK]
        rows = conn.execute(select(_JOBS.c.node_id).where(_ready(chunk, now)).distinct())
        ready.update(row[0] for row in rows)
    return ready


def ready_nodes(services: Services, nodes: list[str]) -> set[str]:
    """``ready_on`` on a connection of its own."""
    with services.db.engine.connect() as conn:
        return ready_on(conn, nodes, services.now())


def fleet_snapshot(services: Services) -> FleetSnapshot:
    """Queue depth per node, last-seen per node and the connected count, for ``/metrics``."""
    now = services.now()
    with services.session() as session:
        queued = session.execute(
            select(Job.node_id, func.count()).where(Job.state == JobState.QUEUED.value).group_by(Job.node_id)
        )
        seen = session.execute(select(Node.id, Node.last_seen_at).where(Node.last_seen_at.is_not(None)))
        depth = {node: int(count) for node, count in queued}
        last_seen = {node: int(stamp) for node, stamp in seen if stamp is not None}
    connected = sum(1 for stamp in last_seen.values() if now - stamp <= CONNECTED_SECONDS)
    return FleetSnapshot(queued=depth, last_seen=last_seen, connected=connected)


def _timeout(scope: Scope) -> int:
    return parse_timeout(scope.get("query_string", b"").decode("latin-1"))


def parse_timeout(query: str) -> int:
    """The ``timeout`` query parameter: whole seconds, 1 to ``MAX_TIMEOUT``."""
    raw = parse_qs(query).get("timeout", [str(DEFAULT_TIMEOUT)])[-1]
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_TIMEOUT:
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

    def _admit(self, authorization: str) -> tuple[str, bool] | Reply:
        """In a thread, in one statement on a cache hit: the node of a valid agent token (checked
        as every agent endpoint checks it, ``sts.http.auth.agent_node``) and whether it has work
        now; or the refusal the Flask error boundary renders."""
        now = self.services.now()
        try:
            node, _verified, work = agent_node(
                self.services, authorization, (HAS_WORK, lambda node_id: has_work_params(node_id, now)), self._engine
            )
        except JobstsError as exc:
            return self._refusal(exc)
        except (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError) as exc:
            # As every Flask endpoint answers (sts.http.errors): a 503, never a 500.
            log.warning("database unavailable: %s", type(exc).__name__)
            return self._refusal(DatabaseUnavailable("the database is unavailable; retry shortly"))
        self.presence.seen(node.id)
        return node.id, bool(work)

    def _refusal(self, error: JobstsError | None, status: int = 0, code: str = "", detail: str = "") -> Reply:
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
            await self._refusal(None, 500, "internal.error", "internal error; see the service log").send(send)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("method") != "GET":
            await self._refusal(None, 405, "request.method", f"use GET on {WAIT_PATH}").send(send)
            return
        loop = asyncio.get_running_loop()
        authorization = _header(scope, b"authorization")
        registry = self.registry
        # Notifications from here on count for this wait: one arriving while the thread checks
        # the token and the queue still wakes it (see ``WaiterRegistry.mark``).
        mark = registry.mark() if registry is not None else 0
        try:
            outcome = await loop.run_in_executor(self.threads, self._admit, authorization)
            if isinstance(outcome, Reply):
                await outcome.send(send)
                return
            node_id, has_work = outcome
            try:
                timeout = _timeout(scope)
            except JobstsError as exc:
                await self._refusal(exc).send(send)
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
