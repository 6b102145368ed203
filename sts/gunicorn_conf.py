"""The production gunicorn configuration for the STS.

Used by ``jobsts serve --production`` (which loads these settings through gunicorn's
``BaseApplication``, so master and workers are one process tree), or directly::

    JOBSTS_CONFIG=/etc/jobsts/sts.toml PROMETHEUS_MULTIPROC_DIR=/run/jobsts-metrics \\
        gunicorn -c python:sts.gunicorn_conf 'sts.asgi:app'

Every setting can be overridden from the environment (``JOBSTS_GUNICORN_*``), so a container
or unit file tunes it without editing code:

- ``workers`` (``JOBSTS_GUNICORN_WORKERS``): one per CPU. Each request is mostly CPU work
  (signature checks, ORM) with short database waits, so more processes than cores only adds
  contention; on SQLite, more workers measurably lowered throughput (one writer at a time).
- ``worker_class``: ``sts.asgi_worker.Worker``, uvicorn's worker serving ``sts.asgi``. One
  event loop per process holds every waiting agent (``GET /api/v1/agent/wait``) as a future,
  with no thread and no database connection; Flask runs on a thread pool beside it.
- ``JOBSTS_GUNICORN_WAIT_BIND`` (``host:port``, off by default): a second listener for agent
  waits only, served by ``JOBSTS_GUNICORN_WAIT_WORKERS`` (default 1) workers of their own, added
  to ``workers``; the ``pre_fork`` hook gives each new worker its role (``sts.wait_listener``).
  Those workers run at ``nice`` ``JOBSTS_GUNICORN_WAIT_NICE`` (default 10), below the API's.
- ``threads`` (``JOBSTS_GUNICORN_THREADS``): 8 Flask threads per worker. Waiting agents no
  longer hold any of them. The database pool (10 + 20 overflow per process, see ``sts.db``)
  is larger than this plus the 4 threads that check agent tokens and poll for work (up to two
  connections each: a batch of admissions holds one for its shared reads while a cache miss
  reads on another): 8 + 4 x 2 = 16 of 30.
- ``timeout`` 75 s: above the longest legitimate request (a 60 s wait, a slow directory,
  an old agent's 30 s lease long-poll), so only a truly stuck worker is killed;
  ``graceful_timeout`` 35 s lets running requests end on a restart (waiting agents are cut
  after 5 s and reconnect).
- The STS configuration file comes from ``JOBSTS_CONFIG`` (read by ``sts.asgi`` in each worker).
- ``preload_app`` off: each worker builds its own app (database engine, key cache, LDAP
  connections) after the fork, so no socket or lock is shared between processes.
- Prometheus multiprocess mode: ``PROMETHEUS_MULTIPROC_DIR`` must be set before workers start
  (``serve --production`` creates a per-run temporary directory when it is unset); the
  ``child_exit`` hook marks a dead worker's live gauges so ``/metrics`` stays right.
"""

from __future__ import annotations

import os
from typing import Any

from realms.text import is_ascii_number
from sts.http.redaction import GUNICORN_ACCESS_LOG_FORMAT
from sts.wait_listener import WAIT_BIND_ENV, next_role, wait_niceness, wait_workers


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    return int(raw) if is_ascii_number(raw) and int(raw) > 0 else default


def with_wait_listener(api_bind: str, api_workers: int) -> tuple[str | list[str], int]:
    """gunicorn's ``bind`` and ``workers``: the API's, plus the agent-wait listener and its
    workers when ``JOBSTS_GUNICORN_WAIT_BIND`` names one. A bad wait setting raises ``ValueError``
    here, in the master, rather than in every worker it forks."""
    wait_bind = os.environ.get(WAIT_BIND_ENV)
    if wait_bind:
        wait_niceness()
    return ([api_bind, wait_bind] if wait_bind else api_bind), api_workers + wait_workers()


api_workers = _int_env("JOBSTS_GUNICORN_WORKERS", os.cpu_count() or 1)
bind, workers = with_wait_listener(os.environ.get("JOBSTS_GUNICORN_BIND", "127.0.0.1:8080"), api_workers)
worker_class = "sts.asgi_worker.Worker"
threads = _int_env("JOBSTS_GUNICORN_THREADS", 8)
timeout = _int_env("JOBSTS_GUNICORN_TIMEOUT", 75)
graceful_timeout = 35
keepalive = 5
preload_app = False
max_requests = 0  # no periodic restarts: nothing leaks that would need them
accesslog = os.environ.get("JOBSTS_GUNICORN_ACCESSLOG") or None  # "-" for stdout; off by default
errorlog = "-"
# Why: the default format logs the request line and referrer, query strings (tokens) included.
access_log_format = GUNICORN_ACCESS_LOG_FORMAT
loglevel = os.environ.get("JOBSTS_GUNICORN_LOGLEVEL", "info")
proc_name = "jobsts-sts"
# Why: gunicorn >= 25.1 opens a management socket (worker kill, reload, shutdown) at one path per
# account ($HOME/.gunicorn/gunicorn.ctl): a second STS under the same account takes it over and
# unlinks it on exit, and it is a way to stop the service that no operator asked for.
control_socket_disable = True


def child_exit(_server: Any, worker: Any) -> None:
    """Gunicorn hook: drop a dead worker's live-gauge files (prometheus multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def pre_fork(server: Any, worker: Any) -> None:
    """Gunicorn hook, in the master: the new worker's role (API or agent-wait, ``sts.wait_listener``)."""
    worker.role = next_role(server.WORKERS.values(), server.num_workers, wait_workers())


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
    "access_log_format",
    "errorlog",
    "loglevel",
    "proc_name",
    "control_socket_disable",
    "child_exit",
    "pre_fork",
)


def settings() -> dict[str, Any]:
    """This module's gunicorn settings, as ``serve --production`` applies them."""
    namespace = globals()
    return {name: namespace[name] for name in SETTINGS if namespace[name] is not None}
