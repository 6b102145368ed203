"""Two STS replicas on one database: a submit on one wakes the agent waiting on the other
(PostgreSQL LISTEN/NOTIFY), and when a replica holding many waiting agents is killed with
SIGKILL they reconnect to the other and no job is lost or run twice."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fleet.fleet import (
    NO_POLL,
    WAIT,
    Fleet,
    SimulatedAgent,
    agent_client,
    config_for,
    kill_tree,
    metric,
    replicas,
    until,
)
from tests.production.servers import StsProcess, bearer

pytestmark = [pytest.mark.db]
AGENTS = 200
JOBS = 60


@pytest.fixture
def pair(tmp_path: Path, database_url: str, on_postgres: bool) -> Iterator[tuple[StsProcess, StsProcess]]:
    if not on_postgres:
        pytest.skip("replicas wake each other through PostgreSQL (JOBSTS_TEST_DATABASE_URL)")
    with replicas(config_for(tmp_path, database_url), tmp_path, 2) as (first, second):
        yield first, second


def test_submit_on_one_replica_wakes_the_agent_on_the_other(
    tmp_path: Path, database_url: str, on_postgres: bool
) -> None:
    if not on_postgres:
        pytest.skip("replicas wake each other through PostgreSQL (JOBSTS_TEST_DATABASE_URL)")
    with replicas(config_for(tmp_path, database_url), tmp_path, 2, env=NO_POLL) as (first, second):
        _cross_wake(first, second)


def _cross_wake(first: StsProcess, second: StsProcess) -> None:
    fleet = Fleet.register(first, 1)

    async def scenario() -> httpx.Response:
        async with httpx.AsyncClient(timeout=180) as client:
            waiting = asyncio.create_task(
                client.get(f"{second.url}{WAIT}", params={"timeout": 60}, headers=bearer(fleet.tokens["n0000"]))
            )
            await asyncio.to_thread(until, lambda: metric(second, "jobsts_agents_waiting") == 1, "the wait")
            await asyncio.to_thread(first.submit, fleet.admin, "n0000")
            return await waiting

    answer = asyncio.run(scenario())
    assert answer.json() == {"work": True}
    # Woken by the notification (the fallback poll is off here).
    assert metric(second, "jobsts_agent_wakeups_total", '{source="notify"}') == 1
    assert second.lease(fleet.tokens["n0000"]) is not None


def test_killed_replica_agents_reconnect_and_no_job_is_lost(pair: tuple[StsProcess, StsProcess]) -> None:
    survivor, doomed = pair
    fleet = Fleet.register(survivor, AGENTS)
    agents = [SimulatedAgent(node, token, [doomed.url, survivor.url]) for node, token in fleet.tokens.items()]

    async def scenario() -> list[str]:
        stop = asyncio.Event()
        clients = [agent_client() for _ in agents]  # each agent its own, as real agents
        try:
            running = [
                asyncio.create_task(agent.run(client, stop)) for agent, client in zip(agents, clients, strict=True)
            ]
            await asyncio.to_thread(until, lambda: metric(doomed, "jobsts_agents_waiting") == AGENTS, "all waits")
            await asyncio.to_thread(kill_tree, doomed)
            # Submitted at once, while the agents are still reconnecting.
            nodes = list(fleet.tokens)[:JOBS]
            jobs = [await asyncio.to_thread(survivor.submit, fleet.admin, node) for node in nodes]

            def all_done() -> bool:
                states = [
                    survivor.client.get(f"/api/v1/jobs/{job}", headers=bearer(fleet.admin)).json().get("state")
                    for job in jobs
                ]
                return all(state == "succeeded" for state in states)

            await asyncio.to_thread(until, all_done, "every job to succeed", 300)
            await asyncio.to_thread(
                until, lambda: metric(survivor, "jobsts_agents_waiting") == AGENTS, "every agent on the survivor"
            )
            stop.set()
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            return jobs
        finally:
            await asyncio.gather(*(client.aclose() for client in clients))

    try:
        jobs = asyncio.run(scenario())
    except AssertionError as exc:
        raise AssertionError(f"{exc}; survivor's log: {survivor.stderr()[-4000:]}") from None
    assert [refusal for agent in agents for refusal in agent.refusals] == []
    leased = Counter(job for agent in agents for job in agent.leased)
    assert set(leased) == set(jobs) and all(count == 1 for count in leased.values())
    assert all(agent.errors >= 1 for agent in agents)  # every one was cut off and moved
