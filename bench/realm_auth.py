"""Benchmark: ``LdapRegistry.authenticate()`` against a raw ldap3 loop doing the same work.

Starts the test harness's slapd (tests/ldap_harness.py), then measures for a user with nested
groups (jobmgr ``john``: operators -> ops-all; optionally cellC ``grace``: 6 levels and a cycle):

* raw: ldap3 with one bound service connection per thread; per call: search the user, search
  the groups level by level until no new parent, open a fresh connection and bind as the user
  (what a correct client must do at least: the physical limit of this directory and library);
* raw pooled: ldap3 with one bound service connection and one open bind connection per
  thread; per call: search the user, bind as the user (no groups): ldap3's least work for a
  search + bind login;
* jobsts: ``registry.authenticate(username, password)`` on one shared registry.

Prints calls/s for each on 1 thread and on N threads, and the ratios jobsts/raw (goal >= 0.8),
for each ``--group-mode`` given; writes its own section of ``bench/results.md``
(``results_section.write_section``) unless ``--no-write``.
Usage: ``python bench/realm_auth.py [--seconds 2] [--rounds 3] [--threads 8] [--user john|grace]
[--group-mode member memberOf] [--group-cache-seconds 30] [--no-write]`` (0 turns the closure
cache off).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from ldap3 import NONE, SIMPLE, SUBTREE, SYNC, Connection, Server  # noqa: E402
from ldap3.utils.conv import escape_filter_chars  # noqa: E402

from bench.machine import machine  # noqa: E402
from bench.peers.stats import Spread, paired_ratios  # noqa: E402
from bench.results_section import write_section  # noqa: E402
from realms.config import load_realms  # noqa: E402
from tests.ldap_harness import SERVICE_PASSWORD, SlapdServer  # noqa: E402

USERS = {"john": "jobmgr", "grace": "cellC"}
GROUP_CLASSES = "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))"


def raw_worker(server: SlapdServer, realm: str, username: str) -> Callable[[], None]:
    """One thread's raw ldap3 loop body (its own service connection)."""
    base = server.base_dn(realm)
    ldap_server = Server("127.0.0.1", port=server.port, get_info=NONE, connect_timeout=5)
    service = Connection(
        ldap_server,
        server.service_dn(realm),
        SERVICE_PASSWORD,
        client_strategy=SYNC,
        auto_bind=True,
        auto_referrals=False,
        receive_timeout=10,
        read_only=True,
    )
    password = f"{username}-password"

    def once() -> None:
        service.search(
            f"ou=people,{base}",
            f"(&(objectClass=inetOrgPerson)(uid={escape_filter_chars(username)}))",
            SUBTREE,
            attributes=["uid", "displayName", "pwdAccountLockedTime"],
            size_limit=2,
        )
        dn = (service.response or [])[0]["dn"]
        seen: set[str] = set()
        level = [dn]
        while level:
            terms = "".join(f"(member={escape_filter_chars(d)})(uniqueMember={escape_filter_chars(d)})" for d in level)
            service.search(f"ou=groups,{base}", f"(&{GROUP_CLASSES}(|{terms}))", SUBTREE, attributes=[])
            found = service.response or []
            level = [r["dn"] for r in found if r["type"] == "searchResEntry" and r["dn"] not in seen]
            seen.update(level)
        user = Connection(ldap_server, dn, password, client_strategy=SYNC, auto_referrals=False, receive_timeout=10)
        user.open()
        if not user.bind():
            raise RuntimeError("raw bind failed")
        user.unbind()

    once.close = service.unbind  # type: ignore[attr-defined]
    return once


def raw_pooled_worker(server: SlapdServer, realm: str, username: str) -> Callable[[], None]:
    """One thread's raw ldap3 search + bind on two kept connections (a service and a bind one)."""
    base = server.base_dn(realm)
    ldap_server = Server("127.0.0.1", port=server.port, get_info=NONE, connect_timeout=5)
    options: dict[str, Any] = {"client_strategy": SYNC, "auto_referrals": False, "receive_timeout": 10}
    service = Connection(ldap_server, server.service_dn(realm), SERVICE_PASSWORD, auto_bind=True, **options)
    binder = Connection(ldap_server, authentication=SIMPLE, **options)
    binder.open()
    password = f"{username}-password"

    def once() -> None:
        service.search(
            f"ou=people,{base}",
            f"(&(objectClass=inetOrgPerson)(uid={escape_filter_chars(username)}))",
            SUBTREE,
            attributes=["uid", "displayName", "pwdAccountLockedTime", "memberOf"],
            size_limit=2,
        )
        binder.user, binder.password = (service.response or [])[0]["dn"], password
        if not binder.bind():
            raise RuntimeError("raw bind failed")

    once.close = lambda: (service.unbind(), binder.unbind())  # type: ignore[attr-defined]
    return once


