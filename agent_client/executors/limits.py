"""Resource limits (setrlimit(2)) applied in the job's process before exec."""

from __future__ import annotations

import resource
from collections.abc import Mapping

RLIMITS: dict[str, int] = {
    "cpu_seconds": resource.RLIMIT_CPU,
    "address_space": resource.RLIMIT_AS,
    "nofile": resource.RLIMIT_NOFILE,
    "nproc": resource.RLIMIT_NPROC,
    "fsize": resource.RLIMIT_FSIZE,
    "core": resource.RLIMIT_CORE,
}


def apply_limits(limits: Mapping[str, int]) -> None:
    """Set soft and hard limits (hard = soft, so the job cannot raise them back)."""
    for name, value in limits.items():
        resource.setrlimit(RLIMITS[name], (value, value))
