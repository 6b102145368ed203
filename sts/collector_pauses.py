"""Short garbage-collector pauses in a server process that holds thousands of connections.

CPython's cycle collector stops the whole process for a full (oldest-generation) collection
and traverses every tracked object to do it. A worker holding 10,000 waiting agents holds about
860,000 of them (about 86 per connection: uvicorn's protocol, transport and parser, tasks,
coroutines, futures), so each full collection stopped it for 300 to 700 ms, every minute or
two, and every request in flight (``/healthz``, logins) waited that long.

``FrozenSurvivors`` moves what survived the last full collection into the permanent generation
(``gc.freeze``), so the next full collection traverses only what was created since. Freezing
changes nothing for reference counting: a closed connection's objects are freed as before. What
it delays is a *cycle* of frozen objects that became garbage: that is kept until the next
``gc.unfreeze``, every ``unfreeze_seconds``, after which one full collection traverses
everything again. One long pause per period instead of one a minute.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable

FREEZE_SECONDS = 5.0
UNFREEZE_SECONDS = 3600.0


class FrozenSurvivors:
    """Freeze every ``freeze_seconds``; unfreeze every ``unfreeze_seconds``."""

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
        """One check: ``"thawed"`` when the unfreeze period is up, ``"froze"`` when the freeze
        period is, else ``""``."""
        now = self.clock()
        if now - self._thawed_at >= self.unfreeze_seconds:
            # The next full collection traverses everything once: frozen garbage cycles are freed.
            gc.unfreeze()
            self._thawed_at = self._frozen_at = now
            return "thawed"
        if now - self._frozen_at >= self.freeze_seconds:
            gc.freeze()
            self._frozen_at = now
            return "froze"
        return ""

    async def run(self) -> None:
        """Check every second, on the server's event loop, until cancelled."""
        while True:
            await asyncio.sleep(1.0)
            self.step()
