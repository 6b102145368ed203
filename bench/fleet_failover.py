"""Failover benchmark: an STS replica holding N waiting agents (default 1,000) is killed with
SIGKILL while some of their jobs run; the agents reconnect to the other replica of the same
PostgreSQL database, and every job succeeds, none runs twice.

The agents are ``tests.fleet.fleet.SimulatedAgent`` (one per node: wait, lease, claim, run with
heartbeats, report with retries, fail over on a transport error) in a separate process on one
event loop (httpx), so the driver's own work (submits, state checks, metrics) never starves
them. Per run: ``--running`` jobs of ``--job-seconds`` (longer than the 60 s lease, so only
heartbeats keep them) are started on the doomed replica's agents; the replica is killed; the
other ``--jobs`` minus ``--running`` jobs are submitted to the survivor at once.

Reports: jobs not succeeded, lost, run twice (claimed twice), leased twice (a first lease that
expired unstarted, requeued as designed), late results; per agent, the time from the kill to
its first wait sent whole to the survivor (p50, p99, max); the time until the survivor counts
every idle agent waiting, and until every job ended. min / median / max over runs. Writes its
own section of bench/results.md (``results_section.write_section``).

    .venv/bin/python bench/fleet_failover.py [--agents 1000] [--jobs 300] [--running 100]
        [--job-seconds 75] [--runs 3] [--no-write]

Needs PostgreSQL (JOBSTS_BENCH_DATABASE_URL, a fresh schema per run, dropped after).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import httpx  # noqa: E402
from fleet import PG, percentile, raise_nofile  # noqa: E402
from results_section import write_section  # noqa: E402
from sqlalchemy import Engine, create_engine, select  # noqa: E402

from bench.machine import machine  # noqa: E402
from bench.pg import postgres_schema  # noqa: E402
from sts.jobs.models import Job  # noqa: E402
from tests.fleet.fleet import (  # noqa: E402
    Fleet,
    SimulatedAgent,
    agent_client,
    config_for,
    kill_tree,
    metric,
    replicas,
    until,
)
from tests.production.servers import StsProcess  # noqa: E402

JOBS = Job.__table__
SECTION = "bench/fleet_failover.py"
TERMINAL = {"succeeded", "failed", "refused", "lost", "expired", "cancelled"}
WAIT_TIMEOUT = 55


# ---- the agents: a separate process ---------------------------------------------------------


def agents_main(spec_file: str, report_file: str) -> None:
    """Run one ``SimulatedAgent`` per node of ``spec_file`` until a line arrives on stdin; then
    write what each saw to ``report_file``."""
    raise_nofile()
    spec = json.loads(Path(spec_file).read_text())
    agents = [SimulatedAgent(node, token, list(spec["urls"])) for node, token in spec["tokens"].items()]

    async def main() -> None:
        stop = asyncio.Event()
        # One client per agent, as each real agent has its own: one shared httpx pool of 1,000
        # connections costs O(connections) per request (httpcore assigns requests by scanning
        # them all), and a reconnecting crowd then starves on its own client, not on the STS.
        clients = [agent_client() for _ in agents]
        running = [
            asyncio.create_task(agent.run(client, stop, timeout=WAIT_TIMEOUT))
            for agent, client in zip(agents, clients, strict=True)
        ]
        print("started", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        stop.set()
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        await asyncio.gather(*(client.aclose() for client in clients))

    asyncio.run(main())
    Path(report_file).write_text(json.dumps([asdict(agent) for agent in agents]))


# ---- the driver -------------------------------------------------------------------------------


def job_states(engine: Engine, jobs: list[str]) -> dict[str, str]:
    with engine.connect() as conn:
        return {
            str(row[0]): str(row[1]) for row in conn.execute(select(JOBS.c.id, JOBS.c.state).where(JOBS.c.id.in_(jobs)))
        }


class GaugeWatch:
    """When the survivor's ``jobsts_agents_waiting`` first reached ``target``, sampled every 0.5 s
    (a scrape of ``/metrics`` costs the replica a few ms per thousand nodes)."""

    def __init__(self, server: StsProcess, target: int) -> None:
        self.server, self.target = server, target
        self.reached: float | None = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done.wait(0.5):
            try:
                waiting = metric(self.server, "jobsts_agents_waiting")
            except httpx.HTTPError:  # a scrape that failed under load: the next one counts
                waiting = 0
            if waiting >= self.target:
                self.reached = time.monotonic()
                return

    def close(self) -> None:
        self.done.set()
        self.thread.join()


def submit_all(server: StsProcess, admin: str, nodes: list[str], argv: tuple[str, ...]) -> list[str]:
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(lambda node: server.submit(admin, node, argv), nodes))


def one_run(count: int, jobs_count: int, running_count: int, job_seconds: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="jobsts-failover-") as folder, postgres_schema(PG) as url:
        workdir = Path(folder)
        config = config_for(workdir, url)
        with config.open("a", encoding="utf-8") as toml:
            toml.write("\n[realms.token]\naccess_token_ttl = 3600\nagent_token_ttl = 3600\n")  # outlive the run
        engine = create_engine(url)
        agents: subprocess.Popen[str] | None = None
        try:
            with replicas(config, workdir, 2) as (survivor, doomed):
                fleet = Fleet.register(survivor, count)
                spec, report = workdir / "agents.json", workdir / "report.json"
                spec.write_text(json.dumps({"urls": [doomed.url, survivor.url], "tokens": fleet.tokens}))
                agents = subprocess.Popen(
                    [sys.executable, __file__, "--agents-process", str(spec), str(report)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
                assert agents.stdin is not None and agents.stdout is not None
                assert agents.stdout.readline().strip() == "started"
                until(lambda: metric(doomed, "jobsts_agents_waiting") >= count, "all waits on the doomed replica", 900)
                nodes = list(fleet.tokens)
                busy, idle = nodes[:running_count], nodes[running_count:]
                # Running across the kill: started on the doomed replica, kept by heartbeats only.
                long_jobs = submit_all(survivor, fleet.admin, busy, ("/bin/sleep", str(job_seconds)))
                until(
                    lambda: Counter(job_states(engine, long_jobs).values())["running"] == len(long_jobs),
                    "the long jobs to run",
                    300,
                )
                watch = GaugeWatch(survivor, len(idle))
                load = os.getloadavg()[0]
                killed = time.monotonic()
                kill_tree(doomed)
                short_nodes = [idle[index % len(idle)] for index in range(jobs_count - running_count)]
                short_jobs = submit_all(survivor, fleet.admin, short_nodes, ("/bin/true",))
                jobs = long_jobs + short_jobs

                def ended() -> bool:
                    time.sleep(0.9)  # from the database, once a second
                    return all(state in TERMINAL for state in job_states(engine, jobs).values())

                try:
                    until(ended, "every job to end", job_seconds + 600)
                except AssertionError:
                    pass  # reported below: the jobs that did not end count as not succeeded
                all_ended = time.monotonic() - killed
                final = job_states(engine, jobs)
                until(lambda: watch.reached is not None, "every idle agent waiting on the survivor", 600)
                watch.close()
                assert watch.reached is not None
                agents.stdin.write("stop\n")
                agents.stdin.flush()
                agents.wait(timeout=120)
                seen: list[dict[str, Any]] = json.loads(report.read_text())
        finally:
            if agents is not None and agents.poll() is None:
                agents.kill()
                agents.wait()
            engine.dispose()
    states = Counter(final.values())
    claimed = Counter(job for agent in seen for job in agent["claimed"])
    leased = Counter(job for agent in seen for job in agent["leased"])
    idle_set = set(idle)
    back = [agent["back_at"] - killed for agent in seen if agent["node"] in idle_set and agent["back_at"] is not None]
    not_succeeded = [job for job in jobs if final.get(job) != "succeeded"]
    if not_succeeded:
        print("not succeeded:", {job: final.get(job) for job in not_succeeded}, flush=True)
    return {
        "load": load,
        "not_succeeded": float(len(not_succeeded)),
        "lost": float(states["lost"]),
        "run_twice": float(sum(1 for job in jobs if claimed[job] > 1)),
        "never_claimed": float(sum(1 for job in jobs if claimed[job] == 0)),
        "leased_twice": float(sum(1 for job in jobs if leased[job] > 1)),
        "late": float(sum(len(agent["late"]) for agent in seen)),
        "refusals": float(sum(len(agent["refusals"]) for agent in seen)),
        "cut_off": float(sum(1 for agent in seen if agent["errors"] >= 1)),
        "beats": float(sum(agent["beats"] for agent in seen)),
        "failed_beats": float(sum(agent["failed_beats"] for agent in seen)),
        "reconnected": float(len(back)),
        "reconnect_p50": percentile(back, 0.5) if back else float("nan"),
        "reconnect_p99": percentile(back, 0.99) if back else float("nan"),
        "reconnect_max": max(back) if back else float("nan"),
        "all_waiting_s": watch.reached - killed,
        "all_ended_s": all_ended,
    }


def section(args: argparse.Namespace, runs: list[dict[str, float]]) -> list[str]:
    def spread(key: str, digits: int = 1) -> str:
        values = [run[key] for run in runs]
        return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f} to {max(values):.{digits}f})"

    count, idle = args.agents, args.agents - args.running
    rows = [
        ("agents cut off by the kill", str(count), "cut_off", 0),
        (f"idle agents whose wait reached the survivor (of {idle})", str(idle), "reconnected", 0),
        ("reconnect, s from the kill to the wait sent to the survivor: p50", "", "reconnect_p50", 2),
        ("reconnect: p99", "", "reconnect_p99", 2),
        ("reconnect: max", "", "reconnect_max", 2),
        (f"s from the kill until the survivor counts all {idle} idle agents waiting", "", "all_waiting_s", 1),
        (f"s from the kill until all {args.jobs} jobs ended", "", "all_ended_s", 1),
        ("jobs not succeeded", "0", "not_succeeded", 0),
        ("jobs lost", "0", "lost", 0),
        ("jobs run twice (claimed twice)", "0", "run_twice", 0),
        ("jobs leased twice (a lease expired unstarted, requeued)", "", "leased_twice", 0),
        ("late results (recorded for a job already lost)", "0", "late", 0),
        ("refused agent calls", "0", "refusals", 0),
        ("heartbeats sent", "", "beats", 0),
        ("heartbeats lost to the kill", "", "failed_beats", 0),
        ("load average (1 min) at the kill, 2 cores shared with other suites", "", "load", 1),
    ]
    lines = [
        "## Fleet failover: a replica killed under waiting agents (bench/fleet_failover.py)",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {machine()}; two STS replicas "
        "(`jobsts serve --production --workers 1`, 4 Flask threads each) on one PostgreSQL on loopback. "
        f"{count} agents (one per node, `tests.fleet.fleet.SimulatedAgent`: wait with timeout={WAIT_TIMEOUT}, "
        "lease, claim, heartbeats as the real agent, results retried until answered; httpx on one event loop "
        f"in a separate process, one client per agent) wait on one replica. {args.running} of them start a job of "
        f"{args.job_seconds} s there (longer than the 60 s lease: only heartbeats keep it); then that replica "
        f"is killed with SIGKILL (master and worker) and {args.jobs - args.running} one-shot jobs are submitted "
        f"to the survivor at once, for other nodes. Figures: median (min to max) over {len(runs)} run(s).",
        "",
        "| figure | goal | value |",
        "|---|---|---|",
    ]
    lines += [f"| {label} | {goal} | {spread(key, digits)} |" for label, goal, key, digits in rows]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--running", type=int, default=100)
    parser.add_argument("--job-seconds", type=int, default=75)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--agents-process", nargs=2, metavar=("SPEC", "REPORT"), help=argparse.SUPPRESS)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.agents_process:
        agents_main(*args.agents_process)
        return
    raise_nofile()
    runs: list[dict[str, float]] = []
    for index in range(args.runs):
        figures = one_run(args.agents, args.jobs, args.running, args.job_seconds)
        print(index, json.dumps({key: round(value, 2) for key, value in figures.items()}), flush=True)
        runs.append(figures)
    lines = section(args, runs)
    print("\n".join(lines))
    if not args.no_write:
        write_section(SECTION, lines)


if __name__ == "__main__":
    main()
