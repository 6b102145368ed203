"""Fleet benchmark: N agents waiting at once (GET /api/v1/agent/wait) from a separate process
with an asynchronous client (aiohttp), N up to 10,000, on loopback.

Reports, with N agents connected vs idle (same run): /healthz and password-login latency
p50/p99; submit-to-lease wake-up latency p50/p99 (the agent on the same replica, and on the
other of two replicas over one PostgreSQL); STS resident memory per connected agent.
Writes its own section of bench/results.md (min / median / max over runs).

    .venv/bin/python bench/fleet.py --agents 1000 10000 --runs 3

Needs PostgreSQL (JOBSTS_BENCH_DATABASE_URL, default the test server's ``test`` database, a
fresh schema per run) and ``pip install -e '.[fleet]'``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import httpx  # noqa: E402
from results_section import replace_section  # noqa: E402

from agent_client.backoff import first_wait, jittered  # noqa: E402
from bench.machine import machine  # noqa: E402
from bench.pg import postgres_schema  # noqa: E402
from tests.fleet.fleet import WAIT, Fleet, config_for, metric, until  # noqa: E402
from tests.production.servers import StsProcess, bearer  # noqa: E402

PG = os.environ.get("JOBSTS_BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
CROWD_NODES = 100
WAKE_SAMPLES = 30
HEALTH_SAMPLES = 300
LOGIN_SAMPLES = 400
CROWD_WAIT = 55
# Re-wait periods over which health and logins are sampled, idle and loaded alike: a p99 over a
# longer window is less at the mercy of one burst of a neighbour's CPU on a shared host.
SAMPLE_PERIODS = 3
RESULTS = ROOT / "bench" / "results.md"
BEGIN, END = "<!-- bench/fleet.py -->", "<!-- end bench/fleet.py -->"


def raise_nofile() -> int:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# ---- the crowd: a separate process of N waiting agents ------------------------------------


async def crowd(url: str, tokens: list[str], count: int) -> None:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=CROWD_WAIT + 60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def agent(index: int) -> None:
            # As the real agent (agent_client.loop): the first wait after the start and after a
            # failure asks for a length spread over [T/5, T] (first_wait), the others for T.
            headers = {"Authorization": f"Bearer {tokens[index % len(tokens)]}"}
            timeout = first_wait(CROWD_WAIT)
            while True:
                try:
                    async with session.get(f"{url}{WAIT}", params={"timeout": str(timeout)}, headers=headers) as r:
                        await r.read()
                        timeout = CROWD_WAIT
                        if r.status != 200:  # a refusal (an expired token): back off as an agent does
                            await asyncio.sleep(jittered(1.0))
                            timeout = first_wait(CROWD_WAIT)
                except (TimeoutError, aiohttp.ClientError):
                    await asyncio.sleep(jittered(1.0))
                    timeout = first_wait(CROWD_WAIT)

        tasks = []
        for index in range(count):
            tasks.append(asyncio.create_task(agent(index)))
            if index % 250 == 249:
                await asyncio.sleep(0.05)  # a ramp, not a SYN flood on the backlog
        print("started", flush=True)
        await asyncio.gather(*tasks)


def crowd_main(url: str, tokens_file: str, count: int) -> None:
    raise_nofile()
    tokens = json.loads(Path(tokens_file).read_text())
    asyncio.run(crowd(url, tokens, count))


# ---- the driver ------------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def rss_kib(pid: int) -> int:
    """Resident memory of a process and its children (the gunicorn master and workers)."""
    total = 0
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout.split()
    for each in [pid, *map(int, children)]:
        for line in Path(f"/proc/{each}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children (the gunicorn master and workers)."""
    total = 0
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout.split()
    for each in [pid, *map(int, children)]:
        fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / os.sysconf("SC_CLK_TCK")


def waits_ended(server: StsProcess) -> float:
    return sum(
        metric(server, "jobsts_agent_wait_seconds_count", f'{{outcome="{outcome}"}}')
        for outcome in ("work", "timeout", "gone")
    )


