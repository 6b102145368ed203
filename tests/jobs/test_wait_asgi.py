"""The native wait route (``sts.jobs.wait.AgentWaits`` under ``sts.asgi.StsAsgi``), in process:
it authenticates without a Flask request, from the per-process cache, and a revocation or a
node's removal takes effect on the very next wait and lease; a wake-up that arrives while a
wait is being admitted is not lost; a requeue wakes a waiting agent; a wait without work ends at
a random point of its last fifth. On SQLite and (``-m db``) PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from realms.tokens import AGENT_TOKEN
from realms.tokens import verify as verify_token
from sts.asgi import StsAsgi
from sts.jobs.models import Job
from sts.jobs.reaper import reap_all
from sts.jobs.wait import POLL_ENV, POLL_SECONDS, AgentWaits, Reply, poll_seconds, wait_seconds
from sts.nodes.models import Node
from tests.jobs.conftest import World

pytestmark = pytest.mark.db
WAIT = "/api/v1/agent/wait"


@pytest.fixture
def asgi(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[StsAsgi]:
    # No fallback poll: what wakes a wait in these tests is the notification alone.
    monkeypatch.setenv(POLL_ENV, "3600")
    application = StsAsgi(world.app, threads=2)
    yield application
    application.wait_threads.shutdown(wait=True)


def run(asgi: StsAsgi, body: Callable[[httpx.AsyncClient], Awaitable[None]], lifespan: bool = True) -> None:
    """Run ``body`` against ``asgi`` on a fresh event loop, with the wait registry started (the
    ASGI lifespan) unless ``lifespan`` is false."""

    async def main() -> None:
        if lifespan:
            await asgi.waits.start()
        try:
            transport = httpx.ASGITransport(app=asgi)
            async with httpx.AsyncClient(transport=transport, base_url="http://sts.test") as client:
                await body(client)
        finally:
            if lifespan:
                await asgi.waits.stop()

    asyncio.run(main())


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _revoke(world: World, token: str) -> None:
    verified = verify_token(
        token, AGENT_TOKEN, world.services.keys.trust_resolver(), audience=world.services.config.audience
    )
    with world.services.session() as session:
        world.services.revoke(session, verified.claims["jti"], int(verified.claims["exp"]), "test")


def _state(world: World, job_id: str) -> str:
    with world.services.session() as session:
        return str(session.scalars(select(Job.state).where(Job.id == job_id)).one())


def test_a_revoked_agent_token_waits_for_nothing(world: World, asgi: StsAsgi) -> None:
    token = world.agent_token()

    async def body(client: httpx.AsyncClient) -> None:
        first = await client.get(WAIT, params={"timeout": 1}, headers=_bearer(token))
        assert first.status_code == 200 and first.json() == {"work": False}
        assert len(world.services.node_auth) == 1  # the next wait would be answered from the cache
        job = await asyncio.to_thread(world.submit)
        await asyncio.to_thread(_revoke, world, token)
        refused = await client.get(WAIT, params={"timeout": 1}, headers=_bearer(token))
        assert refused.status_code == 401 and refused.json()["code"] == "token.revoked"
        assert refused.headers["content-type"] == "application/problem+json"
        leased = await asyncio.to_thread(
            world.client.post, "/api/v1/agent/lease", json={"wait": 0}, headers=_bearer(token)
        )
        assert leased.status_code == 401 and leased.get_json()["code"] == "token.revoked"
        assert _state(world, job["id"]) == "queued"

    run(asgi, body)


def test_an_unregistered_node_waits_for_nothing(world: World, asgi: StsAsgi) -> None:
    token = world.agent_token()

    async def body(client: httpx.AsyncClient) -> None:
        # Without the lifespan the route answers "work" right after authenticating.
        assert (await client.get(WAIT, params={"timeout": 1}, headers=_bearer(token))).json() == {"work": True}
        with world.services.session() as session:
            node = session.get(Node, "node1")
            assert node is not None
            session.delete(node)
        refused = await client.get(WAIT, params={"timeout": 1}, headers=_bearer(token))
        assert refused.status_code == 401 and refused.json()["code"] == "node.unknown"

    run(asgi, body, lifespan=False)


def test_a_parked_wait_revoked_meanwhile_leases_nothing(world: World, asgi: StsAsgi) -> None:
    token = world.agent_token()

    async def body(client: httpx.AsyncClient) -> None:
        waiting = asyncio.create_task(client.get(WAIT, params={"timeout": 30}, headers=_bearer(token)))
        while not asgi.waits.registry or not asgi.waits.registry.nodes():
            await asyncio.sleep(0.01)
        await asyncio.to_thread(_revoke, world, token)
        job = await asyncio.to_thread(world.submit)
        # Authenticated when it parked, the wait is woken; the lease that follows is refused.
        assert (await waiting).json() == {"work": True}
        leased = await asyncio.to_thread(
            world.client.post, "/api/v1/agent/lease", json={"wait": 0}, headers=_bearer(token)
        )
        assert leased.status_code == 401 and leased.get_json()["code"] == "token.revoked"
        assert _state(world, job["id"]) == "queued"
        assert world.lease() is not None  # a valid token of the node gets it

    run(asgi, body)


def test_a_wake_up_during_admission_is_not_lost(world: World, asgi: StsAsgi, monkeypatch: pytest.MonkeyPatch) -> None:
    token = world.agent_token()
    admit = AgentWaits._admit_one

    def admit_then_submit(self: AgentWaits, authorization: str) -> Any:
        # The queue was read empty; the job arrives (and its wake-up fires) before the wait parks.
        outcome = admit(self, authorization)
        assert outcome == ("node1", False)
        world.submit()
        if world.services.db.engine.dialect.name == "postgresql":
            time.sleep(0.5)  # let the notification reach the listener first
        return outcome

    monkeypatch.setattr(AgentWaits, "_admit_one", admit_then_submit)

    async def body(client: httpx.AsyncClient) -> None:
        answer = await client.get(WAIT, params={"timeout": 3}, headers=_bearer(token))
        assert answer.json() == {"work": True}

    run(asgi, body)


def test_a_requeue_wakes_the_waiting_agent(world: World, asgi: StsAsgi) -> None:
    offset = {"seconds": 0.0}
    world.services.clock = lambda: time.time() + offset["seconds"]
    token = world.agent_token()
    world.submit()
    assert world.lease() is not None  # leased, never started

    async def body(client: httpx.AsyncClient) -> None:
        waiting = asyncio.create_task(client.get(WAIT, params={"timeout": 10}, headers=_bearer(token)))
        while not asgi.waits.registry or not asgi.waits.registry.nodes():
            await asyncio.sleep(0.01)
        offset["seconds"] = world.services.lease_seconds + 1
        assert await asyncio.to_thread(reap_all, world.services) == 1
        # Woken by the requeue's notification: with no fallback poll, nothing else would.
        assert (await waiting).json() == {"work": True}

    run(asgi, body)


def test_a_wait_ends_at_a_random_point_of_its_last_fifth() -> None:
    # Agents that started together must not re-wait together: a wait's end is spread over [0.8 T, T].
    source = random.Random(7)
    ends = [wait_seconds(55, source.random) for _ in range(1000)]
    assert all(44.0 <= end <= 55.0 for end in ends)
    assert min(ends) < 45.0 and max(ends) > 54.0  # over the whole fifth, not one value
    assert wait_seconds(55, lambda: 0.0) == 55.0 and wait_seconds(55, lambda: 1.0) == 44.0


def test_the_wait_route_draws_its_end(world: World, asgi: StsAsgi) -> None:
    token = world.agent_token()
    draws: list[float] = []

    def draw() -> float:
        draws.append(1.0)
        return 1.0  # the earliest end: 0.8 of the timeout

    asgi.waits.draw = draw

    async def body(client: httpx.AsyncClient) -> None:
        for _ in range(2):
            answer = await client.get(WAIT, params={"timeout": 1}, headers=_bearer(token))
            assert answer.status_code == 200 and answer.json() == {"work": False}

    run(asgi, body)
    assert draws == [1.0, 1.0]  # one draw per wait that parked


def test_waits_admitted_together_are_each_checked(world: World, asgi: StsAsgi) -> None:
    # A batch reads the authentication version once, after its waits arrived, and serves its
    # cache hits with it: a token revoked after the cache was filled is refused as when alone.
    cached, good = world.agent_token(), world.agent_token()
    other = world.agent_token("cellnode", "cellB")
    assert asgi.waits._admit_many([f"Bearer {cached}"]) == [("node1", False)]
    assert len(world.services.node_auth) == 1
    world.submit()
    _revoke(world, cached)
    outcomes = asgi.waits._admit_many([f"Bearer {cached}", f"Bearer {other}", "Bearer junk", f"Bearer {good}"])
    refused, admitted, junk, fresh = outcomes
    assert isinstance(refused, Reply) and refused.status == 401
    assert json.loads(refused.body)["code"] == "token.revoked"
    assert admitted == ("cellnode", False)
    assert isinstance(junk, Reply) and junk.status == 401
    assert fresh == ("node1", True)  # its node has the job submitted above
    # Filled again under the new version, the cache answers the next batch: still refused.
    again = asgi.waits._admit_many([f"Bearer {good}", f"Bearer {cached}"])
    assert again[0] == ("node1", True)
    assert isinstance(again[1], Reply) and json.loads(again[1].body)["code"] == "token.revoked"


def test_waits_arriving_in_one_loop_turn_are_admitted_in_one_batch(
    world: World, asgi: StsAsgi, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = [world.agent_token(), world.agent_token("cellnode", "cellB"), world.agent_token()]
    _revoke(world, tokens[2])
    batches: list[int] = []
    admit_many = AgentWaits._admit_many

    def counted(self: AgentWaits, authorizations: list[str]) -> Any:
        batches.append(len(authorizations))
        return admit_many(self, authorizations)

    monkeypatch.setattr(AgentWaits, "_admit_many", counted)

    async def main() -> list[Any]:
        return list(await asyncio.gather(*(asgi.waits._admit(f"Bearer {token}") for token in tokens)))

    first, second, third = asyncio.run(main())
    assert batches == [3]
    assert first == ("node1", False) and second == ("cellnode", False)
    assert isinstance(third, Reply) and json.loads(third.body)["code"] == "token.revoked"


def test_the_lifespan_starts_and_stops_the_collector_check(asgi: StsAsgi) -> None:
    """A production worker freezes what it holds after start-up and checks after every full
    collection (``sts.collector_pauses``); the check ends with the server."""
    import gc

    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[str] = []
    seen: dict[str, Any] = {}

    async def receive() -> dict[str, Any]:
        if len(messages) == 1:  # started: look before the shutdown arrives
            seen["frozen"] = gc.get_freeze_count()
            seen["task"] = asgi._collector_task
        return messages.pop(0)

    async def send(message: Any) -> None:
        sent.append(message["type"])
        if message["type"] == "lifespan.shutdown.complete":
            seen["stopped"] = seen["task"].cancelled()

    try:
        asyncio.run(asgi({"type": "lifespan"}, receive, send))
    finally:
        gc.unfreeze()
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert seen["frozen"] > 0
    assert seen["stopped"]


# Each is a digit to str.isdigit(); "²" and "①" are not numbers to int(), U+0661 (Arabic-Indic one) is.
NOT_ASCII_NUMBERS = ["\u00b2", "\u2460", "\u0661", "1\u00b2"]


@pytest.mark.parametrize("timeout", NOT_ASCII_NUMBERS)
def test_a_timeout_that_is_not_an_ascii_number_is_refused(world: World, asgi: StsAsgi, timeout: str) -> None:
    token = world.agent_token()

    async def body(client: httpx.AsyncClient) -> None:
        refused = await client.get(WAIT, params={"timeout": timeout}, headers=_bearer(token))
        assert refused.status_code == 400 and refused.json()["code"] == "job.invalid_spec"

    run(asgi, body)
    # The same on the thread route (plain WSGI serving, sts.wsgi).
    fallback = world.client.get(WAIT, query_string={"timeout": timeout}, headers=_bearer(token))
    assert fallback.status_code == 400 and fallback.get_json()["code"] == "job.invalid_spec"


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [("0.5", 0.5), ("inf", POLL_SECONDS), ("nan", POLL_SECONDS), ("0", POLL_SECONDS), ("", POLL_SECONDS)],
)
def test_the_fallback_poll_period_is_a_finite_positive_number(
    monkeypatch: pytest.MonkeyPatch, raw: str, seconds: float
) -> None:
    # "inf" would switch the fallback poll off: a lost notification would then never be noticed.
    monkeypatch.setenv(POLL_ENV, raw)
    assert poll_seconds() == seconds
