"""A clock that tests move by hand: ``clock.now = ...``; calling it reads ``now``."""

from __future__ import annotations


class ManualClock:
    """Stands in for ``time.time`` or ``time.monotonic`` where the code takes a clock."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
