"""Faults: kill -9 of the agent and of the STS at each step of a job's
lifecycle, the database and the directory restarting under load, and clock skew between the
STS and the agent on either side of the leeway.

After each fault: no job is lost silently (it ends succeeded, or refused/lost with a code),
none runs twice (a marker file gets at most one line), and nothing runs as the wrong account
(each line is ``id -un`` of the mapped account). The STS-only faults (SIGKILL
between INSERT and COMMIT, concurrent agents, a dead agent's lease) are in tests/jobs/test_faults.py.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy.engine import make_url

from realms.wire.documents import Claim, ItemOutcome
from tests.jobs.tcp_proxy import TcpProxy
from tests.ldap_harness import SlapdServer, seed_files
from tests.loopback import Forwarder, listening_socket, port_of
from tests.processes import read_until, spawn
from tests.security.agent_process import build_agent
from tests.security.conftest import ldap_app, wait_for
from tests.security.served import ACCOUNT, Served, agent_args, make_world, register_node, serve

pytestmark = pytest.mark.db
ROOT = Path(__file__).resolve().parents[2]
TERMINAL = {"succeeded", "failed", "refused", "lost", "expired", "cancelled"}


# Per step: the state the job must end in, and how often it may have run.
AGENT_STEPS = {
    "leased": ({"succeeded"}, 1),  # not started: the lease expires, the job is requeued and runs
    "recorded": ({"refused"}, 0),  # jti durable, never started: re-leased, refused as token.replayed
    "started": ({"lost"}, 0),  # started, killed before running: lost, never re-run
    "ran": ({"lost"}, 1),  # ran, killed before reporting: lost, never re-run
}


@pytest.mark.parametrize("step", list(AGENT_STEPS))
def test_agent_killed_at_each_step(served: Served, step: str) -> None:
    job_id = served.submit()
    state = served.tmp_path / "agent-state"
    first = spawn("tests.security.agent_process", *agent_args(served, state), "--pause-at", step, "--seconds", "60")
    try:
        read_until(first, f"AT {step}")
        os.kill(first.pid, signal.SIGKILL)
    finally:
        first.kill()
        first.communicate(timeout=30)
    # The agent really got to its step: the STS holds the job in the state that step implies.
    assert served.state(job_id)["state"] == ("leased" if step in ("leased", "recorded") else "running")
    served.expire_lease(job_id)  # the lease runs out; the next lease requeues or loses the job
    stop = served.tmp_path / "stop-second-agent"
    second = spawn(
        "tests.security.agent_process", *agent_args(served, state), "--seconds", "120", "--stop-file", str(stop)
    )
    try:
        assert wait_for(lambda: served.state(job_id)["state"] in TERMINAL, 100), served.state(job_id)
        # A few more rounds of the agent's loop: a job wrongly requeued would be leased again here.
        _more_rounds(stop.with_suffix(".rounds"), 3)
    finally:
        stop.touch()
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err[-3000:]
    wanted_states, wanted_runs = AGENT_STEPS[step]
    shown = served.state(job_id)
    assert shown["state"] in wanted_states, (shown["state"], shown.get("code"), out, err[-2000:])
    assert len(served.runs()) == wanted_runs, served.runs()
    assert set(served.runs()) <= {ACCOUNT}
    if shown["state"] == "refused":
        assert shown["code"] == "token.replayed"


def _more_rounds(count_file: Path, more: int) -> None:
    """Wait until the agent process has finished ``more`` further rounds of its loop."""

    def rounds() -> int:
        return int(count_file.read_text()) if count_file.exists() else 0

    target = rounds() + more
    assert wait_for(lambda: rounds() >= target, 60), (rounds(), target)


@dataclass
class StsProcesses:
    """The STS processes of one test, all serving the listening socket the test holds."""

    served: Served
    sock: socket.socket
    processes: list[subprocess.Popen[str]] = field(default_factory=list)

    def start(self) -> None:
        fd = self.sock.fileno()
        process = spawn(
            "tests.security.sts_process",
            str(self.served.tmp_path / "sts.toml"),
            f"fd:{fd}",
            env={"JOBSTS_BASE_URL": self.served.url, "JOBSTS_TEST_LEASE_SECONDS": "30"},
            pass_fds=(fd,),
        )
        read_until(process, "READY")
        self.processes.append(process)


@pytest.fixture
def sts_proc(served: Served) -> Iterator[tuple[Served, StsProcesses]]:
    """The same STS (same database and key file) in its own process, on its own port, so the
    test can SIGKILL and restart it while the agent keeps talking to that port. The test holds
    the listening socket, so the port is never free between a kill and the restart: requests
    in between wait in its backlog for the next process."""
    sock = listening_socket()
    served = Served(served.world, f"http://127.0.0.1:{port_of(sock)}", served.key_file, served.marker, served.tmp_path)
    # The in-process app minted with the old base URL; this process serves under its own.
    processes = StsProcesses(served, sock)
    try:
        processes.start()
        yield served, processes
    finally:
        for process in processes.processes:
            process.kill()
            process.communicate(timeout=30)
        sock.close()


def _kill(processes: StsProcesses) -> None:
    os.kill(processes.processes[-1].pid, signal.SIGKILL)
    processes.processes[-1].communicate(timeout=30)


def _start(served: Served, processes: StsProcesses) -> None:
    processes.start()


def _restart(served: Served, processes: StsProcesses) -> None:
    _kill(processes)
    _start(served, processes)


def _sts_world_token(served: Served) -> dict[str, str]:
    # Tokens minted by the in-process app name its issuer; the served one accepts its own only.
    import httpx

    response = httpx.post(
        f"{served.url}/realms/jobmgr/token",
        data={"grant_type": "password", "username": "john", "password": "john-password"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _submit_http(served: Served) -> str:
    import httpx

    response = httpx.post(
        f"{served.url}/api/v1/jobs",
        headers=_sts_world_token(served),
        timeout=30,
        json={"node": "fnode", "type": "shell", "spec": {"argv": ["/bin/sh", "-c", f"id -un >> {served.marker}"]}},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _state_http(served: Served, job_id: str) -> str:
    import httpx

    response = httpx.get(f"{served.url}/api/v1/jobs/{job_id}", headers=_sts_world_token(served), timeout=30)
    assert response.status_code == 200, response.text
    return str(response.json()["state"])


@pytest.mark.parametrize("step", ["queued", "leased", "running"])
def test_sts_killed_at_each_step(sts_proc: tuple[Served, StsProcesses], step: str) -> None:
    """SIGKILL of the STS with a job queued, leased (before start) or running: after a restart on
    the same database the job finishes exactly once, as the mapped account."""
    served, processes = sts_proc
    job_id = _submit_http(served)
    agent = build_agent(served.url, "fnode", served.key_file, served.tmp_path / "in-process-agent", ACCOUNT)
    try:
        if step == "queued":
            _restart(served, processes)
            assert agent.run_once() == "succeeded"
        elif step == "leased":
            lease = agent.client.lease(0)
            assert lease is not None and lease.job.id == job_id
            _restart(served, processes)
            assert agent.handle(lease) == "succeeded"
        else:
            claim = agent.client.claim
            killed: list[bool] = []

            def claim_then_kill(claims: list[Claim]) -> list[ItemOutcome]:
                outcomes = claim(claims)
                _kill(processes)  # the STS dies once the job is started; it is back 0.5 s later
                killed.append(True)
                threading.Timer(0.5, _start, args=(served, processes)).start()
                return outcomes

            # The loop starts jobs through claim(): wrap exactly that call, so the kill happens.
            setattr(agent.client, "claim", claim_then_kill)  # noqa: B010
            assert agent.run_once() == "succeeded"  # the result is retried until the STS is back
            assert killed == [True]
    finally:
        agent.close()
    assert wait_for(lambda: _state_http(served, job_id) == "succeeded", 120)
    assert served.runs() == [ACCOUNT]


def test_database_restart_under_load_runs_each_job_once(
    tmp_path: Path, database_url: str, on_postgres: bool, shared_dir: Path
) -> None:
    """PostgreSQL behind a TCP proxy we control (never the machine's real server) drops every
    connection while an agent works through jobs over HTTP; afterwards each job ran once."""
    if not on_postgres:
        pytest.skip("a database server restart needs PostgreSQL (JOBSTS_TEST_DATABASE_URL); CI runs it there")
    url = make_url(database_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    proxy.start()
    proxied = url.set(port=proxy.port).render_as_string(hide_password=False)
    sock = listening_socket()
    base_url = f"http://127.0.0.1:{port_of(sock)}"
    world = make_world(tmp_path, proxied, base_url, lease_seconds=30)
    server, thread = serve(world.app, sock)
    served = Served(world, base_url, register_node(world, tmp_path), shared_dir / "runs", tmp_path)
    outcomes: Counter[str] = Counter()
    try:
        ids = [served.submit() for _ in range(8)]
        stop = threading.Event()

        def work() -> None:
            # The agent lives on the thread that runs it, as in `jobsts agent run`: its journal
            # is one SQLite connection, usable only on the thread that opened it.
            agent = build_agent(served.url, "fnode", served.key_file, tmp_path / "agent", ACCOUNT)
            try:
                while not stop.is_set():
                    try:
                        outcome = agent.run_once()
                    except Exception as exc:  # an unreachable STS/database is retried, like the loop does
                        outcomes[type(exc).__name__] += 1
                        time.sleep(0.2)
                        continue
                    if outcome is None:
                        time.sleep(0.05)
                    else:
                        outcomes[outcome] += 1
            finally:
                agent.close()

        worker = threading.Thread(target=work)
        worker.start()
        time.sleep(0.3)
        proxy.stop()
        time.sleep(1.5)
        proxy.start()
        # Every job has ended as the STS sees it: results kept in the agent's outbox through the
        # outage are delivered by the running agent before it stops.
        wait_for(lambda: all(served.state(job_id)["state"] in TERMINAL for job_id in ids), 120, 0.5)
        stop.set()
        worker.join(60)
        states = Counter(served.state(job_id)["state"] for job_id in ids)
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()
        sock.close()
        world.services.close()
        proxy.close()
    runs = served.runs()
    assert set(runs) <= {ACCOUNT}
    assert len(runs) == states["succeeded"] <= len(ids)  # never twice
    assert set(states) <= TERMINAL | {"queued"}, states


@pytest.mark.slapd
def test_directory_restart_under_load(
    tmp_path: Path, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Our own slapd (never the session's) restarts while logins run: every answer is 200 or 503,
    never a refusal of a correct password, and logins work again without restarting the STS."""
    directory = SlapdServer(tmp_path_factory.mktemp("restart-slapd"), seeds={"jobmgr": seed_files()["jobmgr"]})
    directory.start()
    # The STS knows the directory by a held port in front of it: slapd cannot keep its port
    # across a restart race-free (it binds its own), so the restart may move it behind this.
    front = Forwarder(("127.0.0.1", directory.port))
    table = directory.realm_table("jobmgr", url=front.url("ldap"), connect_timeout=1, receive_timeout=2)
    app = ldap_app(tmp_path, database_url, [table])
    statuses: Counter[int] = Counter()
    stop = threading.Event()

    def load() -> None:
        client = app.test_client()
        while not stop.is_set():
            response = client.post(
                "/realms/jobmgr/token", data={"grant_type": "password", "username": "john", "password": "john-password"}
            )
            statuses[response.status_code] += 1

    threads = [threading.Thread(target=load) for _ in range(3)]
    try:
        for worker in threads:
            worker.start()
        time.sleep(0.5)
        directory.terminate()
        time.sleep(1.5)
        down = Counter(statuses)
        directory.launch()
        front.target = ("127.0.0.1", directory.port)
        before = statuses[200]
        assert wait_for(lambda: statuses[200] > before + 3, 120), statuses
    finally:
        stop.set()
        for worker in threads:
            worker.join(60)
        app.extensions["jobsts"].close()
        directory.stop()
        front.close()
    assert down[503] > 0, down
    assert set(statuses) <= {200, 503}, statuses


@pytest.mark.parametrize(
    "skew,expect",
    [
        (-45, "token.not_yet_valid"),  # agent clock 45 s behind the STS: beyond the 30 s leeway
        (-15, None),  # 15 s behind: within the leeway
        (15, None),
    ],
)
def test_clock_skew_between_sts_and_agent(served: Served, skew: int, expect: str | None) -> None:
    """A job token is minted with nbf = iat = the STS's now; the agent decides on its own clock."""
    served.submit()
    lease = served.world.lease("fnode")
    assert lease is not None
    agent = build_agent(served.url, "fnode", served.key_file, served.tmp_path / "skew", ACCOUNT)
    try:
        agent.revocations.refresh(force=True)
        decision = agent.decider.decide(lease["job"], lease["job_token"], now=time.time() + skew)
    finally:
        agent.close()
    assert decision.allowed is (expect is None), decision.explain()
    if expect:
        assert decision.code == expect


@pytest.mark.parametrize("skew,ok", [(-45, False), (-15, True), (15, True), (45, False)])
def test_clock_skew_of_the_agent_at_the_token_endpoint(served: Served, skew: int, ok: bool) -> None:
    """The agent's client assertion is judged on the STS's clock: within the leeway it works;
    an agent far ahead (iat in the future) or far behind (expired) is refused."""
    agent = build_agent(served.url, "fnode", served.key_file, served.tmp_path / "skew2", ACCOUNT)
    try:
        import jwt

        assertion = agent.client.auth.client_assertion(now=time.time() + skew)
        claims = jwt.decode(assertion, options={"verify_signature": False})
        if skew < 0:  # "behind": the assertion's window closes before the STS's now
            assertion = jwt.encode(
                {**claims, "exp": int(time.time()) + skew}, load_key(served.key_file), algorithm="ES256"
            )
        response = served.world.client.post(
            "/realms/jobmgr/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "fnode",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": assertion,
            },
        )
    finally:
        agent.close()
    assert (response.status_code == 200) is ok, response.get_json()


def load_key(path: Path) -> Any:
    return serialization.load_pem_private_key(path.read_bytes(), password=None)
