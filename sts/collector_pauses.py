"""Short garbage-collector pauses in a server process that holds thousands of connections.

CPython's cycle collector stops the whole process for a full (oldest-generation) collection
and traverses every tracked object to do it. A worker holding 10,000 waiting agents holds about
860,000 of them (about 86 per connection: uvicorn's protocol, transport and parser, tasks,
coroutines, futures), so each full collection stopped it for 300 to 700 ms, every minute or
two, and every request in flight (``/healthz``, logins) waited that long.

The young generation is no better under that load. Every re-wait frees about as many tracked
objects as it makes, and CPython counts a free against the youngest generation's allocation
count, so its collection came late, over 20,000 to 48,000 young objects, stopping the worker
for 10 to 30 ms.

``FrozenSurvivors`` therefore runs, every ``freeze_seconds`` (1 s), a young collection
(``gc.collect(1)``) and then ``gc.freeze()``. The young collection covers at most a second of
objects, and it frees the young garbage cycles instead of freezing them. Everything that still
lives moves into the permanent generation, which no later collection traverses. Freezing
changes nothing for reference counting: a closed connection's objects are freed as before.
What it delays is a *cycle* among frozen objects that became garbage later. That is kept until
the next ``gc.unfreeze``, every ``unfreeze_seconds`` (1 h), followed at once by one full
collection over everything: one long pause an hour instead of one a minute.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable

FREEZE_SECONDS = 1.0
UNFREEZE_SECONDS = 3600.0


class FrozenSurvivors:
    """Every ``freeze_seconds``, collect the young generations and freeze what survives; unfreeze
    every ``unfreeze_seconds``."""

    def __init__(
        self,
        freeze_seconds: float = FREEZE_SECONDS,
        unfreeze_seconds: float = UNFREEZE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.freeze_seconds, self.unfreeze_seconds, self.clock = freeze_seconds, unfreeze_seconds, clock
        self._frozen_at = self._thawed_at = clock()

    def start(self) -> None:
        """Freeze what the process holds after start-up (modules, the app, its pools)."""
        gc.collect()
        gc.freeze()
        self._frozen_at = self.clock()

    def step(self) -> str:
        """One check: ``"thawed"`` (unfrozen and fully collected) when the unfreeze period is up,
        ``"froze"`` when the freeze period is, else ``""``."""
        now = self.clock()
        if now - self._thawed_at >= self.unfreeze_seconds:
            # Collected now, not by the next automatic full collection: the next freeze would come
            # first and keep the frozen garbage cycles for another period.
            gc.unfreeze()
            gc.collect()
            self._thawed_at = self._frozen_at = now
            return "thawed"
        if now - self._frozen_at >= self.freeze_seconds:
            # A young collection first: the young garbage cycles are freed, not frozen, and what is
            # frozen is what is still referenced.
            gc.collect(1)
            gc.freeze()
            self._frozen_at = now
            return "froze"
        return ""

    async def run(self) -> None:
        """Check every ``freeze_seconds``, on the server's event loop, until cancelled."""
        while True:
            await asyncio.sleep(self.freeze_seconds)
            self.step()
