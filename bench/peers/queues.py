"""pgqueuer and procrastinate, PostgreSQL job queues, as the dispatch peers of jobsts.

Each library runs on a private database of the bench's PostgreSQL and through its normal
public API, as its users would write it:

- pgqueuer: ``Queries(AsyncpgPoolDriver(pool)).enqueue(...)`` to submit; one
  ``QueueManager(Queries(AsyncpgDriver(connection)))`` per worker, ``run()`` with the library's
  defaults (it dequeues up to ``batch_size=10`` jobs per query and logs completions in a
  buffer flushed before ``run()`` returns), on uvloop as ``pgq run`` does when installed;
- procrastinate: ``App(connector=PsycopgConnector(...))``, ``task.defer_async()`` to submit;
  one ``app.run_worker_async(wait=False)`` per worker (concurrency 1, the default), on asyncio.

A round mirrors bench/jobs.py: ``clients`` coroutines each submit their share of ``jobs``
one call per job (timed), then ``clients`` workers dequeue and complete all of them (timed, from
the workers' start to the last completion recorded). Every job must run exactly once: each
round checks the ids seen by the task and the rows left in the database, and raises otherwise.

``python -m bench.peers.queues [--jobs 300] [--runs 3]`` prints a table of the runs.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any, TypeVar

import asyncpg
import psycopg
from pgqueuer import AsyncpgDriver, AsyncpgPoolDriver, Job, Queries, QueueManager
from procrastinate import App, JobContext, PsycopgConnector

from bench.peers.postgres import DEFAULT_POSTGRES, PgTarget, private_database
from bench.peers.stats import Spread, markdown_table

T = TypeVar("T")
ENTRYPOINT = "bench_noop"
PAYLOAD = b'{"argv": ["/bin/echo", "bench"]}'  # about the size of bench/jobs.py's spec
ROUND_TIMEOUT = 300.0


class DispatchError(RuntimeError):
    """A job ran twice, never ran, or was left behind in the database."""


@dataclass(frozen=True)
class QueueFigures:
    """Jobs per second of one run, by number of submitting clients / dispatching workers."""

    peer: str
    jobs: int
    enqueue_per_s: dict[int, float] = field(default_factory=dict)
    dispatch_per_s: dict[int, float] = field(default_factory=dict)


def _run_loop(coro: Coroutine[Any, Any, T], *, uvloop_if_installed: bool) -> T:
    if uvloop_if_installed:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            result: T = uvloop.run(coro)
            return result
    return asyncio.run(coro)


async def _timed(work: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await asyncio.wait_for(work(), ROUND_TIMEOUT)
    return time.perf_counter() - started


def _check_once(peer: str, seen: Sequence[object], jobs: int) -> None:
    if len(seen) != jobs or len(set(seen)) != jobs:
        raise DispatchError(f"{peer}: {len(seen)} runs of {len(set(seen))} distinct jobs, expected {jobs} once each")


# -- pgqueuer ------------------------------------------------------------------------------


@contextmanager
def pgqueuer_database(postgres_url: str = DEFAULT_POSTGRES) -> Iterator[PgTarget]:
    """A private database with pgqueuer's schema installed (``Queries.install()``)."""
    with private_database(postgres_url, prefix="bench_pgqueuer") as target:

        async def install() -> None:
            connection = await asyncpg.connect(target.url)
            try:
                await Queries(AsyncpgDriver(connection)).install()
            finally:
                await connection.close()

        asyncio.run(install())
        yield target


async def _pgqueuer_enqueue(target: PgTarget, jobs: int, clients: int) -> float:
    pool = await asyncpg.create_pool(target.url, min_size=clients, max_size=clients)
    try:
        queries = Queries(AsyncpgPoolDriver(pool))

        async def client(index: int) -> None:
            for _ in range(index, jobs, clients):
                await queries.enqueue(ENTRYPOINT, PAYLOAD)

        async def all_clients() -> None:
            await asyncio.gather(*(client(i) for i in range(clients)))

        return await _timed(all_clients)
    finally:
        await pool.close()


