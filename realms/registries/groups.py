"""Nested group resolution shared by every registry backend: cycle detection and a depth limit.

Groups are walked breadth-first, one level at a time, so a backend can ask for the parents
of a whole level in one directory search. A group already seen is never expanded again
(cycles end), and expansion stops after ``max_depth`` levels above the direct groups.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterable
from typing import TypeVar

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)

DEFAULT_MAX_DEPTH = 8
MAX_MAX_DEPTH = 64


def resolve_nested(
    direct: Iterable[K],
    parents_of: Callable[[frozenset[K]], Iterable[K]],
    *,
    nested: bool,
    max_depth: int,
    realm: str = "",
) -> frozenset[K]:
    """All groups reachable from ``direct``: the direct groups, then ``max_depth`` levels of parents.

    ``parents_of(level)`` returns the groups that contain any group of ``level``.
    """
    seen: set[K] = set(direct)
    if not nested:
        return frozenset(seen)
    frontier = frozenset(seen)
    depth = 0
    while frontier:
        if depth >= max_depth:
            # Why: a bound on work per login; a deeper hierarchy is a directory design problem,
            # and granting less than the full closure fails safe.
            log.warning("realm %s: nested groups deeper than max_depth=%d were not followed", realm, max_depth)
            break
        # Why: groups already seen are dropped, so a membership cycle ends instead of looping.
        frontier = frozenset(parent for parent in parents_of(frontier) if parent not in seen)
        seen.update(frontier)
        depth += 1
    return frozenset(seen)
