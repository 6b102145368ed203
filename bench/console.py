"""The console's job list with 10^5 jobs: server time of ``GET /console/jobs`` against a raw SQL
query of the same page, measured in the same run.

Builds the real STS app on PostgreSQL (a fresh schema; SQLite with ``--sqlite``), inserts
``--jobs`` jobs spread over 7 days, 8 nodes, 50 submitters, 3 types and every state, and signs
in through the real login page (Flask's test client). Server time is the whole request inside
the WSGI app (session lookup, token verification, the authorization table, the query, the
template), without a network. The peer is the same page's SQL, as text, on a bare connection.
Cases: the first page as a monitor, a page 2,000 jobs deep through the cursor, each filter, and
a user without monitor (own jobs only). 3 runs of ``--samples`` interleaved requests per case;
min/median/max of the per-run medians go to bench/results.md (own section, replaced each run).

    .venv/bin/python bench/console.py [--jobs 100000] [--samples 30] [--postgres URL | --sqlite] [--no-write]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Engine, insert, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from authz_tables.roles import Role  # noqa: E402
from bench.machine import machine  # noqa: E402
from sts import create_app  # noqa: E402
from sts.config import load_sts_config  # noqa: E402
from sts.jobs.listing import PAGE_SIZE, Cursor  # noqa: E402
from sts.jobs.models import Job  # noqa: E402
from tests.console.conftest import hidden_fields  # noqa: E402
from tests.sts.conftest import BASE_URL, write_config  # noqa: E402
from tests.sts.fakes import group_id, user_id  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from pg import postgres_schema  # noqa: E402
from results_section import replace_section  # noqa: E402

RESULTS = ROOT / "bench" / "results.md"
BEGIN, END = "<!-- bench/console.py -->", "<!-- end bench/console.py -->"
GOAL_MS = 100.0
BASE = "http://127.0.0.1:8080"
STATES = ["succeeded"] * 70 + ["failed"] * 10 + ["refused"] * 5 + ["queued"] * 8 + ["cancelled"] * 4 + ["lost"] * 3
SUBMITTERS = 50


def fill(engine: Engine, count: int, now: float) -> None:
    """``count`` jobs, newest ``now``, over 7 days (bulk insert; the tokens are placeholders)."""
    rng = random.Random(7)
    submitters = [str(user_id("jobmgr", "john"))] + [f"user:jobmgr/uid=u{i},ou=people" for i in range(SUBMITTERS - 1)]
    rows: list[dict[str, Any]] = []
    with engine.begin() as connection:
        for i in range(count):
            created = now - rng.random() * 7 * 86400
            state = rng.choice(STATES)
            submitter = rng.choice(submitters)
            rows.append(
                {
                    "id": str(uuid.uuid4()), "submitter": submitter, "submitter_realm": "jobmgr",
                    "subject": submitter, "realm": "jobmgr", "node_id": f"node{rng.randrange(8)}",
                    "type": rng.choice(("shell", "shell", "script", "transfer")),
                    "spec": '{"argv":["/bin/echo","hi"]}', "job_digest": "0" * 64, "not_before": int(created),
                    "deadline": int(created) + 86400, "state": state, "attempts": 1, "created_at": created,
                    "updated_at": created, "exit_code": 0 if state == "succeeded" else None,
                    "result_code": "authz.denied" if state == "refused" else None,
                    "token_ciphertext": b"x", "token_jti": str(uuid.uuid4()), "token_exp": int(created) + 86400,
                }
            )  # fmt: skip
            if len(rows) == 5000 or i == count - 1:
                connection.execute(insert(Job), rows)
                rows = []
        if connection.dialect.name == "postgresql":
            connection.execute(text("ANALYZE sts_jobs"))
        else:
            connection.execute(text("ANALYZE"))


def sign_in(client: Any, username: str) -> None:
    """The console's sign-in through the realm's real login page."""

    def path(location: str) -> str:
        parts = urlsplit(location)
        return f"{parts.path}?{parts.query}"

    start = client.post("/console/login", data={"realm": "jobmgr"}, base_url=BASE)
    page = client.get(path(start.headers["Location"]), base_url=BASE)
    fields = hidden_fields(page.get_data(as_text=True))
    fields.update(username=username, password=f"{username}-password")
    answer = client.post("/realms/jobmgr/authorize", data=fields, base_url=BASE)
    back = client.get(path(answer.headers["Location"]), base_url=BASE)
    assert back.status_code == 303, back.get_data(as_text=True)


RAW = (
    "SELECT id, state, node_id, type, submitter, created_at, result_code FROM sts_jobs "
    "WHERE {where} ORDER BY created_at DESC, id DESC LIMIT :limit"
)


def cases(engine: Engine, john: str) -> dict[str, tuple[str, str, dict[str, Any], str]]:
    """name -> (who, console query string, raw SQL parameters, raw WHERE clause)."""
    with engine.connect() as connection:
        deep = connection.execute(
            text("SELECT created_at, id FROM sts_jobs ORDER BY created_at DESC, id DESC LIMIT 1 OFFSET 1999")
        ).one()
    cursor = Cursor(float(deep[0]), str(deep[1]))
    after = "(created_at < :c OR (created_at = :c AND id < :i))"
    return {
        "first page, monitor": ("carol", "", {}, "1=1"),
        "page 2,000 jobs deep (cursor)": (
            "carol", f"cursor={cursor.encode()}", {"c": cursor.created_at, "i": cursor.job_id}, after,
        ),
        "state=refused (5%)": ("carol", "state=refused", {"s": "refused"}, "state = :s"),
        "node=node3": ("carol", "node=node3", {"n": "node3"}, "node_id = :n"),
        "type=transfer": ("carol", "type=transfer", {"t": "transfer"}, "type = :t"),
        "last 24 h": ("carol", "window=24h", {"w": time.time() - 86400}, "created_at >= :w"),
        "own jobs (no monitor)": ("john", "", {"u": john}, "submitter = :u"),
    }  # fmt: skip


def timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def measure(
    args: argparse.Namespace, database_url: str, folder: Path
) -> tuple[list[dict[str, tuple[float, float]]], str]:
    path = write_config(folder, database_url)
    path.write_text(path.read_text().replace(BASE_URL, BASE), encoding="utf-8")
    app = create_app(load_sts_config(path, environ={}))
    services = app.extensions["jobsts"]
    services.authz.grant(group_id("jobmgr", "monitors"), Role.MONITOR, changed_by="bench")
    services.authz.refresh()
    engine = services.db.engine
    fill(engine, args.jobs, time.time())
    clients = {name: app.test_client() for name in ("carol", "john")}
    for name, client in clients.items():
        sign_in(client, name)
    table = cases(engine, str(user_id("jobmgr", "john")))
    runs: list[dict[str, tuple[float, float]]] = []
    for _ in range(args.runs):
        samples: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in table}
        with engine.connect() as connection:
            for _ in range(args.samples):
                for name, (who, query, params, where) in table.items():
                    client = clients[who]

                    def page(client: Any = client, query: str = query) -> None:
                        response = client.get(f"/console/jobs?{query}", base_url=BASE)
                        assert response.status_code == 200, response.status_code

                    def raw(params: dict[str, Any] = params, where: str = where) -> None:
                        connection.execute(text(RAW.format(where=where)), {**params, "limit": PAGE_SIZE + 1}).all()

                    samples[name][0].append(timed(page))
                    samples[name][1].append(timed(raw))
        runs.append({name: (statistics.median(a), statistics.median(b)) for name, (a, b) in samples.items()})
    dialect = engine.dialect.name
    services.close()
    return runs, dialect


def report(runs: list[dict[str, tuple[float, float]]], dialect: str, args: argparse.Namespace) -> list[str]:
    lines = [BEGIN, "## Console job list (bench/console.py)", "",
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {machine()}; {dialect}; "
             f"{args.jobs:,} jobs; {len(runs)} runs of {args.samples} interleaved samples per case; "
             "server time inside the WSGI app (Flask test client, no network).", "",
             "| case | console page ms, median per run | raw SQL ms, median per run "
             f"| console / raw: min / median / max | console / {GOAL_MS:.0f} ms goal (max) |",
             "|---|---|---|---|---|"]  # fmt: skip
    for name in runs[0]:
        pages = [run[name][0] * 1000 for run in runs]
        raws = [run[name][1] * 1000 for run in runs]
        ratios = [p / r for p, r in zip(pages, raws, strict=True)]
        lines.append(
            f"| {name} | {', '.join(f'{p:.1f}' for p in pages)} | {', '.join(f'{r:.2f}' for r in raws)} | "
            f"{min(ratios):.1f} / {statistics.median(ratios):.1f} / {max(ratios):.1f} | {max(pages) / GOAL_MS:.2f} |"
        )
    lines += ["", "The raw query is the page's own SQL (the same seven columns, filters, keyset, `LIMIT 51`) on a",
              "bare connection; the difference is the console's work around it: reading the session row (with",
              "its revocation), verifying the access token's signature, the authorization table's decision,",
              "and rendering 50 rows of HTML.", END]  # fmt: skip
    return lines


def write(lines: list[str]) -> None:
    """Replace this bench's section (``lines`` carry its markers) and leave the others alone."""
    text_ = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else ""
    RESULTS.write_text(replace_section(text_, "bench/console.py", lines[1:-1]), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--sqlite", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        url = f"sqlite:///{folder / 'bench.db'}" if args.sqlite else stack.enter_context(postgres_schema(args.postgres))
        runs, dialect = measure(args, url, folder)
    lines = report(runs, dialect, args)
    print("\n".join(lines))
    if not args.no_write:
        write(lines)


if __name__ == "__main__":
    main()
