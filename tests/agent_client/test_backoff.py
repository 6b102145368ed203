"""Jittered retries: agents cut off together do not retry together. The loop's backoff after
an unreachable STS and the outbox's delivery backoff are each drawn from the upper half of
their exponential delay, and the first wait for work after a start or a failure asks for a
length drawn over ``[poll_wait / 5, poll_wait]`` (``agent_client.backoff``). Deterministic: the
random source and the waits are injected, nothing sleeps."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from agent_client.backoff import first_wait, jittered
from agent_client.config import load_agent_config
from agent_client.errors import StsUnavailable
from agent_client.loop import open_agent
from agent_client.outbox import Outbox
from realms.wire.documents import MAX_LEASE_WAIT, ItemOutcome, Result
from tests.agent_client.fake_sts import FakeState
from tests.agent_client.test_loop import write_agent_dir


@pytest.fixture
def node_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def test_a_jittered_delay_is_in_the_upper_half_and_varies() -> None:
    source = random.Random(13)
    pauses = [jittered(8.0, source.random) for _ in range(1000)]
    assert all(4.0 <= pause <= 8.0 for pause in pauses)
    assert min(pauses) < 4.5 and max(pauses) > 7.5  # spread over the whole half, not one value
    assert jittered(8.0, lambda: 0.0) == 4.0 and jittered(8.0, lambda: 1.0) == 8.0


class CountedCancel(threading.Event):
    """The agent's cancel event: records each pause asked of it and never sleeps; set after ``stop`` pauses."""

    def __init__(self, stop: int) -> None:
        super().__init__()
        self.stop, self.pauses = stop, list[float | None]()

    def wait(self, timeout: float | None = None) -> bool:
        self.pauses.append(timeout)
        if len(self.pauses) >= self.stop:
            self.set()
        return self.is_set()


def test_the_loop_retries_an_unreachable_sts_with_jitter(tmp_path: Path, node_key: ec.EllipticCurvePrivateKey) -> None:
    config = load_agent_config(write_agent_dir(tmp_path / "agent", "http://127.0.0.1:9", node_key), environ={})
    cancel = CountedCancel(4)
    worker = open_agent(config, cancel=cancel)
    worker.draw = iter([0.0, 1.0, 0.5, 0.25]).__next__
    try:
        worker.run()
    finally:
        worker.close()
    # Delays 1, 2, 4, 8 s, each drawn from its upper half by the injected source.
    assert cancel.pauses == [0.5, 2.0, 3.0, 5.0]


def test_the_outbox_backs_off_with_jitter(tmp_path: Path) -> None:
    now = [0.0]
    draws = iter([0.0, 1.0])
    outbox = Outbox(tmp_path / "outbox", clock=lambda: now[0], draw=draws.__next__)
    result = Result("succeeded", 0, "", "", None, None, "alice", ())
    outbox.put("job-1", result)

    def unreachable(_batch: list[tuple[str, Result]]) -> list[ItemOutcome]:
        raise StsUnavailable("the STS is unreachable")

    assert outbox.deliver(unreachable) == 0  # first failure: 1 s, drawn as 0.5 s
    now[0] = 0.49
    assert not outbox.due()
    now[0] = 0.5
    assert outbox.due()
    assert outbox.deliver(unreachable) == 0  # second failure: 2 s, drawn as 2 s
    now[0] = 2.49
    assert not outbox.due()
    now[0] = 2.5
    assert outbox.due() and len(outbox) == 1


def test_a_first_wait_is_spread_over_the_whole_period() -> None:
    source = random.Random(13)
    timeouts = [first_wait(55, source.random) for _ in range(1000)]
    assert all(11 <= timeout <= 55 for timeout in timeouts)
    assert min(timeouts) <= 13 and max(timeouts) >= 53  # over the whole range, not one value
    assert first_wait(25, lambda: 0.0) == 5 and first_wait(25, lambda: 1.0) == 25
    assert first_wait(1, lambda: 0.0) == 1  # never a wait of 0 s


def test_against_an_sts_without_the_wait_route_a_long_period_long_polls_the_lease_within_its_limit(
    tmp_path: Path, fake: FakeState, node_key: ec.EllipticCurvePrivateKey
) -> None:
    path = write_agent_dir(tmp_path / "agent", fake.base_url, node_key)
    path.write_text(path.read_text().replace("poll_wait = 0", "poll_wait = 55"))
    worker = open_agent(load_agent_config(path, environ={}))
    try:
        assert worker.run_once() is None  # no wait route (404), no work: no refusal either
    finally:
        worker.close()
    # The lease's long-poll limit is 30 s (an older STS refuses more); 55 s is for waits only.
    assert fake.lease_waits == [MAX_LEASE_WAIT]


def test_the_first_wait_after_a_start_and_after_a_failure_is_spread(
    tmp_path: Path, fake: FakeState, node_key: ec.EllipticCurvePrivateKey
) -> None:
    path = write_agent_dir(tmp_path / "agent", fake.base_url, node_key)
    path.write_text(path.read_text().replace("poll_wait = 0", "poll_wait = 25"))
    config = load_agent_config(path, environ={})
    # No work twice, then a refusal (the STS restarting): the loop backs off and reconnects.
    fake.wait_answers = [False, False, 503, False, False]
    cancel = CountedCancel(2)  # stops at the backoff after the answers run out (503)
    worker = open_agent(config, cancel=cancel)
    worker.draw = lambda: 1.0
    worker.spread = iter([0.0, 0.5]).__next__
    try:
        worker.run()
    finally:
        worker.close()
    # Spread (5 s, then 15 s) only on the first wait after the start and after the failure;
    # the steady state asks for the whole period.
    assert fake.wait_timeouts == [5, 25, 25, 15, 25, 25]
    assert len(cancel.pauses) == 2
