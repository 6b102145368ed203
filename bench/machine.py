"""The machine description every section of bench/results.md starts with."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def machine() -> str:
    """CPUs (with the model name from /proc/cpuinfo), the platform and the Python version."""
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        lines = cpuinfo.read_text().splitlines()
        found = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
        cpu = found[0] if found else cpu
    return f"{os.cpu_count()} CPUs ({cpu}), {platform.platform()}, Python {platform.python_version()}"