def measure(make_worker: Callable[[], Callable[[], None]], threads: int, seconds: float) -> float:
    """Calls per second over ``threads`` threads running for ``seconds``."""
    workers = [make_worker() for _ in range(threads)]
    counts = [0] * threads
    stop = threading.Event()

    def run(i: int) -> None:
        while not stop.is_set():
            workers[i]()
            counts[i] += 1

    pool = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    started = time.perf_counter()
    for thread in pool:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - started
    for worker in workers:
        getattr(worker, "close", lambda: None)()
    return sum(counts) / elapsed


def one_mode(server: SlapdServer, args: argparse.Namespace, mode: str) -> list[str]:
    """Measure one group mode; the markdown rows of its figures."""
    realm, username = USERS[args.user], args.user
    table = server.realm_table(
        realm, pool_size=max(4, args.threads), group_mode=mode, group_cache_seconds=args.group_cache_seconds
    )
    registry = load_realms([table], ROOT)[realm].open_registry()
    principal = registry.authenticate(username, f"{username}-password")
    assert principal is not None and principal.groups, "benchmark user must log in with nested groups"
    print(f"user {principal.access_id} with {len(principal.groups)} groups; slapd {server.url}; group_mode={mode}")

    def jobsts_worker() -> Callable[[], None]:
        def once() -> None:
            if registry.authenticate(username, f"{username}-password") is None:
                raise RuntimeError("authenticate failed")

        return once

    rows = []
    for threads in (1, args.threads):
        measure(lambda: raw_worker(server, realm, username), threads, 0.5)  # warm up
        raws: list[float] = []
        pooled: list[float] = []
        ours: list[float] = []
        # Alternate the loops; ratios are taken within a round: other load hits all three alike.
        for _ in range(args.rounds):
            raws.append(measure(lambda: raw_worker(server, realm, username), threads, args.seconds))
            pooled.append(measure(lambda: raw_pooled_worker(server, realm, username), threads, args.seconds))
            ours.append(measure(jobsts_worker, threads, args.seconds))
        cells = [
            Spread.of(raws).format(".0f"),
            Spread.of(pooled).format(".0f"),
            Spread.of(ours).format(".0f"),
            paired_ratios(ours, raws).format(".2f"),
            paired_ratios(ours, pooled).format(".2f"),
        ]
        print(f"threads={threads}: raw {cells[0]}  raw pooled {cells[1]}  jobsts {cells[2]} calls/s; "
              f"jobsts/raw {cells[3]}  jobsts/raw pooled {cells[4]}")  # fmt: skip
        rows.append(f"| {mode} | {threads} | " + " | ".join(cells) + " |")
    registry.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--user", choices=sorted(USERS), default="john")
    parser.add_argument("--group-mode", nargs="+", choices=["member", "memberOf"], default=["member", "memberOf"])
    parser.add_argument("--group-cache-seconds", type=float, default=30.0, help="0 turns the closure cache off")
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/results.md alone")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="jobsts-bench-"))
    server = SlapdServer(workdir).start()
    load_before = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    try:
        rows = [row for mode in args.group_mode for row in one_mode(server, args, mode)]
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    load_after = os.getloadavg()
    lines = [
        "## The LDAP login path in-process: authenticate() against raw ldap3 loops (bench/realm_auth.py)",
        "",
        f"{started}; {machine()}; load average (1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after; "
        "the 2 CPUs are shared with other helpers' benchmarks and test suites, so absolute figures are "
        "noisy and only the ratios within a round count.",
        "",
        f"User `{args.user}` (nested groups), `group_cache_seconds = {args.group_cache_seconds:g}`, "
        f"{args.rounds} rounds of {args.seconds:g} s per loop; calls/s and per-round ratios as median (min-max).",
        "",
        "| group_mode | threads | raw ldap3 (groups, fresh bind connection) | raw ldap3 pooled (search + bind) "
        "| jobsts authenticate | jobsts / raw | jobsts / raw pooled |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]
    if not args.no_write:
        write_section("bench/realm_auth.py", lines)


if __name__ == "__main__":
    main()
