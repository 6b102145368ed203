"""The agent-wait listener (``jobsts serve --production --wait-port``): agents wait on a port of
their own, served by a worker process of its own, so the process that answers logins never
holds a waiting agent; the wait listener answers nothing but the wait and the health checks.

Which process serves a connection is read from the kernel (/proc): the server-side socket of
each connection and the worker whose file descriptors hold it."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agent_client.api.agent import AgentApi
from sts.wait_listener import DEFAULT_WAIT_NICE
from tests.fleet.fleet import NO_POLL, WAIT, Fleet, config_for, metric, until
from tests.production.servers import StsProcess, bearer
from tests.sts.conftest import BASE_URL

pytestmark = [pytest.mark.db]


@pytest.fixture
def server(tmp_path: Path, database_url: str, on_postgres: bool) -> Iterator[StsProcess]:
    # On SQLite a submit in the API worker reaches the wait worker by its fallback poll only.
    env = NO_POLL if on_postgres else {"JOBSTS_WAIT_POLL_SECONDS": "0.5"}
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    sts = StsProcess(config_for(tmp_path, database_url), tmp_path, 1, env=env, metrics_dir=metrics, wait_listener=True)
    try:
        sts.wait_ready(timeout=240)
        until(lambda: _answers(f"{sts.wait_url}/healthz"), "the wait listener", 240)
        yield sts
    finally:
        sts.stop()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=120).status_code == 200
    except httpx.TransportError:  # the worker is still starting
        return False


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _listening(port: int) -> set[str]:
    """The inodes of the listening sockets on loopback ``port`` (one, shared by every worker)."""
    with open("/proc/net/tcp", encoding="ascii") as table:
        rows = [line.split() for line in table][1:]
    return {row[9] for row in rows if row[1] == f"0100007F:{port:04X}" and row[3] == "0A"}


def _polled(pid: int) -> set[str]:
    """The socket inodes the worker's event loops watch: every epoll instance's targets (proc(5), fdinfo)."""
    watched: set[str] = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") != "anon_inode:[eventpoll]":
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}", encoding="ascii") as info:
                targets = [line.split()[1] for line in info if line.startswith("tfd:")]
        except OSError:  # closed meanwhile
            continue
        for target in targets:
            try:
                watched.add(os.readlink(f"/proc/{pid}/fd/{target}").removeprefix("socket:[").rstrip("]"))
            except OSError:
                continue
    return watched


def _workers(sts: StsProcess) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(sts.process.pid)], capture_output=True, text=True, check=False)
    return [int(pid) for pid in found.stdout.split()]


def test_waits_and_the_api_are_accepted_by_different_processes(server: StsProcess) -> None:
    api, wait = _listening(_port(server.url)), _listening(_port(server.wait_url))
    assert api and wait
    workers = _workers(server)
    assert len(workers) == 2, workers  # one API worker, one agent-wait worker
    accepting = sorted((bool(_polled(pid) & api), bool(_polled(pid) & wait)) for pid in workers)
    # Each worker accepts on one listener: logins never share an interpreter with waiting agents.
    assert accepting == [(False, True), (True, False)], accepting


def _niceness(pid: int) -> int:
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[16])  # field 19, nice (proc(5))


def test_the_agent_wait_worker_yields_the_cpu_to_the_api_worker(server: StsProcess) -> None:
    wait = _listening(_port(server.wait_url))
    base = _niceness(server.process.pid)
    roles = sorted(("wait" if _polled(pid) & wait else "api", _niceness(pid)) for pid in _workers(server))
    # Logins and health checks run first when both are runnable; a re-wait can wait.
    assert base < 19, "the suite runs at the lowest priority already: nothing to lower"
    assert roles == [("api", base), ("wait", min(19, base + DEFAULT_WAIT_NICE))], roles


def test_a_submit_wakes_the_agent_waiting_on_the_wait_listener(server: StsProcess) -> None:
    fleet = Fleet.register(server, 1)
    token = fleet.tokens["n0000"]
    answer: dict[str, httpx.Response] = {}

    def agent() -> None:
        answer["wait"] = httpx.get(
            f"{server.wait_url}{WAIT}", params={"timeout": 60}, headers=bearer(token), timeout=120
        )

    thread = threading.Thread(target=agent)
    thread.start()
    until(lambda: metric(server, "jobsts_agents_waiting") == 1, "the wait")
    job_id = server.submit(fleet.admin, "n0000")
    thread.join(timeout=120)
    assert answer["wait"].status_code == 200 and answer["wait"].json() == {"work": True}, answer["wait"].text
    leased = server.lease(token)
    assert leased is not None and leased["job"]["id"] == job_id


def test_the_wait_listener_refuses_everything_but_waits_and_health(server: StsProcess) -> None:
    login = {"grant_type": "password", "username": "john", "password": "john-password"}
    api_host = server.url.removeprefix("http://")
    with httpx.Client(base_url=server.wait_url, timeout=30) as client:
        assert client.get("/healthz").status_code == 200
        for method, path, kwargs in (
            ("POST", "/realms/jobmgr/token", {"data": login}),
            # The Host header names the API listener: the socket decides, not the client's word.
            ("POST", "/realms/jobmgr/token", {"data": login, "headers": {"Host": api_host}}),
            ("GET", "/api/v1/jobs", {}),
            ("GET", "/metrics", {}),
            ("POST", "/api/v1/agent/lease", {"json": {"wait": 0}}),
        ):
            refused = client.request(method, path, **kwargs)
            assert refused.status_code == 404, (path, refused.text)
            body = refused.json()
            assert body["code"] == "not_found" and "agent-wait listener" in body["detail"], body
    # The API listener still answers logins, and waits for agents told no other address.
    assert server.login("john").status == 200
    fleet = Fleet.register(server, 1)
    waited = httpx.get(f"{server.url}{WAIT}", params={"timeout": 1}, headers=bearer(fleet.tokens["n0000"]), timeout=120)
    assert waited.status_code == 200 and waited.json() == {"work": False}


def test_the_agent_sends_its_waits_to_wait_url(server: StsProcess) -> None:
    admin = server.token("admin")
    private = server.register_node(admin, "w1")
    wait_port = _port(server.wait_url)
    with AgentApi.connect(
        server.url,
        "w1",
        "jobmgr",
        private,
        "ES256",
        audience=f"{BASE_URL}/realms/jobmgr/token",
        wait_url=server.wait_url,
    ) as agent:
        assert agent.leases(1) == []  # the API (lease, token) on the API listener
        outcome: dict[str, bool | None] = {}
        thread = threading.Thread(target=lambda: outcome.update(work=agent.wait(60)))
        thread.start()
        until(lambda: metric(server, "jobsts_agents_waiting") == 1, "the agent's wait")
        with open("/proc/net/tcp", encoding="ascii") as table:
            local = [line.split()[1] for line in table if line.split()[3] == "01"]
        assert f"0100007F:{wait_port:04X}" in local, "the wait is a connection to the wait listener"
        server.submit(admin, "w1")
        thread.join(timeout=120)
        assert outcome == {"work": True}
