"""Failed-login timing on a real slapd: unknown user, locked account and ambiguous name, each
as a ratio to a wrong password for a real user, measured in the same run.

This is the wall-clock view of a property the test suite proves by counting instead
(tests/security/test_ldap.py: every failed login sends the directory one search and one bind):
timing depends on the machine's load, so it belongs here, not in an assertion.

Starts its own slapd (tests/ldap_harness.py), warms the registries, then takes interleaved
samples (so load hits every case alike) in 3 runs, and writes min/median/max of the per-run
median ratios to bench/results.md (its own section, replaced on each run).

    .venv/bin/python bench/login_timing.py [--samples 200] [--runs 3] [--no-write]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from results_section import replace_section  # noqa: E402

from bench.machine import machine  # noqa: E402
from realms.config import load_realms  # noqa: E402
from realms.registries.base import Registry  # noqa: E402
from tests.ldap_harness import SlapdServer, seed_files  # noqa: E402

RESULTS = ROOT / "bench" / "results.md"
BEGIN, END = "<!-- bench/login_timing.py -->", "<!-- end bench/login_timing.py -->"
REFERENCE = "wrong password"
CASES = {
    REFERENCE: ("jobmgr", "john", "wrong-password"),
    "unknown user": ("jobmgr", "nosuchuser", "some-password"),
    "locked account, right password": ("jobmgr", "alice", "alice-password"),
    "ambiguous name": ("cellC", "dup", "dup-password"),
}


def sample(registry: Registry, username: str, password: str) -> float:
    started = time.perf_counter()
    if registry.authenticate(username, password) is not None:
        raise SystemExit(f"{username}: a login that must fail succeeded")
    return time.perf_counter() - started


def one_run(registries: dict[str, Registry], samples: int) -> dict[str, float]:
    """The median seconds of each case, samples interleaved case by case."""
    taken: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(samples):
        for name, (realm, username, password) in CASES.items():
            taken[name].append(sample(registries[realm], username, password))
    return {name: statistics.median(values) for name, values in taken.items()}


def report(runs: list[dict[str, float]], samples: int) -> list[str]:
    lines = [BEGIN, "## Failed-login timing (bench/login_timing.py)", "",
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {machine()}; own slapd on loopback; "
             f"{len(runs)} runs of {samples} interleaved samples per case.", "",
             f"| case | median ms (per run) | ratio to {REFERENCE}: min / median / max |", "|---|---|---|"]  # fmt: skip
    for name in CASES:
        ratios = [run[name] / run[REFERENCE] for run in runs]
        medians = ", ".join(f"{run[name] * 1000:.2f}" for run in runs)
        lines.append(f"| {name} | {medians} | {min(ratios):.2f} / {statistics.median(ratios):.2f} / "
                     f"{max(ratios):.2f} |")  # fmt: skip
    lines += ["", "Every case costs the directory one search and one bind (a decoy DN for unknown, locked",
              "and ambiguous names), which tests/security/test_ldap.py proves by counting LDAP operations.",
              END]  # fmt: skip
    return lines


def write(lines: list[str]) -> None:
    """Replace this bench's section (``lines`` carry its markers) and leave the others alone."""
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else ""
    RESULTS.write_text(replace_section(text, "bench/login_timing.py", lines[1:-1]), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="Print only; leave bench/results.md alone.")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="jobsts-bench-login-"))
    seeds = {realm: path for realm, path in seed_files().items() if realm in ("jobmgr", "cellC")}
    slapd = SlapdServer(workdir, seeds=seeds).start()
    try:
        realms = load_realms([slapd.realm_table("jobmgr"), slapd.realm_table("cellC")], workdir)
        registries = {name: realms[name].open_registry() for name in ("jobmgr", "cellC")}
        try:
            one_run(registries, 10)  # warm the pools and caches
            runs = [one_run(registries, args.samples) for _ in range(args.runs)]
        finally:
            for registry in registries.values():
                registry.close()
    finally:
        slapd.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    lines = report(runs, args.samples)
    print("\n".join(lines))
    if not args.no_write:
        write(lines)


if __name__ == "__main__":
    main()
