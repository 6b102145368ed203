"""The production gunicorn configuration for the STS.

Used by ``jobsts serve --production`` (which loads these settings through gunicorn's
``BaseApplication``, so master and workers are one process tree), or directly::

    JOBSTS_CONFIG=/etc/jobsts/sts.toml PROMETHEUS_MULTIPROC_DIR=/run/jobsts-metrics \\
        gunicorn -c python:sts.gunicorn_conf 'sts.wsgi:app'

Every setting can be overridden from the environment (``JOBSTS_GUNICORN_*``), so a container
or unit file tunes it without editing code:

- ``workers`` (``JOBSTS_GUNICORN_WORKERS``): one per CPU. Each request is mostly CPU work
  (signature checks, ORM) with short database waits, so more processes than cores only adds
  contention; on SQLite, more workers measurably lowered throughput (one writer at a time).
- ``threads`` (``JOBSTS_GUNICORN_THREADS``, gthread worker): 8 per worker, so agents that
  long-poll ``/api/v1/agent/lease`` (up to 30 s) do not starve other requests. The
  database pool (10 + 20 overflow per process, see ``sts.db``) is larger than this.
- ``timeout`` 75 s: above the longest legitimate request (a 30 s lease long-poll plus a slow
  directory), so only a truly stuck worker is killed; ``graceful_timeout`` 35 s lets running
  long-polls end on a restart.
- The STS configuration file comes from ``JOBSTS_CONFIG`` (read by ``sts.wsgi`` in each worker).
- ``preload_app`` off: each worker builds its own app (database engine, key cache, LDAP
  connections) after the fork, so no socket or lock is shared between processes.
- Prometheus multiprocess mode: ``PROMETHEUS_MULTIPROC_DIR`` must be set before workers start
  (``serve --production`` creates a per-run temporary directory when it is unset); the
  ``child_exit`` hook marks a dead worker's live gauges so ``/metrics`` stays right.
"""

from __future__ import annotations

import os
from typing import Any


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw and raw.isdigit() and int(raw) > 0 else default


bind = os.environ.get("JOBSTS_GUNICORN_BIND", "127.0.0.1:8080")
workers = _int_env("JOBSTS_GUNICORN_WORKERS", os.cpu_count() or 1)
worker_class = "gthread"
threads = _int_env("JOBSTS_GUNICORN_THREADS", 8)
timeout = _int_env("JOBSTS_GUNICORN_TIMEOUT", 75)
graceful_timeout = 35
keepalive = 5
preload_app = False
max_requests = 0  # no periodic restarts: nothing leaks that would need them
accesslog = os.environ.get("JOBSTS_GUNICORN_ACCESSLOG") or None  # "-" for stdout; off by default
errorlog = "-"
loglevel = os.environ.get("JOBSTS_GUNICORN_LOGLEVEL", "info")
proc_name = "jobsts-sts"


def child_exit(_server: Any, worker: Any) -> None:
    """Gunicorn hook: drop a dead worker's live-gauge files (prometheus multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


SETTINGS: tuple[str, ...] = (
    "bind",
    "workers",
    "worker_class",
    "threads",
    "timeout",
    "graceful_timeout",
    "keepalive",
    "preload_app",
    "max_requests",
    "accesslog",
    "errorlog",
    "loglevel",
    "proc_name",
    "child_exit",
)


def settings() -> dict[str, Any]:
    """This module's gunicorn settings, as ``serve --production`` applies them."""
    namespace = globals()
    return {name: namespace[name] for name in SETTINGS if namespace[name] is not None}
