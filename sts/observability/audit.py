"""The audit log: one JSON object per line on the ``jobsts.audit`` logger.

Fields: ``time`` (RFC 3339 UTC), ``event``, ``actor`` (an access ID), ``realm``, ``node``,
``job``, ``outcome``, ``code``, ``client`` (the client address, ``X-Forwarded-For`` believed
only from trusted proxies), plus a few event-specific fields (``jti``, ``profile``, ...).
Events: ``login``, ``token.issued``, ``node.registered`` / ``node.updated`` /
``node.unregistered``, ``authz.changed`` (written by ``authz_tables.store``), ``token.revoked``, ``job.submitted``,
``job.leased``, ``job.started``, ``job.result`` (an agent's decision and result).

It never carries a password, a whole token or a key: a token is named by its ``jti`` only.

A leaf: it imports nothing of the STS. The client address comes from a source the HTTP layer
installs (``set_client_source``); outside a request there is none.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from realms.logs import setup_logging

AUDIT_LOGGER = "jobsts.audit"
log = logging.getLogger(AUDIT_LOGGER)
MAX_FIELD = 256
# One encoder for every line (json.dumps with options builds a new one per call).
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True).encode
ClientSource = Callable[[], str | None]


def _no_client() -> str | None:
    return None


_client_source: ClientSource = _no_client


def set_client_source(source: ClientSource) -> None:
    """Where ``record`` reads the client address of the current request (``None`` outside one)."""
    global _client_source  # one process-wide source: it reads the current request, whichever app serves it
    _client_source = source


def record(
    event: str,
    *,
    outcome: str = "ok",
    actor: str | None = None,
    realm: str | None = None,
    node: str | None = None,
    job: str | None = None,
    code: str | None = None,
    **extra: Any,
) -> None:
    """Write one audit line. Callers pass identifiers only, never secrets."""
    if not log.isEnabledFor(logging.INFO):
        return
    entry: dict[str, Any] = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "event": event,
        "actor": actor,
        "realm": realm,
        "node": node,
        "job": job,
        "outcome": outcome,
        "code": code,
        "client": _client_source(),
    }
    entry.update(extra)
    # Caller-supplied strings (usernames, codes) are cut short; JSON escapes control characters,
    # so one entry is always one line.
    for name, value in entry.items():
        if isinstance(value, str) and len(value) > MAX_FIELD:
            entry[name] = value[:MAX_FIELD]
    # One record made directly: ``log.info`` would also walk the stack for a caller's file and
    # line, which the audit format never prints (a third of a line's cost on the dispatch path).
    log.handle(log.makeRecord(AUDIT_LOGGER, logging.INFO, __file__, 0, _ENCODE(entry), (), None, "record"))


def configure_logging(level: str | None = None, fmt: str | None = None) -> None:
    """Service logging on stderr: ``jobsts.audit`` lines as bare JSON, everything else in the one
    format of ``realms.logs`` (level and format default to JOBSTS_LOG_LEVEL / JOBSTS_LOG_FORMAT,
    else info / text). Idempotent."""
    setup_logging(
        level or os.environ.get("JOBSTS_LOG_LEVEL") or "info", fmt or os.environ.get("JOBSTS_LOG_FORMAT") or "text"
    )
    if not any(getattr(h, "_jobsts", False) for h in log.handlers):
        audit_handler = logging.StreamHandler(sys.stderr)
        audit_handler.setFormatter(logging.Formatter("%(message)s"))
        audit_handler._jobsts = True  # type: ignore[attr-defined]
        log.addHandler(audit_handler)
        log.setLevel(logging.INFO)
        log.propagate = False
