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

from agent_client.backoff import jittered
from agent_client.loop import HEARTBEAT_SECONDS
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
    """One node's agent over HTTP, as ``agent_client.loop`` behaves: waits on its current replica
    and fails over to the next on a transport error (as a load balancer would send the retry);
    when woken, leases, claims (``/claims``), runs the job and reports its result. A job whose
    argv is ``sleep S`` runs for S seconds, beating its lease as the real agent does
    (``agent_client.loop.HEARTBEAT_SECONDS``, at least three times per lease); any other job
    ends at once. A result is retried, on the next replica, until the STS answers for it (the
    real agent's outbox)."""

    node: str
    token: str
    urls: list[str]
    current: int = 0
    leased: list[str] = field(default_factory=list)
    claimed: list[str] = field(default_factory=list)
    late: list[str] = field(default_factory=list)
    errors: int = 0
    beats: int = 0
    failed_beats: int = 0
    refusals: list[str] = field(default_factory=list)
    # When the agent was first cut off (a transport error), and when its first wait after that
    # was sent whole to a replica (``time.monotonic``, comparable across processes).
    cut_at: float | None = None
    back_at: float | None = None

    @property
    def url(self) -> str:
        return self.urls[self.current]

    def _cut(self) -> None:
        self.errors += 1
        if self.cut_at is None:
            self.cut_at = time.monotonic()
        self.current = (self.current + 1) % len(self.urls)

    async def _sent(self, event: str, _info: Any) -> None:
        # httpcore's trace: the wait's request left whole for the replica it now uses.
        if event == "http11.send_request_body.complete" and self.cut_at is not None and self.back_at is None:
            self.back_at = time.monotonic()

    async def run(self, client: httpx.AsyncClient, stop: asyncio.Event, timeout: int = 60) -> None:
        headers = bearer(self.token)
        while not stop.is_set():
            try:
                answer = await client.get(
                    f"{self.url}{WAIT}", params={"timeout": timeout}, headers=headers, extensions={"trace": self._sent}
                )
                if answer.status_code != 200:  # a refusal is a test failure, seen in ``refusals``
                    self.refusals.append(answer.text)
                    await asyncio.sleep(0.5)
                elif answer.json()["work"]:
                    await self._drain(client, headers)
            except AssertionError as exc:  # a lease or claim refused: recorded, retried
                self.refusals.append(str(exc))
                await asyncio.sleep(0.5)
            except httpx.TransportError:
                self._cut()
                await asyncio.sleep(jittered(0.1))

    async def _drain(self, client: httpx.AsyncClient, headers: dict[str, str]) -> None:
        while True:
            leased = await client.post(f"{self.url}/api/v1/agent/lease", json={"wait": 0}, headers=headers)
            if leased.status_code == 204:
                return
            assert leased.status_code == 200, leased.text
            job = leased.json()["job"]
            self.leased.append(job["id"])
            claim = {"claims": [{"job_id": job["id"], "attempt": job["attempt"]}]}
            claimed = await client.post(f"{self.url}/api/v1/agent/claims", json=claim, headers=headers)
            assert claimed.status_code == 200, claimed.text
            outcome = claimed.json()["outcomes"][0]
            assert outcome.get("code") is None, outcome
            self.claimed.append(job["id"])
            await self._run_job(client, headers, job, outcome.get("lease_expires_at"))
            await self._report(client, headers, job["id"])

    async def _run_job(
        self, client: httpx.AsyncClient, headers: dict[str, str], job: dict[str, Any], expires: int | None
    ) -> None:
        argv = job.get("spec", {}).get("argv", [])
        seconds = float(argv[1]) if len(argv) == 2 and argv[0].endswith("sleep") else 0.0
        interval = HEARTBEAT_SECONDS
        if expires is not None:
            interval = min(HEARTBEAT_SECONDS, max(1.0, (expires - time.time()) / 3))
        done = time.monotonic() + seconds
        while (left := done - time.monotonic()) > 0:
            await asyncio.sleep(min(left, interval))
            if done - time.monotonic() <= 0:
                return
            try:
                beat = await client.post(
                    f"{self.url}/api/v1/agent/jobs/{job['id']}/heartbeat", json={}, headers=headers
                )
                self.beats += 1
                if beat.status_code != 200:
                    self.refusals.append(beat.text)
            except httpx.TransportError:
                # As the real agent: this beat is lost (logged), the next goes to the replica that answers.
                self.failed_beats += 1
                self._cut()

    async def _report(self, client: httpx.AsyncClient, headers: dict[str, str], job_id: str) -> None:
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
        delay = 0.5
        while True:
            try:
                reported = await client.post(
                    f"{self.url}/api/v1/agent/results",
                    json={"results": [{"job_id": job_id, "result": result}]},
                    headers=headers,
                )
            except httpx.TransportError:
                self._cut()
                await asyncio.sleep(jittered(delay))
                delay = min(delay * 2, 10.0)
                continue
            assert reported.status_code == 200, reported.text
            outcome = reported.json()["outcomes"][0]
            assert outcome.get("code") is None, outcome
            if outcome.get("late"):
                self.late.append(job_id)
            return


def agent_client() -> httpx.AsyncClient:
    """One simulated agent's own client (plain HTTP on loopback: no TLS context to build)."""
    return httpx.AsyncClient(timeout=httpx.Timeout(180.0), verify=False, limits=httpx.Limits(max_connections=4))  # noqa: S501
