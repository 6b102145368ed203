"""Wake-ups stay inside their schema: NOTIFY is database-wide, so two deployments (or two test
runs) in different schemas of one PostgreSQL database must not wake each other's agents."""

from __future__ import annotations

import asyncio
import os

import pytest
from sqlalchemy import create_engine, literal, select

from sts.jobs.wakeup import WaiterRegistry, listen, listen_conninfo, notify_expression
from tests.conftest import PG_URL_ENV
from tests.pg_schema import postgres_schema

pytestmark = [pytest.mark.db]


class Recording(WaiterRegistry):
    """A registry that records each node it is asked to wake."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.woken: list[str] = []

    def wake(self, node_id: str, source: str = "notify") -> int:
        self.woken.append(node_id)
        return super().wake(node_id, source)


def _notify(url: str, node_id: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(select(notify_expression(literal(node_id))))
    finally:
        engine.dispose()


def test_a_wake_up_reaches_only_listeners_of_its_own_schema() -> None:
    base = os.environ.get(PG_URL_ENV)
    if not base:
        pytest.skip("NOTIFY needs PostgreSQL (JOBSTS_TEST_DATABASE_URL)")
    with postgres_schema(base) as ours_url, postgres_schema(base) as theirs_url:

        async def scenario() -> list[str]:
            loop = asyncio.get_running_loop()
            ours = Recording(loop)
            connected = asyncio.Event()
            conninfo = listen_conninfo(ours_url)
            assert conninfo is not None
            task = asyncio.create_task(listen(conninfo, ours, connected.set))
            try:
                await asyncio.wait_for(connected.wait(), 120)
                # Committed in this order, so a listener that got both would see "theirs" first.
                await asyncio.to_thread(_notify, theirs_url, "theirs")
                await asyncio.to_thread(_notify, ours_url, "ours")
                while "ours" not in ours.woken:
                    await asyncio.sleep(0.05)
                return ours.woken
            finally:
                task.cancel()

        woken = asyncio.run(asyncio.wait_for(scenario(), 180))
    assert woken == ["ours"]  # the other schema's wake-up never arrived
