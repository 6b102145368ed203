"""The agent with several slots, its durable outbox through an STS outage, and a crash between
claim and result: real STS (gunicorn, its own, so that it can be stopped), real agent pipeline
in this process (so that the outbox's clock can be stepped), real executor children."""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from agent_client.config import load_agent_config
from agent_client.loop import Agent, open_agent
from agent_client.outbox import Outbox
from tests.e2e.conftest import ADMIN, JOB_TYPES, OPERATORS
from tests.e2e.harness import Accounts, AgentNode, StsServer, jobsts, wait_terminal, write_csv
from tests.ldap_harness import SlapdServer

SLOTS = 3


class SteppedClock:
    """The outbox's clock: agent time, moved by the test (the STS keeps real time)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def own_sts(slapd: SlapdServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StsServer]:
    server = StsServer(tmp_path_factory.mktemp("sts-outage"), [slapd.realm_table("jobmgr")], bootstrap_admins=[ADMIN])
    server.prepare()
    csv = write_csv(server.workdir / "table.csv", [(OPERATORS, "operator", "allow", "*")])
    jobsts("authz", "--table", server.database_url, "import", str(csv))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def node(own_sts: StsServer, accounts: Accounts, tmp_path_factory: pytest.TempPathFactory) -> AgentNode:
    directory = tmp_path_factory.mktemp("slots") / "agent"
    made = AgentNode(
        "slots1",
        "jobmgr",
        directory,
        own_sts,
        job_types=dict(JOB_TYPES),
        rules=[{"group": OPERATORS, "account": accounts["john"]}],
    ).init()
    own_sts.register_node(own_sts.token("admin"), "slots1", "jobmgr", directory / "node.pub.pem")
    made.import_table([(OPERATORS, "operator", "allow", "*")])
    return made


@pytest.fixture
def agent(node: AgentNode) -> Iterator[Agent]:
    config = dataclasses.replace(load_agent_config(node.config_path, environ={}), max_jobs=SLOTS, poll_wait=2)
    opened = open_agent(config)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    # World-writable and sticky: the jobs run as the mapped account, not as the test.
    path = Path(tempfile.mkdtemp(prefix="jobsts-slots-"))
    path.chmod(0o1777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def sts_down(sts: StsServer) -> Iterator[None]:
    """The STS process stopped; its port held bound but not listening (connections are refused at
    once, as on a host whose STS is down), then served again on the same port."""
    port = sts.port
    sts.stop()
    hold = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    hold.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    hold.bind(("127.0.0.1", port))
    try:
        yield
    finally:
        hold.listen(128)
        sts.sock = hold
        sts.start()


def sts_rows(sts: StsServer, sql: str, *args: object) -> list[tuple[object, ...]]:
    with sqlite3.connect(sts.database_url.removeprefix("sqlite:///")) as db:
        return db.execute(sql, args).fetchall()


def test_slots_run_jobs_concurrently_and_each_once(own_sts: StsServer, agent: Agent, shared_dir: Path) -> None:
    # Each job marks itself, then waits for SLOTS marks: with fewer slots than that running at
    # once, the first jobs could never see them and would fail. Jobs past the first SLOTS see
    # them at once. So all succeeding proves SLOTS jobs ran at the same time.
    script = (
        'touch "$0/$1"; i=0; while [ "$(ls "$0" | wc -l)" -lt ' + str(SLOTS) + " ]; do "
        "i=$((i+1)); [ $i -gt 1200 ] && exit 7; sleep 0.1; done"
    )
    token = own_sts.token("john")
    jobs = [
        own_sts.submit(token, "slots1", "run", ["/bin/sh", "-c", script, str(shared_dir), f"job{i}"])["id"]
        for i in range(2 * SLOTS)
    ]
    finished: list[dict[str, Any]] = []

    def watch() -> None:
        try:
            fresh = own_sts.token("john")
            finished.extend(wait_terminal(own_sts, fresh, job_id, timeout=240) for job_id in jobs)
        finally:
            agent.cancel.set()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    agent.run()  # on this thread, which opened the journal; returns when the watcher cancels it
    watcher.join(60)
    assert [job["state"] for job in finished] == ["succeeded"] * len(jobs), [job.get("result") for job in finished]
    assert all(job["attempts"] == 1 for job in finished)
    assert sorted(os.listdir(shared_dir)) == sorted(f"job{i}" for i in range(2 * SLOTS))
    assert len(agent.outbox) == 0


def test_a_result_survives_an_sts_outage_in_the_outbox(own_sts: StsServer, agent: Agent, shared_dir: Path) -> None:
    clock = SteppedClock()
    agent.outbox = Outbox(agent.config.outbox_dir, clock=clock)
    token = own_sts.token("john")
    marker = shared_dir / "runs"
    job_id = own_sts.submit(token, "slots1", "run", ["/bin/sh", "-c", f'echo ran >> "{marker}"; echo done'])["id"]
    (lease,) = agent.client.leases(1)
    prepared = agent.prepare(lease)
    assert not isinstance(prepared, str)
    ((claimed, expires),) = agent.claim([prepared])
    with sts_down(own_sts):  # the STS process is gone: the job runs, its result cannot be delivered
        assert agent.execute(claimed, expires) == "succeeded"
        assert len(agent.outbox) == 1
        tries = 0
        while clock.now < 120:  # two minutes of agent time, every due delivery really refused
            clock.now += 1
            if agent.outbox.due():
                tries += 1
                assert agent.outbox.deliver(agent.client.results) == 0
        assert len(agent.outbox) == 1 and 5 <= tries <= 8  # backoff: 1, 2, 4, ... s
        # Meanwhile the lease ran out at the STS (its clock moved on by the outage).
        sts_rows(own_sts, "UPDATE sts_jobs SET lease_expires_at = lease_expires_at - 600 WHERE id = ?", job_id)
    assert agent.client.leases(1) == []  # the reaper: started, lease expired: lost, not requeued
    assert own_sts.job(token, job_id)["state"] == "lost"
    clock.now += 60
    assert agent.outbox.deliver(agent.client.results) == 1
    assert len(agent.outbox) == 0
    shown = own_sts.job(token, job_id)
    assert shown["state"] == "lost" and shown["attempts"] == 1
    assert shown["result"]["late"] is True and shown["result"]["exit_code"] == 0
    assert shown["result"]["stdout_tail"] == "done\n"
    assert agent.client.leases(1) == [] and agent.outbox.deliver(agent.client.results) == 0
    assert marker.read_text() == "ran\n"  # ran once, never again


def test_an_agent_that_dies_between_claim_and_result_leaves_the_job_lost(
    own_sts: StsServer, node: AgentNode, agent: Agent, shared_dir: Path
) -> None:
    token = own_sts.token("john")
    marker = shared_dir / "crash-runs"
    job_id = own_sts.submit(token, "slots1", "run", ["/bin/sh", "-c", f'echo ran >> "{marker}"'])["id"]
    (lease,) = agent.client.leases(1)
    prepared = agent.prepare(lease)
    assert not isinstance(prepared, str)
    assert len(agent.claim([prepared])) == 1
    agent.close()  # the agent dies here: claimed (running at the STS), never executed
    sts_rows(own_sts, "UPDATE sts_jobs SET lease_expires_at = lease_expires_at - 600 WHERE id = ?", job_id)
    restarted = open_agent(agent.config)
    try:
        assert restarted.run_once() is None  # no work: the job is not queued again
        # A lease reaps its node first (an idle wait does not), so the expired lease turns lost here.
        assert restarted.client.leases(1) == []
    finally:
        restarted.close()
    agent.client = restarted.client  # the fixture closes it again: harmless
    assert own_sts.job(token, job_id)["state"] == "lost"
    assert not marker.exists()
