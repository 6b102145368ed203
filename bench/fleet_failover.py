"""Failover benchmark: an STS replica holding N waiting agents (default 1,000) is killed with
SIGKILL; the agents reconnect to the other replica of the same PostgreSQL database, and the
jobs submitted at the moment of the kill all succeed, each leased exactly once.

Reports per run: seconds from the kill until every agent waits on the survivor, seconds until
every job succeeded, jobs lost (not succeeded), jobs leased twice. min / median / max over runs.
Writes its own section of bench/results.md (``results_section.write_section``). The agents are
``tests.fleet.fleet.SimulatedAgent`` (one per node) on one event loop in this process.

    .venv/bin/python bench/fleet_failover.py [--agents 1000] [--jobs 300] [--runs 3] [--no-write]

Needs PostgreSQL (JOBSTS_BENCH_DATABASE_URL, a fresh schema per run, dropped after).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from fleet import raise_nofile, schema  # noqa: E402
from results_section import write_section  # noqa: E402
from sqlalchemy import create_engine, select  # noqa: E402

from sts.jobs.models import Job  # noqa: E402
from tests.fleet.fleet import (  # noqa: E402
    Fleet,
    SimulatedAgent,
    async_client,
    config_for,
    kill_tree,
    metric,
    replicas,
    until,
)

JOBS = Job.__table__

SECTION = "bench/fleet_failover.py"
TERMINAL = {"succeeded", "failed", "refused", "lost", "expired", "cancelled"}


def one_run(count: int, jobs_count: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="jobsts-failover-") as folder, schema() as url:
        workdir = Path(folder)
        config = config_for(workdir, url)
        with config.open("a", encoding="utf-8") as toml:
            toml.write("\n[realms.token]\naccess_token_ttl = 3600\nagent_token_ttl = 3600\n")  # outlive the run
        engine = create_engine(url)
        with replicas(config, workdir, 2) as (survivor, doomed):
            fleet = Fleet.register(survivor, count)
            agents = [SimulatedAgent(node, token, [doomed.url, survivor.url]) for node, token in fleet.tokens.items()]

            async def scenario() -> dict[str, float]:
                stop = asyncio.Event()
                async with async_client(count) as client:
                    running = [asyncio.create_task(agent.run(client, stop, timeout=55)) for agent in agents]
                    await asyncio.to_thread(
                        until, lambda: metric(doomed, "jobsts_agents_waiting") >= count, "all waits", 900
                    )
                    killed = time.monotonic()
                    await asyncio.to_thread(kill_tree, doomed)
                    nodes = list(fleet.tokens)
                    jobs = [
                        await asyncio.to_thread(survivor.submit, fleet.admin, nodes[index % count])
                        for index in range(jobs_count)
                    ]
                    await asyncio.to_thread(
                        until,
                        lambda: metric(survivor, "jobsts_agents_waiting") >= count,
                        "every agent on the survivor",
                        900,
                    )
                    moved = time.monotonic() - killed

                    def states() -> Counter[str]:
                        # Read from the database, once a second: polling 300 jobs over HTTP from
                        # this process would starve the agents' event loop, and their leases.
                        time.sleep(0.9)
                        with engine.connect() as conn:
                            rows = conn.execute(select(JOBS.c.state).where(JOBS.c.id.in_(jobs)))
                            return Counter(str(row[0]) for row in rows)

                    def ended() -> bool:
                        return sum(count for state, count in states().items() if state in TERMINAL) == len(jobs)

                    try:
                        await asyncio.to_thread(until, ended, "every job to end", 420)
                    except AssertionError:
                        pass  # reported below: the jobs that did not end count as not succeeded
                    done = time.monotonic() - killed
                    final = await asyncio.to_thread(states)
                    stop.set()
                    for task in running:
                        task.cancel()
                    await asyncio.gather(*running, return_exceptions=True)
                leased = Counter(job for agent in agents for job in agent.leased)
                return {
                    "reconnected_s": moved,
                    "all_succeeded_s": done,
                    "lost": float(len(jobs) - final["succeeded"]),
                    "leased_twice": float(sum(1 for job in jobs if leased[job] > 1)),
                    "refusals": float(sum(len(agent.refusals) for agent in agents)),
                    "cut_off": float(sum(1 for agent in agents if agent.errors >= 1)),
                    "transport_errors": float(sum(agent.errors for agent in agents)),
                    "lost_state": float(final["lost"]),
                }

            try:
                return asyncio.run(scenario())
            finally:
                engine.dispose()


def section(count: int, jobs_count: int, runs: list[dict[str, float]], loads: list[str]) -> list[str]:
    def spread(key: str) -> str:
        values = [run[key] for run in runs]
        return f"{statistics.median(values):.1f} ({min(values):.1f} to {max(values):.1f})"

    return [
        "## Fleet failover: a replica killed under waiting agents (bench/fleet_failover.py)",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} CPUs, {platform.platform()}, "
        f"Python {platform.python_version()}; two STS replicas (`--workers 1` each) on one PostgreSQL "
        "on loopback; the machine is shared with other engineers' test suites (load average, 1 min, "
        f"at the start of each run: {', '.join(loads)}). {count} agents (one per node, "
        "`tests.fleet.fleet.SimulatedAgent`, httpx on one event loop in the bench process) wait on "
        f"one replica, which is killed with SIGKILL (master and worker); {jobs_count} jobs are "
        "submitted to the survivor at once. Figures: median (min to max) over "
        f"{len(runs)} run(s).",
        "",
        "| figure | goal | value |",
        "|---|---|---|",
        f"| seconds from the kill until all {count} agents wait on the survivor |  | {spread('reconnected_s')} |",
        f"| seconds from the kill until all {jobs_count} jobs ended (420 at most) |  | {spread('all_succeeded_s')} |",
        f"| jobs not succeeded | 0 | {spread('lost')} |",
        f"| of which in state lost (started, no result within the lease) | 0 | {spread('lost_state')} |",
        f"| jobs leased twice | 0 | {spread('leased_twice')} |",
        f"| refused agent calls | 0 | {spread('refusals')} |",
        f"| agents cut off by the kill | {count} | {spread('cut_off')} |",
        f"| transport errors seen by the agents | | {spread('transport_errors')} |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    raise_nofile()
    runs: list[dict[str, float]] = []
    loads: list[str] = []
    for index in range(args.runs):
        loads.append(f"{os.getloadavg()[0]:.1f}")
        figures = one_run(args.agents, args.jobs)
        print(index, json.dumps({key: round(value, 2) for key, value in figures.items()}), flush=True)
        runs.append(figures)
    lines = section(args.agents, args.jobs, runs, loads)
    print("\n".join(lines))
    if not args.no_write:
        write_section(SECTION, lines)


if __name__ == "__main__":
    main()
