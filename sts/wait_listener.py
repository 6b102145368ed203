"""The agent-wait listener: ``GET /api/v1/agent/wait`` on a port of its own, served by worker
processes of their own (``jobsts serve --production --wait-port``).

Every worker serves one interpreter: with 10,000 agents waiting in the process that also answers
logins, the event loop's share of the GIL (re-waits, their admissions) delays every login. With
a wait listener, gunicorn runs two kinds of worker over the same app: API workers accept only on
the API listener, agent-wait workers only on the wait listener. The agents' connections then
never share a process with logins, submits and health checks. A load balancer sends the wait
path to the wait port (``docker/proxy/haproxy.cfg``), or agents are told the address
(``[agent] wait_url``). The API listener still answers waits, for agents that were not.

The wait listener answers the wait route and the health checks a load balancer sends to each
backend (``sts.asgi.WAIT_LISTENER_PATHS``); anything else is a 404 ``not_found`` naming the API address.

Roles are assigned in the gunicorn master (the ``pre_fork`` hook, ``next_role``) and read by the
worker (``sts.asgi_worker.Worker``), which keeps only its role's listeners.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from realms.text import is_ascii_number

WAIT_BIND_ENV = "JOBSTS_GUNICORN_WAIT_BIND"
WAIT_WORKERS_ENV = "JOBSTS_GUNICORN_WAIT_WORKERS"
WAIT_NICE_ENV = "JOBSTS_GUNICORN_WAIT_NICE"
DEFAULT_WAIT_NICE = 10
API_ROLE, WAIT_ROLE = "api", "agent-wait"


def wait_port(environ: Mapping[str, str] = os.environ) -> int | None:
    """The wait listener's port, from ``JOBSTS_GUNICORN_WAIT_BIND`` (``host:port``), or ``None``."""
    bind = environ.get(WAIT_BIND_ENV, "")
    if not bind:
        return None
    _host, colon, port = bind.rpartition(":")
    if not colon or not is_ascii_number(port) or not 0 < int(port) < 65536:
        raise ValueError(f"{WAIT_BIND_ENV}={bind!r}: expected host:port")
    return int(port)


def wait_workers(environ: Mapping[str, str] = os.environ) -> int:
    """Agent-wait workers (``JOBSTS_GUNICORN_WAIT_WORKERS``, default 1); none without a wait listener."""
    if wait_port(environ) is None:
        return 0
    raw = environ.get(WAIT_WORKERS_ENV, "")
    return int(raw) if is_ascii_number(raw) and int(raw) > 0 else 1


def wait_niceness(environ: Mapping[str, str] = os.environ) -> int:
    """How much an agent-wait worker lowers its CPU priority (``nice``): ``JOBSTS_GUNICORN_WAIT_NICE``,
    0 to 19, default ``DEFAULT_WAIT_NICE``."""
    raw = environ.get(WAIT_NICE_ENV, "")
    if not raw:
        return DEFAULT_WAIT_NICE
    if not is_ascii_number(raw) or int(raw) > 19:
        raise ValueError(f"{WAIT_NICE_ENV}={raw!r}: expected 0 to 19")
    return int(raw)


def next_role(workers: Iterable[Any], num_workers: int, wanted: int) -> str:
    """The role of the worker about to be spawned, given the arbiter's ``workers`` and its target
    ``num_workers``, of which ``wanted`` serve the wait listener.

    Counted over the workers that will survive: gunicorn trims the oldest above ``num_workers``
    (a reload spawns a whole new set before the old one is stopped), so the survivors are the
    ``num_workers - 1`` youngest. A respawn after a crash replaces the role that died."""
    if wanted <= 0:
        return API_ROLE
    by_age = sorted(workers, key=lambda worker: worker.age)
    survivors = by_age[max(0, len(by_age) - (num_workers - 1)) :] if num_workers > 1 else []
    waiting = sum(1 for worker in survivors if getattr(worker, "role", API_ROLE) == WAIT_ROLE)
    return WAIT_ROLE if waiting < wanted else API_ROLE


def _port_of(listener: Any) -> int | None:
    try:
        address = listener.getsockname()
    except OSError:
        return None
    return int(address[1]) if isinstance(address, tuple) else None  # a Unix socket has no port


def listeners_for(role: str, listeners: list[Any], port: int | None) -> list[Any]:
    """The listeners a worker of ``role`` accepts on: the wait listener (by ``port``) for an
    agent-wait worker, every other one for an API worker."""
    if port is None:
        return listeners
    chosen = [listener for listener in listeners if (_port_of(listener) == port) == (role == WAIT_ROLE)]
    if not chosen:
        raise RuntimeError(f"no listener for the {role} workers (the wait listener is port {port})")
    return chosen


def on_wait_listener(scope: Mapping[str, Any], port: int | None) -> bool:
    """Whether an ASGI request arrived on the wait listener (the ``server`` of its scope)."""
    # Why the socket's own port and never the Host header: the header is the client's word.
    server = scope.get("server")
    return port is not None and isinstance(server, (tuple, list)) and len(server) == 2 and server[1] == port
