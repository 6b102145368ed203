"""Agent presence: when each node's agent was last seen, without a database write per request.

Every process keeps the set of nodes it saw since its last flush and writes them in one
``UPDATE ... WHERE id IN (...)`` per chunk, every ``FLUSH_SECONDS`` (``sts.jobs.wait`` runs the
flush with its fallback poll). A node is *connected* when it was seen within
``CONNECTED_SECONDS``: long enough to cover an agent waiting on any replica between two flushes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from sqlalchemy import update
from sqlalchemy.orm import Session

from sts.nodes.models import Node

FLUSH_SECONDS = 15.0
CONNECTED_SECONDS = 75
CHUNK = 500


def is_connected(last_seen_at: int | None, now: int) -> bool:
    """Whether a node whose agent was last seen at ``last_seen_at`` counts as connected at ``now``."""
    return last_seen_at is not None and now - last_seen_at <= CONNECTED_SECONDS


class Presence:
    """The nodes this process saw since its last flush (thread-safe)."""

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def seen(self, node_id: str) -> None:
        with self._lock:
            self._seen.add(node_id)

    def flush(self, session: Session, now: int, waiting: Iterable[str] = ()) -> int:
        """Write ``now`` as the last-seen time of every node seen since the last flush and of
        every node still ``waiting`` here; returns how many nodes were written."""
        with self._lock:
            nodes, self._seen = self._seen | set(waiting), set()
        ordered = sorted(nodes)
        for start in range(0, len(ordered), CHUNK):
            chunk = ordered[start : start + CHUNK]
            session.execute(update(Node).where(Node.id.in_(chunk)).values(last_seen_at=now))
        return len(ordered)