def latencies(client: httpx.Client, samples: int, call: Any, seconds: float = 0) -> list[float]:
    """``samples`` calls, back to back, or evenly paced over ``seconds``."""
    out = []
    begin = time.perf_counter()
    for index in range(samples):
        pause = begin + index * seconds / samples - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        started = time.perf_counter()
        call(client)
        out.append((time.perf_counter() - started) * 1000)
    return out


def cpu_ticks() -> tuple[int, int]:
    """The host's CPU time stolen by other guests (the hypervisor's) and all of it, in ticks (proc(5), /proc/stat)."""
    with open("/proc/stat", encoding="ascii") as stat:
        fields = [int(value) for value in stat.readline().split()[1:9]]
    return fields[7], sum(fields)


def side_by_side(url: str) -> tuple[list[float], list[float], float]:
    """/healthz and logins side by side, each on its own connection, evenly paced over
    ``SAMPLE_PERIODS`` whole re-wait periods: the same sampling with and without the crowd, so
    that only the crowd differs. Also the share of the host's CPU stolen meanwhile, in %."""
    seconds = SAMPLE_PERIODS * CROWD_WAIT
    steal_before, total_before = cpu_ticks()
    with ThreadPoolExecutor(2) as pool, httpx.Client(base_url=url, timeout=60) as one:
        with httpx.Client(base_url=url, timeout=60) as other:
            health_run = pool.submit(latencies, one, SAMPLE_PERIODS * HEALTH_SAMPLES, health, seconds)
            login_run = pool.submit(latencies, other, SAMPLE_PERIODS * LOGIN_SAMPLES, login, seconds)
            health_ms, login_ms = health_run.result(), login_run.result()
    steal_after, total_after = cpu_ticks()
    return health_ms, login_ms, 100 * (steal_after - steal_before) / max(1, total_after - total_before)


def health(client: httpx.Client) -> None:
    assert client.get("/healthz").status_code == 200


def login(client: httpx.Client) -> None:
    answer = client.post(
        "/realms/jobmgr/token", data={"grant_type": "password", "username": "john", "password": "john-password"}
    )
    assert answer.status_code == 200, answer.text


class CommitClock:
    """When each node's wake-up notification left PostgreSQL, i.e. when its submit committed: a
    LISTEN connection of the bench's own on the STS's channel, timestamped on arrival."""

    def __init__(self, database_url: str) -> None:
        import psycopg

        from sts.jobs.wakeup import CHANNEL_SQL, listen_conninfo

        conninfo = listen_conninfo(database_url)
        assert conninfo is not None
        self.conn = psycopg.connect(conninfo, autocommit=True)
        row = self.conn.execute(CHANNEL_SQL).fetchone()
        assert row is not None
        self.conn.execute(f'LISTEN "{row[0]}"')
        self.seen: dict[str, float] = {}
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for note in self.conn.notifies():
                self.seen[note.payload] = time.perf_counter()
        except Exception:  # closed at the end of the run
            return

    def close(self) -> None:
        self.conn.close()


