"""Benchmark: the STS's CPU per password login, in-process, for one or more checkouts side by side.

Each round runs every checkout in turn (a child process each, so each imports its own code):
a slapd from the harness (realm ``jobmgr``, ``group_mode = "memberOf"``, closure cache on),
a private PostgreSQL database, ``create_app`` and the Flask test client; warm-up logins, then
``--logins`` password logins of jobmgr ``john``, timed by the process CPU clock (so what the
machine's load adds in waiting is left out). No HTTP server: the figure is the STS's own work per
login (LDAP, database statements, signing, audit), without gunicorn's.

Reports CPU milliseconds per login, min/median/max over ``--rounds``, and each checkout's ratio
to the first, taken within each round; writes its own section of ``bench/results.md`` unless
``--no-write``.

    .venv/bin/python bench/login_cpu.py [--checkout DIR ...] [--rounds 3] [--logins 1000] [--no-write]

Without ``--checkout``, this checkout alone. To compare with another commit:
``git worktree add /tmp/base main`` (or ``git archive main | tar -x -C /tmp/base``), then
``--checkout /tmp/base --checkout .``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORM = {"grant_type": "password", "username": "john", "password": "john-password"}


def child(logins: int, postgres: str) -> None:
    """In a checkout's own process: print CPU ms per login."""
    import logging

    from bench.peers.glewlwyd_compare import write_config
    from bench.peers.postgres import private_database
    from sts.app import create_app
    from sts.observability.audit import configure_logging
    from tests.ldap_harness import SlapdServer

    work = Path(tempfile.mkdtemp(prefix="jobsts-login-cpu-"))
    (work / "slapd").mkdir()
    slapd = SlapdServer(work / "slapd").start()
    try:
        with private_database(postgres, prefix="bench_login_cpu") as db:
            registry = slapd.realm_table("jobmgr", group_mode="memberOf", pool_size=4)["registry"]
            url = db.url.replace("postgresql://", "postgresql+psycopg://", 1)
            config = write_config(work, "http://127.0.0.1:1", url, registry)
            configure_logging()
            # The audit and service lines are written as in production, to a discarded stream.
            for handler in [*logging.getLogger().handlers, *logging.getLogger("jobsts.audit").handlers]:
                if isinstance(handler, logging.StreamHandler):
                    handler.setStream(open(os.devnull, "w"))
            client = create_app(config).test_client()
            for _ in range(100):
                assert client.post("/realms/jobmgr/token", data=FORM).status_code == 200
            started = time.process_time()
            for _ in range(logins):
                response = client.post("/realms/jobmgr/token", data=FORM)
            spent = time.process_time() - started
            assert response.status_code == 200, response.data
            print(f"{spent / logins * 1000:.4f}")
    finally:
        slapd.stop()


def run_checkout(checkout: Path, logins: int, postgres: str) -> float:
    # This file's child() runs with the checkout first on sys.path: it imports that checkout's code.
    code = (
        f"import runpy, sys; sys.path.insert(0, {str(checkout)!r}); "
        f"import sts; assert sts.__file__.startswith({str(checkout)!r}), sts.__file__; "
        f"runpy.run_path({__file__!r})['child']({logins}, {postgres!r})"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=checkout, capture_output=True, text=True, check=False, timeout=1800
    )
    if done.returncode != 0:
        raise RuntimeError(f"{checkout}: {done.stderr[-2000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def label(checkout: Path) -> str:
    done = subprocess.run(
        ["git", "-C", str(checkout), "log", "-1", "--format=%h %s"], capture_output=True, text=True, check=False
    )
    return done.stdout.strip()[:60] if done.returncode == 0 and done.stdout.strip() else checkout.name


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from bench.machine import machine
    from bench.peers.stats import Spread, paired_ratios
    from bench.results_section import write_section

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", type=Path, action="append", help="a checkout to measure (repeatable)")
    parser.add_argument("--label", action="append", help="a name for each --checkout, in order")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--logins", type=int, default=1000)
    parser.add_argument(
        "--postgres", default=os.environ.get("JOBSTS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    )
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    checkouts = [c.resolve() for c in args.checkout or [ROOT]]
    names = args.label or [label(c) for c in checkouts]
    postgres = args.postgres.replace("postgresql+psycopg://", "postgresql://", 1)
    load_before = os.getloadavg()[0]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    figures: list[list[float]] = [[] for _ in checkouts]
    for round_ in range(args.rounds):
        for index, checkout in enumerate(checkouts):
            figures[index].append(run_checkout(checkout, args.logins, postgres))
            print(f"round {round_ + 1}: {names[index]}: {figures[index][-1]:.2f} ms CPU per login", flush=True)
    lines = [
        "## CPU per password login in-process, checkouts side by side (bench/login_cpu.py)",
        "",
        f"{started}; {machine()}; load average (1 min) {load_before:.1f} before, {os.getloadavg()[0]:.1f} after "
        "(2 CPUs shared with other helpers' benchmarks and test suites). Flask test client, PostgreSQL, slapd, "
        f"realm jobmgr in memberOf mode; {args.logins} logins per round, {args.rounds} rounds, the checkouts "
        "in turn within each round; process CPU ms per login, median (min-max); ratio to the first checkout "
        "taken within each round.",
        "",
        "| checkout | CPU ms per login | ratio to the first |",
        "|---|---|---|",
    ]
    for name, values in zip(names, figures, strict=True):
        lines.append(
            f"| {name} | {Spread.of(values).format('.2f')} | {paired_ratios(values, figures[0]).format('.2f')} |"
        )
    print("\n".join(lines[-len(checkouts) - 2 :]))
    if not args.no_write:
        write_section("bench/login_cpu.py", lines)


if __name__ == "__main__":
    main()
