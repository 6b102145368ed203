"""Which waiting nodes have work: a job they could lease now, or a lease past its expiry (the
wait route's admission and fallback poll, ``sts.jobs.wait``), and the fleet's snapshot for
``/metrics``. Core statements over the jobs' (node, state) index."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Connection, String, and_, bindparam, exists, func, or_, select

from sts.jobs.models import JOBS, Job
from sts.jobs.states import JobState
from sts.nodes.models import Node
from sts.nodes.presence import CONNECTED_SECONDS
from sts.observability.metrics import FleetSnapshot
from sts.services import Services

CHUNK = 500


def _ready(node_match: Any, now: Any) -> Any:
    """Jobs matching ``node_match`` that a lease would take or reap at ``now`` (a parameter)."""
    return node_match & or_(
        and_(JOBS.c.state == JobState.QUEUED.value, JOBS.c.not_before <= now, JOBS.c.deadline > now),
        and_(
            JOBS.c.state.in_((JobState.LEASED.value, JobState.RUNNING.value)),
            JOBS.c.lease_expires_at < now,
        ),
    )


# ``EXISTS`` a job the node could lease, or reap, now: built once, bound per wait (``has_work_params``).
HAS_WORK = exists().where(
    _ready(JOBS.c.node_id == bindparam("wait_node", type_=String), bindparam("wait_now", type_=BigInteger))
)
# The nodes of a chunk that have such a job: built once (an expanding IN), bound per chunk.
_READY_OF = (
    select(JOBS.c.node_id)
    .where(
        _ready(
            JOBS.c.node_id.in_(bindparam("ready_nodes", expanding=True)),
            bindparam("ready_now", type_=BigInteger),
        )
    )
    .distinct()
)


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
        rows = conn.execute(_READY_OF, {"ready_nodes": chunk, "ready_now": now})
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
