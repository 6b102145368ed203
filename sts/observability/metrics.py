"""Prometheus metrics of the STS, served at ``/metrics`` in the text exposition format.

Under gunicorn every worker writes its samples to ``PROMETHEUS_MULTIPROC_DIR`` (set by
``jobsts serve --production`` before prometheus-client is imported) and ``/metrics`` merges
the files of all workers; without that variable the process's own registry is served.
Label values come only from bounded sets (configured realms, token profiles, job states,
dotted codes), so a client cannot grow the series without bound.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest

from realms.identity.principal import Principal
from realms.registries.base import Registry

LOGINS = Counter(
    "jobsts_logins", "Password logins by realm and outcome (ok, failed, locked, unavailable).", ["realm", "outcome"]
)
TOKENS_ISSUED = Counter("jobsts_tokens_issued", "Tokens signed by this STS, by profile (JOSE typ).", ["profile"])
LDAP_SECONDS = Histogram(
    "jobsts_directory_seconds",
    "Latency of user-registry calls by realm and operation.",
    ["realm", "operation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
SUBMISSIONS = Counter(
    "jobsts_job_submissions", "Job submissions, by outcome (created, replayed, refused).", ["outcome"]
)
LEASES = Counter("jobsts_job_leases", "Lease calls by agents, by outcome (leased, empty).", ["outcome"])
DISPATCH = Counter(
    "jobsts_job_transitions",
    "Job state changes reported by agents (running and results), by state and code.",
    ["state", "code"],
)
REFUSALS = Counter("jobsts_agent_refusals", "Jobs refused by agents, by refusal code.", ["code"])

CODE = re.compile(r"[a-z][a-z0-9_]{0,30}(\.[a-z][a-z0-9_]{0,30}){1,3}")


def code_label(code: str | None) -> str:
    """A refusal or result code as a label value; anything not shaped like a code is "other"."""
    # Why: codes come from agents; an arbitrary string per job would make one series per job.
    if code is None:
        return ""
    return code if CODE.fullmatch(code) else "other"


class TimedRegistry:
    """A ``realms.registries.base.Registry`` that records the latency of each directory call."""

    def __init__(self, inner: Registry) -> None:
        self.inner = inner
        self.realm = inner.realm

    def authenticate(self, username: str, password: str) -> Principal | None:
        started = time.perf_counter()
        try:
            return self.inner.authenticate(username, password)
        finally:
            LDAP_SECONDS.labels(self.realm, "authenticate").observe(time.perf_counter() - started)

    def lookup(self, username: str) -> Principal | None:
        started = time.perf_counter()
        try:
            return self.inner.lookup(username)
        finally:
            LDAP_SECONDS.labels(self.realm, "lookup").observe(time.perf_counter() - started)

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def exposition() -> tuple[bytes, str]:
    """The current samples (all workers' in multiprocess mode) and their content type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