async def _pgqueuer_dispatch(target: PgTarget, jobs: int, workers: int, batch_size: int) -> float:
    connections = [await asyncpg.connect(target.url) for _ in range(workers)]
    seen: list[int] = []
    all_seen = asyncio.Event()
    managers = []
    for connection in connections:
        manager = QueueManager(Queries(AsyncpgDriver(connection)))

        @manager.entrypoint(ENTRYPOINT)
        async def noop(job: Job) -> None:
            seen.append(int(job.id))
            if len(seen) >= jobs:
                all_seen.set()

        managers.append(manager)

    async def dispatch() -> None:
        runs = [asyncio.create_task(m.run(batch_size=batch_size)) for m in managers]
        waiter = asyncio.create_task(all_seen.wait())
        await asyncio.wait([waiter, *runs], return_when=asyncio.FIRST_COMPLETED)
        for manager in managers:
            manager.shutdown.set()
        waiter.cancel()
        await asyncio.gather(*runs)  # run() flushes the completion log buffer before it returns

    try:
        seconds = await _timed(dispatch)
        _check_once("pgqueuer", seen, jobs)
        left = await connections[0].fetchval("SELECT count(*) FROM pgqueuer")
        done = await connections[0].fetchval(
            "SELECT count(*) FROM pgqueuer_log WHERE status = 'successful' AND job_id = ANY($1::bigint[])", seen
        )
        if left or done != jobs:
            raise DispatchError(f"pgqueuer: {left} jobs left in the queue, {done} of {jobs} logged successful")
        return seconds
    finally:
        for connection in connections:
            await connection.close()


def pgqueuer_round(target: PgTarget, jobs: int, clients: int, *, batch_size: int = 10) -> tuple[float, float]:
    """(enqueue jobs/s, dispatch jobs/s) with ``clients`` submitters then as many workers."""

    async def both() -> tuple[float, float]:
        enqueue = await _pgqueuer_enqueue(target, jobs, clients)
        dispatch = await _pgqueuer_dispatch(target, jobs, clients, batch_size)
        return jobs / enqueue, jobs / dispatch

    return _run_loop(both(), uvloop_if_installed=True)


# -- procrastinate -------------------------------------------------------------------------


def _procrastinate_app(target: PgTarget, connections: int) -> App:
    return App(connector=PsycopgConnector(conninfo=target.url, min_size=connections, max_size=connections))


@contextmanager
def procrastinate_database(postgres_url: str = DEFAULT_POSTGRES) -> Iterator[PgTarget]:
    """A private database with procrastinate's schema applied (``schema_manager.apply_schema_async()``)."""
    with private_database(postgres_url, prefix="bench_procrastinate") as target:

        async def install() -> None:
            async with _procrastinate_app(target, 1).open_async() as app:
                await app.schema_manager.apply_schema_async()

        asyncio.run(install())
        yield target


def _procrastinate_counts(target: PgTarget) -> dict[str, int]:
    with psycopg.connect(target.url) as conn:
        rows = conn.execute("SELECT status::text, count(*) FROM procrastinate_jobs GROUP BY status").fetchall()
    return {str(status): int(count) for status, count in rows}


