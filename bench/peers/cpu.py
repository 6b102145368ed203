"""CPU time of other processes, read from ``/proc/PID/stat`` (proc(5)), for figures such as
"server CPU milliseconds per login" measured from outside the server.

``utime`` + ``stime`` of a process already sum every thread of it, live or exited, so a
multi-threaded server (Glewlwyd) needs only its own pid. Child *processes* (gunicorn workers)
are counted only once reaped, so :func:`process_tree` lists them to be summed while alive.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    """The fields after the command name (which may hold spaces and parentheses)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` in seconds (all its threads); 0.0 if it is gone."""
    try:
        fields = _stat_fields(pid)
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    # After the name: state(0) ppid(1) ... utime(11) stime(12) (proc(5) fields 14 and 15).
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND


def parent_pid(pid: int) -> int | None:
    try:
        return int(_stat_fields(pid)[1])
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return None


def process_tree(root: int) -> list[int]:
    """``root`` and all its live descendants (e.g. a gunicorn master and its workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            parent = parent_pid(int(entry.name))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


@dataclass
class CpuMeter:
    """CPU seconds spent by a set of processes between :meth:`start` and :meth:`stop`.

    ``pids`` is called at both ends, so processes that appear in between (a PostgreSQL
    backend opened by the server under test) count from 0 and those that vanish count as
    their last reading (taken at ``start``); a process that starts *and* ends in between is
    missed. Use long-lived processes (servers, pooled connections).
    """

    pids: Callable[[], Iterable[int]]
    _before: dict[int, float] | None = None
    seconds: float = 0.0

    def start(self) -> CpuMeter:
        self._before = {pid: cpu_seconds(pid) for pid in self.pids()}
        return self

    def stop(self) -> float:
        if self._before is None:
            raise RuntimeError("CpuMeter.stop() before start()")
        after = {pid: cpu_seconds(pid) for pid in self.pids()}
        spent = 0.0
        for pid in set(after) | set(self._before):
            now = after.get(pid)
            if now is None or now == 0.0:  # gone: its time since start is lost, count none
                continue
            spent += now - self._before.get(pid, 0.0)
        self.seconds = spent
        return spent


def fixed(*pids: int) -> Callable[[], list[int]]:
    """A ``CpuMeter.pids`` callable for a fixed set of pids."""
    return lambda: list(pids)


def tree(root: int) -> Callable[[], list[int]]:
    """A ``CpuMeter.pids`` callable for ``root`` and its descendants at each reading."""
    return lambda: process_tree(root)
