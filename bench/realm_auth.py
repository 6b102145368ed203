"""Benchmark: ``LdapRegistry.authenticate()`` against a raw ldap3 loop doing the same work.

Starts the test harness's slapd (tests/ldap_harness.py), then measures for a user with nested
groups (jobmgr ``john``: operators -> ops-all; optionally cellC ``grace``: 6 levels and a cycle):

* raw: ldap3 with one bound service connection per thread; per call: search the user, search
  the groups level by level until no new parent, open a fresh connection and bind as the user
  (what a correct client must do at least: the physical limit of this directory and library);
* jobsts: ``registry.authenticate(username, password)`` on one shared registry.

Prints calls/s for each on 1 thread and on N threads, and the ratio jobsts/raw (goal >= 0.7).
Usage: ``python bench/realm_auth.py [--seconds 2] [--rounds 3] [--threads 4] [--user john|grace]
[--group-mode member|memberOf] [--group-cache-seconds 30]`` (0 turns the closure cache off).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ldap3 import NONE, SUBTREE, SYNC, Connection, Server  # noqa: E402
from ldap3.utils.conv import escape_filter_chars  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--user", choices=sorted(USERS), default="john")
    parser.add_argument("--group-mode", choices=["member", "memberOf"], default="member")
    parser.add_argument("--group-cache-seconds", type=float, default=30.0, help="0 turns the closure cache off")
    args = parser.parse_args()
    realm, username = USERS[args.user], args.user
    workdir = Path(tempfile.mkdtemp(prefix="jobsts-bench-"))
    server = SlapdServer(workdir).start()
    try:
        table = server.realm_table(
            realm,
            pool_size=max(4, args.threads),
            group_mode=args.group_mode,
            group_cache_seconds=args.group_cache_seconds,
        )
        config = load_realms([table], ROOT)[realm]
        registry = config.open_registry()
        principal = registry.authenticate(username, f"{username}-password")
        assert principal is not None and principal.groups, "benchmark user must log in with nested groups"
        print(
            f"user {principal.access_id} with {len(principal.groups)} groups; slapd {server.url}; "
            f"group_mode={args.group_mode} group_cache_seconds={args.group_cache_seconds:g}"
        )

        def jobsts_worker() -> Callable[[], None]:
            def once() -> None:
                if registry.authenticate(username, f"{username}-password") is None:
                    raise RuntimeError("authenticate failed")

            return once

        results = {}
        for threads in (1, args.threads):
            measure(lambda: raw_worker(server, realm, username), threads, 0.5)  # warm up
            raws, ours = [], []
            # Alternate the two loops and keep the medians: other load on the machine hits both alike.
            for _ in range(args.rounds):
                raws.append(measure(lambda: raw_worker(server, realm, username), threads, args.seconds))
                ours.append(measure(jobsts_worker, threads, args.seconds))
            raw, mine = statistics.median(raws), statistics.median(ours)
            results[threads] = (raw, mine)
            ratios = sorted(a / b for a, b in zip(ours, raws, strict=True))
            print(
                f"threads={threads}: raw ldap3 {raw:8.1f} calls/s   jobsts authenticate {mine:8.1f} calls/s"
                f"   ratio {statistics.median(ratios):.2f} ({ratios[0]:.2f}-{ratios[-1]:.2f})"
                f"   (medians, and min-max of per-round ratios, of {args.rounds} rounds)"
            )
        single = results[1][1]
        print(
            f"jobsts scaling: {results[args.threads][1] / single:.2f}x one thread's calls/s "
            f"on {args.threads} threads (raw: {results[args.threads][0] / results[1][0]:.2f}x)"
        )
        registry.close()
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
