"""Benchmark: what authenticating one agent call costs the database side, cached and not.

Builds an STS on a SQLite file (``--pg URL`` adds a PostgreSQL schema), registers one node and
mints it an agent token, then times per call, in one process and in the same run:

- ``orm``: the former path, an ORM session and ``SELECT node, EXISTS(revoked jti)`` per call;
- ``cached``: ``NodeAuthCache.lookup`` on a hit (one primary-key read of ``sts_auth_version``);
- ``core``: the raw Core ``SELECT`` of the node row on a fresh connection (the reference);
- ``authenticated_node``: the whole check inside a request context, signature included.

Ratios are against ``core`` measured in the same run; min/median/max of 3 runs.
Writes its own section of ``bench/results.md`` (``results_section.write_section``).

    .venv/bin/python bench/agent_auth.py [--calls 2000] [--pg URL] [--no-write]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from sqlalchemy import exists, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.machine import machine  # noqa: E402
from bench.node_key import CNF, NODE_JWK  # noqa: E402
from sts import create_app  # noqa: E402
from sts.config import load_sts_config  # noqa: E402
from sts.http.auth import authenticated_node  # noqa: E402
from sts.http.context import request_context  # noqa: E402
from sts.nodes.models import Node  # noqa: E402
from sts.oauth.models import RevokedToken  # noqa: E402
from sts.services import Services  # noqa: E402
from tests.sts.conftest import write_config  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from pg import postgres_schema  # noqa: E402
from results_section import write_section  # noqa: E402

NAMES = ("orm", "cached", "core", "authenticated_node")


def interleaved(timed: dict[str, Callable[[], object]], calls: int, burst: int = 25) -> dict[str, float]:
    """Microseconds per call of each function; bursts of ``burst`` calls take turns, so that all
    see the same machine load (it is shared). 50 warm-up calls each first."""
    for fn in timed.values():
        for _ in range(50):
            fn()
    spent = dict.fromkeys(timed, 0.0)
    for _ in range(max(1, calls // burst)):
        for name, fn in timed.items():
            start = time.perf_counter()
            for _ in range(burst):
                fn()
            spent[name] += time.perf_counter() - start
    return {name: seconds / (max(1, calls // burst) * burst) * 1e6 for name, seconds in spent.items()}


def subjects(services: Services) -> tuple[str, str]:
    with services.db.session() as session:
        session.add(Node(id="bench1", realm="jobmgr", authgroups=["batch"], public_jwk=NODE_JWK, trusted_realms=[],
                         created_at=0, created_by="bench", updated_at=0, updated_by="bench"))  # fmt: skip
    now = int(time.time())
    claims = {"iss": services.config.issuer("jobmgr"), "sub": "node:bench1", "aud": services.config.audience,
              "iat": now, "nbf": now, "exp": now + 300, "jti": str(uuid.uuid4()), "cnf": CNF}  # fmt: skip
    return services.keys.sign("jobmgr", claims, "agent+jwt"), str(claims["jti"])


def one_run(database_url: str, folder: Path, calls: int) -> dict[str, float]:
    app = create_app(load_sts_config(write_config(folder, database_url), environ={}))
    services: Services = app.extensions["jobsts"]
    try:
        token, jti = subjects(services)
        engine = services.db.engine

        def orm() -> object:
            with services.db.session() as session:
                revoked = exists().where(RevokedToken.jti == jti).label("revoked")
                return session.execute(select(Node, revoked).where(Node.id == "bench1")).first()

        def core() -> object:
            with engine.connect() as conn:
                return conn.execute(select(Node.__table__).where(Node.__table__.c.id == "bench1")).first()

        def cached() -> object:
            return services.node_auth.lookup(engine, "bench1", jti)

        def whole() -> object:
            with app.test_request_context(headers={"Authorization": f"Bearer {token}"}):
                node = authenticated_node()
                request_context().node = None
                return node

        timed = {"orm": orm, "cached": cached, "core": core, "authenticated_node": whole}
        return interleaved(timed, calls)
    finally:
        services.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--pg", default="")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    lines = ["## Agent authentication per call (bench/agent_auth.py)", "",
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {machine()}; 3 runs of {args.calls} calls "
             "each; microseconds per call, min / median / max; ratio = median / median of `core` (same run).", "",
             "| database | path | us per call | ratio to core |", "|---|---|---|---|"]  # fmt: skip
    with ExitStack() as stack:
        for label in ("SQLite", "PostgreSQL") if args.pg else ("SQLite",):
            runs = []
            for _ in range(3):
                folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
                url = f"sqlite:///{folder / 'bench.db'}"
                if label == "PostgreSQL":
                    url = stack.enter_context(postgres_schema(args.pg))
                runs.append(one_run(url, folder, args.calls))
            core = statistics.median(run["core"] for run in runs)
            for name in NAMES:
                values = sorted(run[name] for run in runs)
                figure = f"{values[0]:.1f} / {values[1]:.1f} / {values[2]:.1f}"
                lines.append(f"| {label} | {name} | {figure} | {values[1] / core:.2f} |")
                print(label, name, figure, f"{values[1] / core:.2f}")
    lines += ["", "`orm` is the former check (ORM session, node row joined with the revocation EXISTS);",
              "`cached` is a hit of the agent-authentication cache (one primary-key read of the version);",
              "`authenticated_node` adds the agent token's signature check and the request context."]  # fmt: skip
    if not args.no_write:
        write_section("bench/agent_auth.py", lines)


if __name__ == "__main__":
    main()