def wakeups(
    clock: CommitClock, submit_on: StsProcess, wait_on: StsProcess, admin: str, node: str, token: str, parked: float
) -> list[float]:
    """Submit-to-lease: from the submit's commit (its NOTIFY, seen by ``clock``) to the leased
    job in the agent's hand. The agent waits on its replica's wait listener (``wait_url``)."""
    out: list[float] = []
    for _ in range(WAKE_SAMPLES):
        woke: dict[str, float] = {}

        def agent(woke: dict[str, float] = woke) -> None:
            with httpx.Client(base_url=wait_on.url, timeout=120) as client:
                answer = client.get(f"{wait_on.wait_url}{WAIT}", params={"timeout": 60}, headers=bearer(token))
                assert answer.json()["work"] is True, answer.text
                leased = client.post("/api/v1/agent/lease", json={"wait": 0}, headers=bearer(token))
                assert leased.status_code == 200, leased.text
                woke["at"] = time.perf_counter()
                job = leased.json()["job"]
                client.post(
                    f"/api/v1/agent/jobs/{job['id']}/result",
                    headers=bearer(token),
                    json={"outcome": "refused", "code": "authz.denied", "reason": "bench", "trace": []},
                )

        thread = threading.Thread(target=agent)
        thread.start()
        # Submit once the probe's wait is parked on its replica (its gauge counts it).
        until(lambda: metric(wait_on, "jobsts_agents_waiting") >= parked, "the probe's wait", 120)
        clock.seen.pop(node, None)
        submit_on.submit(admin, node)
        thread.join()
        until(lambda: node in clock.seen, "the commit's notification", 60)
        out.append((woke["at"] - clock.seen[node]) * 1000)
    return out


SEPARATE, SHARED = "wait listener", "one listener"
MODE_TEXT = {
    SEPARATE: "with an agent-wait listener (`--wait-port`: the agents wait on a port served by a worker "
    "process of its own, at `nice` 10)",
    SHARED: "with one listener (the agents wait on the API port, in the process that answers logins)",
}


def one_run(count: int, mode: str) -> dict[str, float]:
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="jobsts-fleet-") as folder, postgres_schema(PG) as url:
        workdir = Path(folder)
        config = config_for(workdir, url)
        with config.open("a", encoding="utf-8") as toml:
            # Every token must outlive the run (a 10,000-agent run on a loaded machine can pass
            # the default 300 s); the crowd's agents do not refresh theirs.
            toml.write("\n[realms.token]\naccess_token_ttl = 3600\nagent_token_ttl = 3600\n")
        servers = []
        for index in range(2):
            metrics = workdir / f"metrics-{index}"
            metrics.mkdir()
            servers.append(StsProcess(config, workdir, 1, metrics_dir=metrics, wait_listener=mode == SEPARATE))
        crowd_process: subprocess.Popen[str] | None = None
        try:
            for server in servers:
                server.wait_ready(timeout=240)
            a, b = servers
            fleet = Fleet.register(a, CROWD_NODES, prefix="c")
            probes = Fleet.register(a, 2, prefix="p")
            tokens_file = workdir / "tokens.json"
            tokens_file.write_text(json.dumps(list(fleet.tokens.values())))
            figures: dict[str, float] = {}
            probe_node, probe_token = next(iter(probes.tokens.items()))
            clock = CommitClock(url)
            with httpx.Client(base_url=a.url, timeout=60) as client:
                burst_login = latencies(client, LOGIN_SAMPLES, login)
                idle_health, idle_login, steal_idle = side_by_side(a.url)
                idle_wake = wakeups(clock, a, a, fleet.admin, probe_node, probe_token, 1)
                rss_before = rss_kib(a.process.pid)
                crowd_process = subprocess.Popen(
                    [sys.executable, __file__, "--crowd", a.wait_url, str(tokens_file), str(count)],
                    stdout=subprocess.PIPE,
                    text=True,
                )
                until(lambda: metric(a, "jobsts_agents_waiting") >= count, f"{count} waiting agents", 900)
                time.sleep(CROWD_WAIT / 5)  # settle: connections, buffers, the first re-waits
                rss_after = rss_kib(a.process.pid)
                # One whole re-wait period of the crowd alone: the replica's CPU and the waits it served.
                cpu_before, waits_before = cpu_seconds(a.process.pid), waits_ended(a)
                time.sleep(CROWD_WAIT)
                cpu_window = cpu_seconds(a.process.pid) - cpu_before
                waits_window = waits_ended(a) - waits_before
                # Over one whole re-wait period, health and logins side by side: wherever the
                # crowd's re-waits bunch up within it, the samples meet them.
                loaded_health, loaded_login, steal_loaded = side_by_side(a.url)
                loaded_wake = wakeups(clock, a, a, fleet.admin, probe_node, probe_token, count + 1)
                other_node, other_token = list(probes.tokens.items())[1]
                cross_wake = wakeups(clock, a, b, fleet.admin, other_node, other_token, 1)
                waiting = metric(a, "jobsts_agents_waiting")
            clock.close()
            for name, values in (
                ("health_idle", idle_health),
                ("health_loaded", loaded_health),
                ("login_idle", idle_login),
                ("login_burst", burst_login),
                ("login_loaded", loaded_login),
                ("wake_idle", idle_wake),
                ("wake_loaded", loaded_wake),
                ("wake_cross", cross_wake),
            ):
                figures[f"{name}_p50"] = percentile(values, 0.5)
                figures[f"{name}_p99"] = percentile(values, 0.99)
            figures["kib_per_agent"] = (rss_after - rss_before) / count
            figures["waiting"] = waiting
            figures["cpu_percent"] = 100 * cpu_window / CROWD_WAIT
            figures["cpu_ms_per_wait"] = 1000 * cpu_window / max(waits_window, 1)
            figures["waits_per_s"] = waits_window / CROWD_WAIT
            figures["load"] = load
            figures["steal_idle"], figures["steal_loaded"] = steal_idle, steal_loaded
            return figures
        finally:
            if crowd_process is not None:
                crowd_process.kill()
                crowd_process.wait()
            for server in servers:
                server.stop()


