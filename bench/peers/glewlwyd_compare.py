"""Password logins side by side: jobsts and Glewlwyd on one slapd and one PostgreSQL, same run.

Starts the test harness's slapd (tests/ldap_harness.py), Glewlwyd (bench/peers/glewlwyd.py, on
a private PostgreSQL database) and the STS (``sts.wsgi:app`` under gunicorn, on its own private
PostgreSQL database, realm ``jobmgr`` with ``group_mode = "memberOf"``), then for each run, in
turn: Glewlwyd logins, jobsts logins, and the raw ldap3 loop of bench/realm_auth.py, each with
the same number of clients. Both servers are driven by the one client of bench/peers/logins.py.

What each login does: Glewlwyd binds as the user and maps the user's ``memberOf`` values (one
level) to scopes; jobsts searches the user, binds as the user, resolves nested groups (john:
operators -> ops-all; the closure cache of ``group_cache_seconds``, default 30 s, is on) and
writes a refresh token. Both sign an ES256 access token.

Reported per side: logins/s, p50/p99, server CPU per login and logins per server CPU-second,
slapd's CPU per login apart, and the database backends' CPU per login apart; ratios are taken
within each run (``paired_ratios``) and given as median (min-max).

Usage: ``python -m bench.peers.glewlwyd_compare [--runs 3] [--seconds 10] [--clients 8]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.peers.cpu import fixed, tree
from bench.peers.glewlwyd import glewlwyd_server, measure_logins
from bench.peers.logins import LoginFigures, drive_logins
from bench.peers.postgres import DEFAULT_POSTGRES, backend_pids, private_database
from bench.peers.stats import Spread, markdown_table, paired_ratios
from bench.realm_auth import measure, raw_worker
from bench.token_endpoint import start_gunicorn
from sts.keys.master_key import create_key_file
from tests.ldap_harness import SlapdServer
from tests.loopback import listening_socket, port_of

FORM = {"grant_type": "password", "username": "john", "password": "john-password"}


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"' if isinstance(value, str) else str(value)


def write_config(workdir: Path, base_url: str, database_url: str, registry: dict[str, Any]) -> Path:
    create_key_file(workdir / "master.key")
    lines = [
        "[sts]",
        f"base_url = {_toml(base_url)}",
        f"database_url = {_toml(database_url)}",
        'master_key_file = "master.key"',
        "[[realms]]",
        'name = "jobmgr"',
        "[realms.registry]",
        *(f"{key} = {_toml(value)}" for key, value in registry.items()),
        "[realms.token]",
        'algorithm = "ES256"',
    ]
    path = workdir / "sts.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _row(name: str, ours: list[float], theirs: list[float], spec: str) -> tuple[str, str, str, str]:
    return (
        name,
        Spread.of(ours).format(spec),
        Spread.of(theirs).format(spec),
        paired_ratios(ours, theirs).format(".2f"),
    )


def report(ours: list[LoginFigures], theirs: list[LoginFigures], raw: list[float]) -> str:
    def values(runs: list[LoginFigures], field: Callable[[LoginFigures], float | None]) -> list[float]:
        return [v for v in (field(r) for r in runs) if v is not None]

    rows = [
        _row("password logins/s", values(ours, lambda r: r.per_second), values(theirs, lambda r: r.per_second), ".0f"),
        _row("p50 latency (ms)", values(ours, lambda r: r.p50_ms), values(theirs, lambda r: r.p50_ms), ".1f"),
        _row("p99 latency (ms)", values(ours, lambda r: r.p99_ms), values(theirs, lambda r: r.p99_ms), ".1f"),
        _row(
            "server CPU per login (ms)",
            values(ours, lambda r: r.server_cpu_ms),
            values(theirs, lambda r: r.server_cpu_ms),
            ".2f",
        ),
        _row(
            "logins per server CPU-second",
            values(ours, lambda r: r.logins_per_server_cpu_second),
            values(theirs, lambda r: r.logins_per_server_cpu_second),
            ".0f",
        ),
        _row(
            "slapd CPU per login (ms)",
            values(ours, lambda r: r.slapd_cpu_ms),
            values(theirs, lambda r: r.slapd_cpu_ms),
            ".2f",
        ),
        _row(
            "PostgreSQL backend CPU per login (ms)",
            values(ours, lambda r: r.database_cpu_ms),
            values(theirs, lambda r: r.database_cpu_ms),
            ".2f",
        ),
    ]
    table = markdown_table(["figure", "jobsts", "Glewlwyd", "jobsts / Glewlwyd (per run)"], rows)
    raw_line = (
        f"raw ldap3 search+bind loop: {Spread.of(raw).format('.0f')} calls/s; jobsts logins / raw (per run): "
        f"{paired_ratios([r.per_second for r in ours], raw).format('.2f')}"
    )
    return f"{table}\n\n{raw_line}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--group-cache-seconds", type=float, default=30.0, help="-1: leave the setting out")
    parser.add_argument("--postgres", default=os.environ.get("JOBSTS_TEST_DATABASE_URL") or DEFAULT_POSTGRES)
    args = parser.parse_args()
    with ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="jobsts-bench-compare-"))
        stack.callback(shutil.rmtree, workdir, True)
        (workdir / "slapd").mkdir()
        slapd = SlapdServer(workdir / "slapd").start()
        stack.callback(slapd.stop)
        assert slapd.process is not None
        slapd_pid = slapd.process.pid
        peer = stack.enter_context(glewlwyd_server(slapd, args.postgres, log_level="INFO"))
        ours_db = stack.enter_context(private_database(args.postgres, prefix="bench_jobsts"))
        sock = listening_socket()
        url = f"http://127.0.0.1:{port_of(sock)}"
        cache = {} if args.group_cache_seconds < 0 else {"group_cache_seconds": args.group_cache_seconds}
        registry = slapd.realm_table("jobmgr", group_mode="memberOf", pool_size=8, **cache)["registry"]
        database_url = ours_db.url.replace("postgresql://", "postgresql+psycopg://", 1) + "?application_name=jobsts"
        config = write_config(workdir, url, database_url, registry)
        gunicorn = start_gunicorn(config, sock, args.workers, 4)
        stack.callback(gunicorn.wait, timeout=30)
        stack.callback(gunicorn.terminate)
        print(
            f"jobsts {url} (gunicorn {args.workers} workers x 4 threads), Glewlwyd {peer.url}, slapd {slapd.url}, "
            f"{args.clients} clients, {args.seconds:g} s per run, {os.cpu_count()} CPUs",
            flush=True,
        )
        token_url = f"{url}/realms/jobmgr/token"
        drive_logins(token_url, FORM, server=tree(gunicorn.pid), clients=args.clients, seconds=1.0)  # warm up
        pg_pids = backend_pids(ours_db)
        ours: list[LoginFigures] = []
        theirs: list[LoginFigures] = []
        raw: list[float] = []
        for index in range(args.runs):
            theirs.append(measure_logins(peer, slapd, clients=args.clients, seconds=args.seconds))
            ours.append(
                drive_logins(
                    token_url,
                    FORM,
                    server=tree(gunicorn.pid),
                    slapd=fixed(slapd_pid),
                    database=fixed(*pg_pids),
                    clients=args.clients,
                    seconds=args.seconds,
                )
            )
            raw.append(measure(lambda: raw_worker(slapd, "jobmgr", "john"), args.clients, args.seconds))
            print(
                f"run {index + 1}: jobsts {ours[-1]}\n       Glewlwyd {theirs[-1]}\n       raw {raw[-1]:.1f}/s",
                flush=True,
            )
    print(report(ours, theirs, raw))


if __name__ == "__main__":
    main()
