"""The poll loop delivers finished jobs' results with its next ``/leases`` call (one round trip
fewer per batch), each exactly once; an STS that ignores results on a lease gets them on
``/results`` instead, and nothing is lost either way."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from agent_client.config import load_agent_config
from agent_client.loop import open_agent
from tests.agent_client.fake_sts import FakeState
from tests.agent_client.test_loop import lease_for, write_agent_dir

JOBS = 3


@dataclasses.dataclass
class Finished:
    """What the agent left behind once its loop stopped."""

    outbox: int
    carries_results: bool


def run_until_reported(tmp_path: Path, state: FakeState, key: ec.EllipticCurvePrivateKey, count: int) -> Finished:
    """Run one agent's poll loop (one slot: while its job runs the loop does not wait for work, so
    the result waits for the next lease) on its own thread until ``count`` results arrived."""
    config = load_agent_config(write_agent_dir(tmp_path / "agent", state.base_url, key), environ={})
    cancel, finished = threading.Event(), []

    def loop() -> None:
        # The agent lives on this thread: its journal is a SQLite connection of this thread.
        agent = open_agent(dataclasses.replace(config, max_jobs=1), cancel=cancel)
        try:
            agent.run()
            finished.append(Finished(len(agent.outbox), agent.carries_results))
        finally:
            agent.close()

    thread = threading.Thread(target=loop)
    thread.start()
    try:
        for _ in range(600):
            if len(state.results) >= count:
                break
            cancel.wait(0.05)
    finally:
        cancel.set()
        thread.join(30)
    assert not thread.is_alive() and finished
    return finished[0]


def queue_jobs(state: FakeState) -> list[str]:
    leases = [lease_for(state, jti=f"carried-{index}") for index in range(JOBS)]
    state.leases.extend(leases)
    return [lease["job"]["id"] for lease in leases]


def test_results_ride_on_the_next_lease_exactly_once(
    tmp_path: Path,
    fake: FakeState,
    node_key: ec.EllipticCurvePrivateKey,
) -> None:
    fake.carries_results = True
    job_ids = queue_jobs(fake)
    agent = run_until_reported(tmp_path, fake, node_key, JOBS)
    assert sorted(fake.results) == sorted(job_ids)
    assert all(result["outcome"] == "succeeded" for result in fake.results.values())
    # Every result went with a lease, once: no /results call, no result sent twice.
    assert sorted(fake.carried) == sorted(job_ids)
    assert fake.results_calls == 0
    assert agent.outbox == 0
    assert agent.carries_results


def test_an_sts_that_ignores_results_on_a_lease_gets_them_on_results(
    tmp_path: Path,
    fake: FakeState,
    node_key: ec.EllipticCurvePrivateKey,
) -> None:
    fake.carries_results = False  # an older STS: it drops "results" and answers no outcomes
    job_ids = queue_jobs(fake)
    agent = run_until_reported(tmp_path, fake, node_key, JOBS)
    assert sorted(fake.results) == sorted(job_ids)
    assert fake.carried == [] and fake.results_calls >= 1
    assert agent.outbox == 0
    assert not agent.carries_results
    # The lease that carried the ignored results still handed out its job: every job ran once.
    assert sorted(fake.started) == sorted(job_ids)