def spread(runs: list[dict[str, float]], key: str, digits: int = 1) -> str:
    values = [run[key] for run in runs]
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f} to {max(values):.{digits}f})"


def section(results: dict[tuple[int, str], list[dict[str, float]]]) -> str:
    lines = [
        BEGIN,
        "## Fleet: connected agents (bench/fleet.py)",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {machine()}; PostgreSQL on loopback; two STS "
        "replicas (`jobsts serve --production --workers 1`, 4 Flask threads each) on one database, "
        + " and ".join(MODE_TEXT[mode] for mode in sorted({mode for _, mode in results}, reverse=True))
        + "; the "
        f"agents in a separate process (aiohttp), spread over {CROWD_NODES} registered nodes, each "
        f"waiting with timeout={CROWD_WAIT} (so each wait ends between {0.8 * CROWD_WAIT:.0f} and {CROWD_WAIT} s, "
        f"`sts.jobs.wait.wait_seconds`), except each agent's first wait, which asks for a timeout drawn "
        f"from [{CROWD_WAIT / 5:.0f}, {CROWD_WAIT}] as the real agent's does (`agent_client.backoff.first_wait`). "
        "Figures: median (min to max) over runs.",
        "",
        "| figure (ms unless said) | goal | "
        + " | ".join(
            f"{count} agents, {mode}: median (min to max), {len(runs)} run(s)"
            for (count, mode), runs in sorted(results.items())
        )
        + " |",
        "|---|---|" + "---|" * len(results),
    ]
    for runs in results.values():
        for run in runs:
            run["login_ratio"] = run["login_loaded_p99"] / run["login_idle_p99"]
            run["health_ratio"] = run["health_loaded_p99"] / run["health_idle_p99"]
    rows = [
        ("/healthz p99, idle", "", "health_idle_p99"),
        ("/healthz p99, agents connected", "< 100", "health_loaded_p99"),
        ("/healthz p50, agents connected", "", "health_loaded_p50"),
        ("login p99, idle, back to back (the idle figure of earlier runs)", "", "login_burst_p99"),
        ("login p50, idle", "", "login_idle_p50"),
        ("login p50, agents connected", "", "login_loaded_p50"),
        ("login p99, idle", "", "login_idle_p99"),
        ("login p99, agents connected", "", "login_loaded_p99"),
        ("login p99 ratio, connected ÷ idle", "< 2", "login_ratio"),
        ("wake-up p50, same replica, idle", "", "wake_idle_p50"),
        ("wake-up p50, same replica, agents connected", "≤ 50", "wake_loaded_p50"),
        ("wake-up p99, same replica, agents connected", "≤ 250", "wake_loaded_p99"),
        ("wake-up p50, agent on the other replica", "≤ 50", "wake_cross_p50"),
        ("wake-up p99, agent on the other replica", "≤ 250", "wake_cross_p99"),
        ("STS memory per connected agent, KiB", "≤ 20", "kib_per_agent"),
        ("agents waiting on the replica at the end", "N", "waiting"),
        ("re-waits served per second, crowd alone", "", "waits_per_s"),
        ("replica CPU, % of one core, crowd alone", "", "cpu_percent"),
        ("replica CPU ms per re-wait (all of it: loop, HTTP, admission, poll)", "", "cpu_ms_per_wait"),
        ("load average (1 min) at the run's start, 2 cores shared with other test suites", "", "load"),
        ("CPU stolen by other guests while sampling idle, %", "", "steal_idle"),
        ("CPU stolen by other guests while sampling with agents connected, %", "", "steal_loaded"),
    ]
    for label, goal, key in rows:
        digits = 2 if key in ("login_ratio", "cpu_ms_per_wait") else 0 if key == "waiting" else 1
        lines.append(
            f"| {label} | {goal} | "
            + " | ".join(spread(runs, key, digits) for _, runs in sorted(results.items()))
            + " |"
        )
    lines += [
        "",
        f"/healthz ({SAMPLE_PERIODS * HEALTH_SAMPLES} samples) and logins ({SAMPLE_PERIODS * LOGIN_SAMPLES}) "
        f"are sampled side by side, evenly paced over {SAMPLE_PERIODS} whole re-wait periods "
        f"({SAMPLE_PERIODS * CROWD_WAIT} s), the same way idle (before the crowd "
        "connects) and with the agents connected (right after the CPU window); the back-to-back logins "
        "run first, idle. "
        "Wake-up is measured from the submit's commit (the arrival of its notification at a LISTEN "
        "connection of the bench) to the leased job in the agent's hand: delivery to the replica, "
        "the wait's answer and one lease call. Memory is the replica's "
        "resident set (master + workers) with the crowd connected minus before, divided by N. CPU is the "
        "replica's (master + workers, user + system) over one whole re-wait period with only the crowd "
        "connected, divided by the waits that ended in it (every agent ends one).",
        END,
    ]
    return "\n".join(lines)


