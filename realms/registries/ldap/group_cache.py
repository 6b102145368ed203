"""A short, bounded cache of nested-group closures for the ``ldap`` registry.

The key is the set of a user's *direct* groups, which every login reads live from the
directory; the value is every group reachable from them (the group-to-parent closure). So a
change of the user's own memberships is seen at once, and only a change of which group nests
in which waits up to ``group_cache_seconds``. ``group_cache_seconds = 0`` turns the cache off.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")

# Why a bound: the key space is user-controlled only through group memberships, but a directory
# with many distinct membership sets must not grow the STS's memory without limit.
MAX_ENTRIES = 4096


class ClosureCache(Generic[V]):
    """Least-recently-used map of direct-group sets to closures, each kept for ``seconds``."""

    def __init__(
        self, seconds: float, max_entries: int = MAX_ENTRIES, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.seconds, self.max_entries, self.clock = seconds, max_entries, clock
        self._entries: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.seconds > 0

    def get(self, key: Hashable) -> V | None:
        """The closure stored for ``key`` if it is younger than ``seconds``."""
        if not self.enabled:
            return None
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            stored_at, value = found
            if self.clock() - stored_at >= self.seconds:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return value

    def put(self, key: Hashable, value: V) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._entries[key] = (self.clock(), value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
