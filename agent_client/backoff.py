"""Jittered backoff: how long an agent waits before it tries the STS again after a failure.

Agents cut off together (an STS restart, a replica killed behind the load balancer) would
otherwise retry together, at 1, 2, 4 ... seconds, each time as one herd. Each wait is drawn
uniformly from the upper half of the exponential delay ("equal jitter"): never shorter than
half of it, so the backoff still backs off, and never longer, so no retry comes later than
without jitter.
"""

from __future__ import annotations

import random
from collections.abc import Callable


def jittered(delay: float, draw: Callable[[], float] = random.random) -> float:
    """``delay`` spread over ``[delay / 2, delay]`` by ``draw()``, uniform in ``[0, 1]`` (injectable)."""
    return delay * (0.5 + 0.5 * draw())
