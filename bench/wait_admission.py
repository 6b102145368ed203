"""Benchmark: what admitting one agent wait costs the STS (``GET /api/v1/agent/wait`` before it
parks), the way it is done now against the way it was done before, in one process and one run.

- ``admit``: ``AgentWaits._admit_one`` (a wait admitted alone), no Flask request; the cached authentication and the
  has-work ``EXISTS`` in one Core statement on an autocommit connection;
- ``flask``: the former path, ``authenticated_node()`` inside a Flask test request context,
  then the has-work query through an ORM session (two thread hops in the route, one here).

CPU milliseconds per wait (``time.process_time``: what limits how many agents a worker
serves) and wall milliseconds; the ratio flask / admit is taken within each run; min / median /
max of 3 runs. SQLite file, and a PostgreSQL schema with ``--pg URL`` (dropped after). Writes
its own section of bench/results.md (``results_section.write_section``).

    .venv/bin/python bench/wait_admission.py [--calls 2000] [--pg URL] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import and_, or_, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.pg import postgres_schema  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))

from results_section import write_section  # noqa: E402

from sts.asgi import StsAsgi  # noqa: E402
from sts.http.auth import authenticated_node  # noqa: E402
from sts.jobs.models import Job  # noqa: E402
from sts.jobs.states import JobState  # noqa: E402
from sts.jobs.wait import WAIT_PATH  # noqa: E402
from tests.jobs.conftest import build_world  # noqa: E402

SECTION = "bench/wait_admission.py"


@contextmanager
def database(kind: str, pg: str | None, folder: Path) -> Iterator[str]:
    if kind == "sqlite" or pg is None:
        yield f"sqlite:///{folder}/bench.db"
        return
    with postgres_schema(pg) as url:
        yield url


def timed(call: Callable[[], object], calls: int) -> tuple[float, float]:
    """(CPU ms, wall ms) per call."""
    call()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(calls):
        call()
    return (time.process_time() - cpu) * 1000 / calls, (time.perf_counter() - wall) * 1000 / calls


def one_run(url: str, folder: Path, calls: int) -> dict[str, float]:
    world = build_world(folder, url)
    asgi = StsAsgi(world.app, threads=1)
    header = f"Bearer {world.agent_token()}"
    services = world.services

    def admit() -> object:
        outcome = asgi.waits._admit_one(header)
        assert outcome == ("node1", False), outcome
        return outcome

    def flask() -> object:
        with world.app.test_request_context(WAIT_PATH, headers={"Authorization": header}):
            node = authenticated_node()
        now = services.now()
        with services.session() as session:
            found = session.execute(
                select(Job.node_id)
                .where(
                    Job.node_id.in_([node.id]),
                    or_(
                        and_(Job.state == JobState.QUEUED.value, Job.not_before <= now, Job.deadline > now),
                        and_(
                            Job.state.in_((JobState.LEASED.value, JobState.RUNNING.value)),
                            Job.lease_expires_at < now,
                        ),
                    ),
                )
                .distinct()
            ).first()
        assert found is None
        return found

    try:
        figures: dict[str, float] = {}
        for name, call in (("admit", admit), ("flask", flask)):
            figures[f"{name}_cpu"], figures[f"{name}_wall"] = timed(call, calls)
        figures["ratio_cpu"] = figures["flask_cpu"] / figures["admit_cpu"]
        return figures
    finally:
        asgi.wait_threads.shutdown()
        services.db.engine.dispose()


def spread(runs: list[dict[str, float]], key: str, digits: int = 3) -> str:
    values = [run[key] for run in runs]
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f} to {max(values):.{digits}f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pg", default=os.environ.get("JOBSTS_BENCH_DATABASE_URL"))
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    kinds = ["sqlite", *(["postgresql"] if args.pg else [])]
    results: dict[str, list[dict[str, float]]] = {}
    loads: list[str] = []
    for kind in kinds:
        for _ in range(args.runs):
            loads.append(f"{os.getloadavg()[0]:.1f}")
            with tempfile.TemporaryDirectory(prefix="jobsts-waitadm-") as folder:
                with database(kind, args.pg, Path(folder)) as url:
                    figures = one_run(url, Path(folder), args.calls)
            print(kind, {key: round(value, 3) for key, value in figures.items()}, flush=True)
            results.setdefault(kind, []).append(figures)
    lines = [
        "## Admitting one agent wait (bench/wait_admission.py)",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} CPUs, {platform.platform()}, "
        f"Python {platform.python_version()}; {args.calls} waits per figure, one thread, a cached agent "
        "(the usual case), no queued work; the machine is shared with other engineers' test suites "
        f"(load average, 1 min, at the start of each run: {', '.join(loads)}). Figures: median "
        f"(min to max) over {args.runs} runs; the ratio is taken within each run.",
        "",
        "| database | now: CPU ms / wait | now: wall ms | before: CPU ms / wait | before: wall ms "
        "| CPU ratio before ÷ now |",
        "|---|---|---|---|---|---|",
    ]
    for kind, runs in results.items():
        lines.append(
            f"| {kind} | {spread(runs, 'admit_cpu')} | {spread(runs, 'admit_wall')} | {spread(runs, 'flask_cpu')} "
            f"| {spread(runs, 'flask_wall')} | {spread(runs, 'ratio_cpu', 1)} |"
        )
    lines += [
        "",
        "Now: `AgentWaits._admit` (`sts.http.auth.agent_node` without a Flask request; on a cache hit one "
        "statement reads `sts_auth_version` and the has-work `EXISTS`, autocommit). Before: "
        "`authenticated_node()` in a Flask request context (same cache), then an ORM session for the "
        "has-work query. CPU time is what bounds a worker's waits per second: 1 / CPU ms.",
    ]
    print("\n".join(lines))
    if not args.no_write:
        write_section(SECTION, lines)


if __name__ == "__main__":
    main()
