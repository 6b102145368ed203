"""Waking the agents that wait for work (``GET /api/v1/agent/wait``, ``sts.jobs.wait``).

Each process keeps one ``WaiterRegistry``: one asyncio future per waiting agent, keyed by node,
on the event loop of the ASGI server (``sts.asgi``). Nothing else is held while an agent waits:
no thread, no database connection.

On PostgreSQL a new or requeued job sends a ``pg_notify`` on the schema's channel (``CHANNEL_SQL``)
with its node as payload, in the transaction that writes it: delivered at commit to every STS process (each runs
one ``LISTEN`` connection, ``listen``), wherever the node's agent waits, and never for a rolled
back job. A submit's own ``INSERT`` carries it (``notify_expression`` in the statement, one round
trip); a job requeued through the ORM (the reaper) calls ``notify(session, node)`` from a
``before_flush`` hook. On SQLite there is no cross-process channel: the writing process wakes
its own waiters after the commit (``wake_local``), and the fallback poll of ``sts.jobs.wait``
finds the rest within a few seconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, String, bindparam, event, func, inspect, literal, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, UOWTransaction

from sts.jobs.models import Job
from sts.jobs.states import JobState
from sts.observability.metrics import WAKEUPS

log = logging.getLogger(__name__)
# One channel per schema: NOTIFY is database-wide, and two deployments (or two test runs) in
# different schemas of one database must not wake each other's agents. A digest keeps the name
# under PostgreSQL's 63-byte identifier limit whatever the schema is called.
CHANNEL_PREFIX = "jobsts_work_"
CHANNEL_SQL = f"SELECT '{CHANNEL_PREFIX}' || md5(coalesce(current_schema(), ''))"
MAX_BACKOFF = 10.0


class WaiterRegistry:
    """The agents waiting in this process, by node. Used only on its event loop, except
    ``wake_threadsafe``, which any thread may call."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._waiting: dict[str, set[asyncio.Future[bool]]] = {}
        # Wake-ups numbered in order, the last per node, and the marks of waits being admitted.
        self._sequence = 0
        self._notified: dict[str, int] = {}
        self._marks: Counter[int] = Counter()

    def mark(self) -> int:
        """Start admitting a wait: a wake-up of its node from now on is seen by
        ``notified_since(node, mark)``, even before the wait is registered (it is checked in a
        thread first). Pair with ``release``."""
        self._marks[self._sequence] += 1
        return self._sequence

    def release(self, mark: int) -> None:
        self._marks[mark] -= 1
        if self._marks[mark] <= 0:
            del self._marks[mark]

    def notified_since(self, node_id: str, mark: int) -> bool:
        return self._notified.get(node_id, -1) > mark

    def forget(self) -> None:
        """Drop the wake-ups no wait being admitted can still ask about (the fallback poll calls it)."""
        oldest = min(self._marks, default=self._sequence)
        self._notified = {node: seq for node, seq in self._notified.items() if seq > oldest}

    def add(self, node_id: str) -> asyncio.Future[bool]:
        future: asyncio.Future[bool] = self.loop.create_future()
        self._waiting.setdefault(node_id, set()).add(future)
        return future

    def discard(self, node_id: str, future: asyncio.Future[bool]) -> None:
        futures = self._waiting.get(node_id)
        if futures is None or future not in futures:
            return
        futures.discard(future)
        if not futures:
            del self._waiting[node_id]

    def wake(self, node_id: str, source: str = "notify") -> int:
        """Tell every agent of ``node_id`` waiting here that work may be available."""
        self._sequence += 1
        if self._marks:  # only a wait being admitted can ask about a past wake-up
            self._notified[node_id] = self._sequence
        woken = 0
        for future in self._waiting.get(node_id, ()):
            if not future.done():
                future.set_result(True)
                woken += 1
        if woken:
            WAKEUPS.labels(source).inc(woken)
        return woken

    def wake_threadsafe(self, node_id: str) -> None:
        self.loop.call_soon_threadsafe(self.wake, node_id)

    def nodes(self) -> list[str]:
        return list(self._waiting)

    def __len__(self) -> int:
        return sum(len(futures) for futures in self._waiting.values())


_local: WaiterRegistry | None = None


def install(registry: WaiterRegistry | None) -> None:
    """Make ``registry`` this process's (the ASGI lifespan does; ``None`` on shutdown)."""
    global _local
    _local = registry


def notify_expression(node_id: ColumnElement[str]) -> ColumnElement[None]:
    """PostgreSQL: the ``pg_notify`` that wakes the agents of ``node_id`` (a column of the
    statement that writes the job), delivered when that statement's transaction commits."""
    channel = literal(CHANNEL_PREFIX) + func.md5(func.coalesce(func.current_schema(), ""))
    return func.pg_notify(channel, node_id)


def wake_local(node_id: str) -> None:
    """SQLite: wake the agents of ``node_id`` waiting in this process; call it after the commit."""
    registry = _local
    if registry is not None:
        registry.wake_threadsafe(node_id)


_NOTIFY = select(notify_expression(bindparam("node_id", type_=String)))


def notify(session: Session, node_id: str) -> None:
    """Wake the agents of ``node_id`` once this transaction commits (never before: an agent
    woken early would lease before the job is visible and go back to waiting)."""
    if session.get_bind().dialect.name == "postgresql":
        # Delivered at commit to every listening STS process, this one included; dropped on rollback.
        session.connection().execute(_NOTIFY, {"node_id": node_id})
        return
    event.listen(session, "after_commit", lambda _session: wake_local(node_id), once=True)


@event.listens_for(Session, "before_flush")
def _requeued(session: Session, _flush: UOWTransaction, _instances: Any) -> None:
    # A job put back in the queue (the reaper's requeue of a lease that expired unstarted) is
    # work again for its node: wake its agent wherever it waits, not at the next fallback poll.
    # A job leaving the queue (lease, cancel, expiry) needs no notice: a wake-up says only that
    # work may be there, and the agent's lease finds out.
    for obj in session.dirty:
        if isinstance(obj, Job):
            added = inspect(obj).attrs.state.history.added
            if added and added[0] == JobState.QUEUED.value:
                notify(session, obj.node_id)


def listen_conninfo(database_url: str) -> str | None:
    """The libpq connection string of a PostgreSQL database URL; ``None`` for other databases."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        return None
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def listen(conninfo: str, registry: WaiterRegistry, on_connected: Callable[[], None]) -> None:
    """``LISTEN`` on this schema's channel (``CHANNEL_SQL``) forever and wake the waiters of each
    notified node; reconnect with backoff. ``on_connected`` runs after each (re)connect:
    notifications sent while the connection was down are lost, so the caller polls once then."""
    import psycopg

    delay = 0.5
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                row = await (await conn.execute(CHANNEL_SQL)).fetchone()
                assert row is not None
                await conn.execute(f'LISTEN "{row[0]}"')  # a prefix and hex digits: nothing to escape
                delay = 0.5
                on_connected()
                async for note in conn.notifies():
                    registry.wake(note.payload)
        except (psycopg.Error, OSError) as exc:
            log.warning("wake-up listener lost its database connection (%s); reconnecting", type(exc).__name__)
        await asyncio.sleep(delay)
        delay = min(delay * 2, MAX_BACKOFF)
