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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

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
# Summed over live processes: the agents holding GET /api/v1/agent/wait open on this host.
AGENTS_WAITING = Gauge(
    "jobsts_agents_waiting", "Agents waiting for work on this STS (connected).", multiprocess_mode="livesum"
)
AGENT_WAITS = Histogram(
    "jobsts_agent_wait_seconds",
    "How long agent waits lasted, by outcome (work, timeout, gone).",
    ["outcome"],
    buckets=(0.005, 0.025, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
WAKEUPS = Counter("jobsts_agent_wakeups", "Waiting agents woken, by source (notify, poll).", ["source"])


@dataclass(frozen=True, slots=True)
class FleetSnapshot:
    """What the database says about the fleet at scrape time (the same for every replica)."""

    queued: dict[str, int] = field(default_factory=dict)  # node -> queued jobs (only nodes with any)
    last_seen: dict[str, int] = field(default_factory=dict)  # node -> epoch seconds
    connected: int = 0


class FleetCollector(Collector):
    """Queue depth per node, agent last-seen per node and connected nodes, read at scrape time.
    Node labels come from the registered nodes only (an administrator's bounded set)."""

    def __init__(self, read: Callable[[], FleetSnapshot]) -> None:
        self.read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        snapshot = self.read()
        depth = GaugeMetricFamily("jobsts_queue_depth", "Queued jobs per node.", labels=["node"])
        for node, count in sorted(snapshot.queued.items()):
            depth.add_metric([node], count)
        seen = GaugeMetricFamily(
            "jobsts_node_last_seen_timestamp_seconds", "When each node's agent was last seen.", labels=["node"]
        )
        for node, stamp in sorted(snapshot.last_seen.items()):
            seen.add_metric([node], stamp)
        yield depth
        yield seen
        yield GaugeMetricFamily(
            "jobsts_nodes_connected", "Nodes whose agent was seen recently, on any replica.", value=snapshot.connected
        )


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


def exposition(fleet: Collector | None = None) -> tuple[bytes, str]:
    """The current samples (all workers' in multiprocess mode), plus ``fleet``'s, and their content type."""
    body = b""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    if fleet is not None:
        extra = CollectorRegistry()
        extra.register(fleet)
        body += generate_latest(extra)
    return body, CONTENT_TYPE_LATEST