def write(text_block: str) -> None:
    """Replace this bench's section (``text_block`` carries its markers) and leave the others alone."""
    current = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else ""
    RESULTS.write_text(replace_section(current, "bench/fleet.py", text_block.split("\n")[1:-1]), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, nargs="+", default=[1000])
    parser.add_argument("--runs", type=int, nargs="+", default=[3], help="runs per --agents value (the last repeats)")
    parser.add_argument("--crowd", nargs=3, metavar=("URL", "TOKENS", "COUNT"), help=argparse.SUPPRESS)
    parser.add_argument("--modes", nargs="+", choices=(SEPARATE, SHARED), default=[SEPARATE, SHARED])
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.crowd:
        crowd_main(args.crowd[0], args.crowd[1], int(args.crowd[2]))
        return
    raise_nofile()  # the STS processes inherit it: one descriptor per connected agent
    results: dict[tuple[int, str], list[dict[str, float]]] = {}
    for position, count in enumerate(args.agents):
        for index in range(args.runs[min(position, len(args.runs) - 1)]):
            for mode in args.modes:  # interleaved: both see the same machine at nearly the same time
                figures = one_run(count, mode)
                print(count, mode, index, json.dumps({k: round(v, 2) for k, v in figures.items()}), flush=True)
                results.setdefault((count, mode), []).append(figures)
    block = section(results)
    print(block)
    if not args.no_write:
        write(block)


if __name__ == "__main__":
    main()
