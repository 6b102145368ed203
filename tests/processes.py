"""Helper processes for fault tests: start a ``python -m`` module of this repo, read its lines."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.patience import STARTUP_SECONDS

ROOT = Path(__file__).resolve().parent.parent


def spawn(
    module: str, *args: str, env: dict[str, str] | None = None, pass_fds: tuple[int, ...] = ()
) -> subprocess.Popen[str]:
    """``python -m module args`` from the repository root, with pipes for stdout and stderr;
    ``pass_fds`` are inherited (a listening socket the test holds, tests/loopback.py)."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore", **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=full_env,
        pass_fds=pass_fds,
    )


def read_until(process: subprocess.Popen[str], prefix: str, timeout: float = STARTUP_SECONDS) -> str:
    """The first stdout line starting with ``prefix``; fails the test (with stderr) if none comes."""
    found: list[str] = []

    def reader() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith(prefix):
                found.append(line.strip())
                return

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    thread.join(timeout)
    if not found:
        process.kill()
        _, err = process.communicate(timeout=30)
        pytest.fail(f"no {prefix!r} from {process.args!r}: {err[-3000:]}")
    return found[0]


def finish(process: subprocess.Popen[str]) -> tuple[str, str]:
    """Wait for the process and return its (stdout, stderr)."""
    return process.communicate(timeout=120)
