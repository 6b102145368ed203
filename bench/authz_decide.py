"""Benchmark: decisions per second on a 100,000-entry table for a principal with 50 groups.

Builds the table in a SQLite file through ``AuthzTable.import_entries``, loads the snapshot,
then times ``Snapshot.decide`` for an allowed, a default-deny and a deny-wins case. The
physical limit measured in the same run is the bare work a decision cannot avoid: one dict
lookup per access ID of the principal (51 + 1 special) in a dict of the same 100,000 keys.
The ratio printed is decide time / baseline time. It also checks that deciding issued no SQL.

Writes its own section of ``bench/results.md`` (``results_section.write_section``).

    .venv/bin/python bench/authz_decide.py [--entries 100000] [--groups 50] [--seconds 1.0] [--no-write]
"""

from __future__ import annotations

import argparse
import builtins
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from results_section import write_section
from sqlalchemy import event

from authz_tables.entries import NODE_SCOPE, Effect, Entry, Scope
from authz_tables.roles import Role
from authz_tables.store import AuthzTable
from realms.identity.access_id import EVERYONE, AccessId


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second of ``fn`` over about ``seconds``."""
    n, start = 0, time.perf_counter()
    batch = 100
    while True:
        for _ in range(batch):
            fn()
        n += batch
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n / elapsed


def build(total: int, rng: random.Random) -> tuple[list[Entry], list[AccessId]]:
    groups = [AccessId.group("jobmgr", f"cn=g{i},ou=groups,dc=jobmgr,dc=example") for i in range(total // 10)]
    users = [AccessId.user("jobmgr", f"uid=u{i},ou=people,dc=jobmgr,dc=example") for i in range(total)]
    authgroups = [NODE_SCOPE] + [Scope(f"ag{i}") for i in range(20)]
    entries: dict[tuple[str, str, str], Entry] = {}
    # Each group: 4 entries (40% of the table); the rest are per-user entries.
    for group in groups:
        for _ in range(4):
            e = Entry(group, rng.choice(list(Role)), Effect.ALLOW, rng.choice(authgroups))
            entries.setdefault(e.key, e)
    while len(entries) < total:
        e = Entry(rng.choice(users), rng.choice(list(Role)), rng.choice([Effect.ALLOW] * 9 + [Effect.DENY]),
                  rng.choice(authgroups))  # fmt: skip
        entries.setdefault(e.key, e)
    return list(entries.values()), groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--groups", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/results.md alone")
    args = parser.parse_args()
    lines: list[str] = []

    def print(line: str) -> None:
        lines.append(line)
        builtins.print(line, flush=True)

    rng = random.Random(42)

    entries, groups = build(args.entries, rng)
    subject = AccessId.user("jobmgr", "uid=bench,ou=people,dc=jobmgr,dc=example")
    member_of = rng.sample(groups, args.groups)
    principal = [subject, *member_of, EVERYONE]
    keys = [str(p) for p in principal]
    scopes = [Scope("ag3")]
    # The cases: allowed (a group holds administrator node-wide), default deny, deny wins.
    allow = Entry(member_of[-1], Role.ADMINISTRATOR, Effect.ALLOW, NODE_SCOPE)
    deny = Entry(subject, Role.OPERATOR, Effect.DENY, Scope("ag3"))

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'authz.db'}"
        with AuthzTable(url, upgrade=True, refresh_interval=3600) as table:
            t0 = time.perf_counter()
            table.import_entries([e for e in entries if e.principal != subject], changed_by="local:bench")
            t_import = time.perf_counter() - t0
            t0 = time.perf_counter()
            snapshot = table.refresh()
            t_load = time.perf_counter() - t0
            base_snapshot = snapshot
            table.import_entries([allow], changed_by="local:bench")
            allowed_snapshot = table.refresh()
            table.import_entries([deny], changed_by="local:bench")
            denied_snapshot = table.refresh()
            print(f"table: {len(denied_snapshot)} entries; import {t_import:.2f} s, snapshot load {t_load:.2f} s")
            print(f"principal: 1 user + {args.groups} groups + 1 special = {len(principal)} access IDs")

            statements: list[str] = []

            def count(*a: Any) -> None:
                statements.append(a[2])

            event.listen(table.engine, "before_cursor_execute", count)
            cases = {
                "allowed (strings)": lambda: allowed_snapshot.decide(keys, Role.MONITOR, scopes),
                "allowed (AccessId)": lambda: allowed_snapshot.decide(principal, Role.MONITOR, scopes),
                "default deny + nearest": lambda: base_snapshot.decide(keys, Role.ADMINISTRATOR, scopes),
                "deny wins": lambda: denied_snapshot.decide(keys, Role.OPERATOR, scopes),
                "table.decide (cached)": lambda: table.decide(keys, Role.MONITOR, scopes),
            }
            assert allowed_snapshot.decide(keys, Role.MONITOR, scopes).allowed
            assert not denied_snapshot.decide(keys, Role.OPERATOR, scopes).allowed
            index = {str(e.principal): e for e in entries}

            def baseline() -> None:
                for k in keys:
                    index.get(k)

            key_tuple = tuple(keys)

            def memoised() -> None:
                allowed_snapshot.decide(key_tuple, Role.MONITOR, scopes)

            base = rate(baseline, args.seconds)
            print(f"baseline: {base:,.0f} lookups of {len(keys)} access IDs/s (dict of {len(index):,} keys)")
            for name, fn in cases.items():
                r = rate(fn, args.seconds)
                print(f"{name:>24}: {r:>10,.0f} decisions/s  ratio to baseline {base / r:5.1f}x slower")
            event.remove(table.engine, "before_cursor_execute", count)
            print(f"SQL statements issued while deciding: {len(statements)}")
            memo_rate = rate(memoised, args.seconds)
            print(f"allowed, tuple keys (as the agent passes them), memoised per snapshot: {memo_rate:,.0f}/s")
    if not args.no_write:
        stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        heading = ["## Authorization table decisions (bench/authz_decide.py)", "", f"{stamp}; one run.", "", "```"]
        write_section("bench/authz_decide.py", [*heading, *lines, "```"])


if __name__ == "__main__":
    main()