def procrastinate_round(target: PgTarget, jobs: int, clients: int) -> tuple[float, float]:
    """(enqueue jobs/s, dispatch jobs/s) with ``clients`` submitters then as many workers."""
    before = _procrastinate_counts(target).get("succeeded", 0)
    seen: list[int] = []

    async def both() -> tuple[float, float]:
        app = _procrastinate_app(target, clients)

        @app.task(name=ENTRYPOINT, pass_context=True)
        async def noop(context: JobContext, argv: list[str]) -> None:
            if context.job.id is None:
                raise DispatchError("procrastinate ran a job without an id")
            seen.append(context.job.id)

        async with app.open_async():

            async def client(index: int) -> None:
                for _ in range(index, jobs, clients):
                    await noop.defer_async(argv=["/bin/echo", "bench"])

            async def submit() -> None:
                await asyncio.gather(*(client(i) for i in range(clients)))

            async def dispatch() -> None:
                await asyncio.gather(
                    *(
                        app.run_worker_async(
                            wait=False,
                            concurrency=1,
                            name=f"bench-{i}",
                            install_signal_handlers=False,
                            listen_notify=False,
                        )
                        for i in range(clients)
                    )
                )

            enqueue = await _timed(submit)
            dispatched = await _timed(dispatch)
        return jobs / enqueue, jobs / dispatched

    rates = _run_loop(both(), uvloop_if_installed=False)
    _check_once("procrastinate", seen, jobs)
    counts = _procrastinate_counts(target)
    if counts.get("succeeded", 0) - before != jobs or sum(counts.values()) != counts.get("succeeded", 0):
        raise DispatchError(f"procrastinate: job states after the round {counts}, expected {jobs} more succeeded")
    return rates


# -- both ----------------------------------------------------------------------------------


def measure_pgqueuer(
    postgres_url: str = DEFAULT_POSTGRES, jobs: int = 300, concurrency: Sequence[int] = (1, 8), *, batch_size: int = 10
) -> QueueFigures:
    """One run of pgqueuer on a private database: a round per entry of ``concurrency``."""
    figures = QueueFigures(f"pgqueuer {version('pgqueuer')}", jobs)
    with pgqueuer_database(postgres_url) as target:
        for clients in concurrency:
            figures.enqueue_per_s[clients], figures.dispatch_per_s[clients] = pgqueuer_round(
                target, jobs, clients, batch_size=batch_size
            )
    return figures


def measure_procrastinate(
    postgres_url: str = DEFAULT_POSTGRES, jobs: int = 300, concurrency: Sequence[int] = (1, 8)
) -> QueueFigures:
    """One run of procrastinate on a private database: a round per entry of ``concurrency``."""
    figures = QueueFigures(f"procrastinate {version('procrastinate')}", jobs)
    with procrastinate_database(postgres_url) as target:
        for clients in concurrency:
            figures.enqueue_per_s[clients], figures.dispatch_per_s[clients] = procrastinate_round(target, jobs, clients)
    return figures


def measure_queues(
    postgres_url: str = DEFAULT_POSTGRES, jobs: int = 300, concurrency: Sequence[int] = (1, 8)
) -> list[QueueFigures]:
    """One run of each peer, pgqueuer then procrastinate."""
    return [measure_pgqueuer(postgres_url, jobs, concurrency), measure_procrastinate(postgres_url, jobs, concurrency)]


def table(runs: Sequence[Sequence[QueueFigures]]) -> str:
    """Markdown: one row per peer, measure and concurrency; min/median/max over the runs."""
    rows: list[tuple[str, str, str]] = []
    for position, first in enumerate(runs[0]):
        for label, attribute, unit in (
            ("enqueue", "enqueue_per_s", "client"),
            ("dispatch (dequeue + complete)", "dispatch_per_s", "worker"),
        ):
            for count in getattr(first, attribute):
                values = [getattr(run[position], attribute)[count] for run in runs]
                rows.append(
                    (first.peer, f"{label}, {count} {unit}{'s' if count > 1 else ''}", Spread.of(values).format(".0f"))
                )
    return markdown_table(["peer", "jobs/s", f"median (min-max) of {len(runs)} runs, {runs[0][0].jobs} jobs"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--postgres", default=os.environ.get("JOBSTS_TEST_DATABASE_URL") or DEFAULT_POSTGRES)
    args = parser.parse_args()
    # Under ``python -m`` this file is ``__main__``; procrastinate warns about an App built in
    # ``__main__`` (its tasks could not be imported by name), so the imported module builds it.
    module = importlib.import_module("bench.peers.queues")
    runs = []
    for index in range(args.runs):
        run = module.measure_queues(args.postgres, args.jobs, args.concurrency)
        runs.append(run)
        for figures in run:
            print(f"run {index + 1}: {figures}", flush=True)
    print(module.table(runs))


if __name__ == "__main__":
    main()
