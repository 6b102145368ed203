"""Jitter for agents that act together: how long an agent waits before it tries the STS again
after a failure (``jittered``), and how long it asks its first wait for work to last after a
start or a reconnect (``first_wait``).

Agents cut off together (an STS restart, a replica killed behind the load balancer) would
otherwise retry together, at 1, 2, 4 ... seconds, each time as one herd. Each wait is drawn
uniformly from the upper half of the exponential delay ("equal jitter"): never shorter than
half of it, so the backoff still backs off, and never longer, so no retry comes later than
without jitter. Once they are back, their first waits for work would end together too, so the
first wait's length is drawn over most of the period.
"""

from __future__ import annotations

import random
from collections.abc import Callable


def jittered(delay: float, draw: Callable[[], float] = random.random) -> float:
    """``delay`` spread over ``[delay / 2, delay]`` by ``draw()``, uniform in ``[0, 1]`` (injectable)."""
    return delay * (0.5 + 0.5 * draw())


# The shortest first wait, as a fraction of the configured wait (``first_wait``).
FIRST_WAIT_FLOOR = 0.2


def first_wait(poll_wait: int, draw: Callable[[], float] = random.random) -> int:
    """The ``timeout`` of the first wait for work after a start or a reconnect: whole seconds,
    uniform in ``[poll_wait / 5, poll_wait]`` by ``draw()``, uniform in ``[0, 1]`` (injectable), at
    least 1. A fleet that connects together then re-waits spread over a whole period instead of
    within the STS's own spread of one fifth of it (``sts.jobs.wait.wait_seconds``)."""
    low = FIRST_WAIT_FLOOR * poll_wait
    return max(1, round(low + (poll_wait - low) * draw()))
