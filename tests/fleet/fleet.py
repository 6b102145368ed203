"""Helpers for the fleet tests: STS processes (uvicorn workers), nodes with agent tokens, and
simulated agents that wait, lease and finish jobs over HTTP from one event loop."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.ldap_harness import ldif_realm_table
from tests.production.servers import StsProcess, bearer, write_sts_config

WAIT = "/api/v1/agent/wait"
# A fallback poll too slow to matter within a test: only a notification can wake an agent.
NO_POLL = {"JOBSTS_WAIT_POLL_SECONDS": "3600"}


def config_for(workdir: Path, database_url: str) -> Path:
    return write_sts_config(workdir, database_url, [ldif_realm_table("jobmgr")])


@contextmanager
def replicas(config: Path, workdir: Path, count: int, env: dict[str, str] | None = None) -> Iterator[list[StsProcess]]:
    """``count`` STS processes (one uvicorn worker each) on one database, all ready. Each
    process gets its own metrics directory, so its gauges are its own."""
    servers: list[StsProcess] = []
    try:
        for index in range(count):
            metrics = workdir / f"metrics-{index}"
            metrics.mkdir()
            servers.append(StsProcess(config, workdir, 1, env=env, metrics_dir=metrics))
        for server in servers:
            server.wait_ready(timeout=240)  # a loaded machine may take long to boot a worker
        yield servers
    finally:
        for server in servers:
            server.stop()


def kill_tree(server: StsProcess) -> None:
    """SIGKILL the gunicorn master and its workers, and stop holding the port."""
    children = subprocess.run(
        ["pgrep", "-P", str(server.process.pid)], capture_output=True, text=True, check=False
    ).stdout.split()
    for pid in [server.process.pid, *map(int, children)]:
        os.kill(int(pid), signal.SIGKILL)
    server.process.wait()
    server.sock.close()


def metric(server: StsProcess, name: str, labels: str = "") -> float:
    """One sample of ``/metrics`` (0 when absent)."""
    text = server.client.get("/metrics").text
    pattern = re.compile(rf"^{re.escape(name)}{re.escape(labels)}\s+([0-9.e+-]+)$", re.MULTILINE)
    found = pattern.search(text)
    return float(found.group(1)) if found else 0.0


def until(condition: Any, what: str, timeout: float = 120) -> None:
    """Poll ``condition()`` until it is true; fail naming ``what`` after a generous ``timeout``."""
    give_up = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > give_up:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@dataclass
class Fleet:
    """Registered nodes and one agent token for each."""

    admin: str
    tokens: dict[str, str] = field(default_factory=dict)

    @classmethod
    def register(cls, server: StsProcess, count: int, prefix: str = "n") -> Fleet:
        fleet = cls(server.token("admin"))

        def one(index: int) -> tuple[str, str]:
            node = f"{prefix}{index:04d}"
            return node, server.agent_token(node, server.register_node(fleet.admin, node))

        with ThreadPoolExecutor(8) as pool:
            fleet.tokens.update(sorted(pool.map(one, range(count))))
        return fleet


@dataclass
class SimulatedAgent:
    """One node's agent: waits on its current replica, fails over to the next on a transport
    error, leases when woken, and reports success for every job it leases."""

    node: str
    token: str
    urls: list[str]
    current: int = 0
    waiting_on: str | None = None
    leased: list[str] = field(default_factory=list)
    errors: int = 0
    refusals: list[str] = field(default_factory=list)

    async def run(self, client: httpx.AsyncClient, stop: asyncio.Event, timeout: int = 60) -> None:
        headers = bearer(self.token)
        while not stop.is_set():
            url = self.urls[self.current]
            try:
                self.waiting_on = url
                answer = await client.get(f"{url}{WAIT}", params={"timeout": timeout}, headers=headers)
                self.waiting_on = None
                if answer.status_code != 200:  # a refusal is a test failure, seen in ``refusals``
                    self.refusals.append(answer.text)
                    await asyncio.sleep(0.5)
                elif answer.json()["work"]:
                    await self._drain(client, url, headers)
            except AssertionError as exc:  # a lease, start or result refused: recorded, retried
                self.refusals.append(str(exc))
                await asyncio.sleep(0.5)
            except httpx.TransportError:
                self.waiting_on = None
                self.errors += 1
                self.current = (self.current + 1) % len(self.urls)
                await asyncio.sleep(0.05)

    async def _drain(self, client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> None:
        while True:
            leased = await client.post(f"{url}/api/v1/agent/lease", json={"wait": 0}, headers=headers)
            if leased.status_code == 204:
                return
            assert leased.status_code == 200, leased.text
            job = leased.json()["job"]
            self.leased.append(job["id"])
            started = await client.post(
                f"{url}/api/v1/agent/jobs/{job['id']}/start", json={"attempt": job["attempt"]}, headers=headers
            )
            assert started.status_code == 200, started.text
            result: dict[str, Any] = {
                "outcome": "succeeded",
                "exit_code": 0,
                "stdout_tail": "",
                "stderr_tail": "",
                "code": None,
                "reason": None,
                "account": None,
                "trace": [],
            }
            reported = await client.post(f"{url}/api/v1/agent/jobs/{job['id']}/result", json=result, headers=headers)
            assert reported.status_code == 200, reported.text


def async_client(connections: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections + 20, max_keepalive_connections=connections + 20)
    return httpx.AsyncClient(timeout=httpx.Timeout(180.0), limits=limits)
