"""Glewlwyd (a C OAuth2/OIDC server, Debian package ``glewlwyd``) as the login peer of jobsts.

On the bench's own slapd (tests/ldap_harness.py, realm ``jobmgr``) and PostgreSQL, this module
gives Glewlwyd a private database, a configuration file, a free loopback port, an LDAP user
backend and an ES256 signing key, so that its password logins can be measured beside jobsts's
with the same client code (bench/peers/logins.py):

    with glewlwyd_server(slapd, postgres_url) as peer:
        figures = measure_logins(peer, slapd, clients=8, seconds=10)

The LDAP backend maps each ``memberOf`` value of the user to a scope of the same name (one
level of groups; jobsts resolves nested groups). A login asks for the scope
``cn=operators,ou=groups,<base>``; Glewlwyd answers 200 only if the LDAP bind succeeds and
the user holds that scope, and signs an ``at+jwt`` access token with ES256 (RFC 9068).

``python -m bench.peers.glewlwyd [--runs 3] [--seconds 10] [--clients 8]`` starts slapd and
Glewlwyd and prints a table of the runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from bench.peers.cpu import fixed
from bench.peers.glewlwyd_setup import GLEWLWYD, KID, SCHEMA, available, configure, load_schema, start, stop
from bench.peers.logins import LoginFigures, drive_logins
from bench.peers.postgres import DEFAULT_POSTGRES, PgTarget, backend_pids, private_database
from bench.peers.stats import Spread, markdown_table
from tests.ldap_harness import SlapdServer


@dataclass
class Glewlwyd:
    """A running Glewlwyd configured for the bench (see :func:`glewlwyd_server`)."""

    workdir: Path
    port: int
    process: subprocess.Popen[bytes]
    database: PgTarget
    realm: str
    base_dn: str
    public_key: ec.EllipticCurvePublicKey

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token_url(self) -> str:
        return f"{self.url}/api/oidc/token"

    @property
    def scope(self) -> str:
        return f"cn=operators,ou=groups,{self.base_dn}"

    def login_form(self, user: str = "john") -> dict[str, str]:
        """RFC 6749 §4.3.2 form; the seed passwords are ``<uid>-password``. No client_id: Glewlwyd's
        password grant authenticates only confidential clients (HTTP Basic) and refuses a
        public client named in the body, so the bench logs in without a client, as jobsts's does."""
        return {"grant_type": "password", "username": user, "password": f"{user}-password", "scope": self.scope}

    def check_token(self, body: dict[str, Any]) -> None:
        """The access token is an ES256 JWS by our key, for ``john``'s requested scope."""
        token = body["access_token"]
        header = jwt.get_unverified_header(token)
        if header.get("alg") != "ES256" or header.get("kid") != KID:
            raise ValueError(f"unexpected JWS header {header}")
        claims = jwt.decode(token, self.public_key, algorithms=["ES256"], options={"verify_aud": False})
        if claims.get("scope") != self.scope:
            raise ValueError(f"unexpected scope {claims.get('scope')!r}")

    def log_tail(self, size: int = 2000) -> str:
        path = self.workdir / "glewlwyd.log"
        return path.read_text(errors="replace")[-size:] if path.exists() else ""


@contextmanager
def glewlwyd_server(
    slapd: SlapdServer,
    postgres_url: str = DEFAULT_POSTGRES,
    *,
    realm: str = "jobmgr",
    log_level: str = "INFO",
    pg_settings: Mapping[str, str] | None = None,
) -> Iterator[Glewlwyd]:
    """A configured Glewlwyd on its own database, stopped and dropped on exit.

    ``log_level`` INFO (the package default) writes two audit lines per login, the counterpart
    of jobsts's audit log; WARNING writes none. Glewlwyd keeps ONE PostgreSQL connection for all
    requests (about 3.5 transactions per login, one a durable write), so its logins/s follow the
    database's latency; ``pg_settings={"synchronous_commit": "off"}`` shows how much of that is
    the commit fsync (not durable: for analysis only, never as the reported peer).
    """
    if not available():
        raise RuntimeError(f"{GLEWLWYD} or {SCHEMA} is missing: apt-get install glewlwyd")
    with ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="jobsts-bench-glewlwyd-"))
        stack.callback(shutil.rmtree, workdir, True)
        database = stack.enter_context(private_database(postgres_url, prefix="bench_glewlwyd"))
        load_schema(database, pg_settings)
        process, port = start(workdir, database, log_level)
        stack.callback(stop, process)
        public_key = configure(f"http://127.0.0.1:{port}", slapd, realm)
        peer = Glewlwyd(workdir, port, process, database, realm, slapd.base_dn(realm), public_key)
        response = httpx.post(peer.token_url, data=peer.login_form(), timeout=30)
        if response.status_code != 200:
            raise RuntimeError(
                f"Glewlwyd refused the first login: {response.status_code} {response.text[:300]} {peer.log_tail()}"
            )
        peer.check_token(response.json())
        yield peer


def measure_logins(
    peer: Glewlwyd,
    slapd: SlapdServer,
    *,
    clients: int = 8,
    seconds: float | None = 5.0,
    count: int | None = None,
    warmup: float = 1.0,
) -> LoginFigures:
    """Password logins against ``peer`` (see :func:`bench.peers.logins.drive_logins`): server CPU
    from Glewlwyd's /proc/PID/stat (all its threads), slapd's apart, and the PostgreSQL backends
    of Glewlwyd's private database apart."""
    if slapd.process is None:
        raise RuntimeError("slapd is not running")
    slapd_pid = slapd.process.pid
    pg_pids = backend_pids(peer.database)

    def kwargs() -> dict[str, Any]:
        return {
            "server": fixed(peer.pid),
            "clients": clients,
            "slapd": fixed(slapd_pid),
            "database": fixed(*pg_pids),
            "check": peer.check_token,
        }

    if warmup > 0:
        drive_logins(peer.token_url, peer.login_form(), seconds=warmup, **kwargs())
    if peer.process.poll() is not None:
        raise RuntimeError(f"Glewlwyd exited: {peer.log_tail()}")
    return drive_logins(peer.token_url, peer.login_form(), seconds=seconds, count=count, **kwargs())


def _table(runs: list[LoginFigures]) -> str:
    def spread(values: list[float | None], spec: str) -> str:
        present = [v for v in values if v is not None]
        return Spread.of(present).format(spec) if present else "n/a"

    rows = [
        ("password logins/s", spread([r.per_second for r in runs], ".0f")),
        ("p50 latency (ms)", spread([r.p50_ms for r in runs], ".1f")),
        ("p99 latency (ms)", spread([r.p99_ms for r in runs], ".1f")),
        ("server CPU per login (ms)", spread([r.server_cpu_ms for r in runs], ".2f")),
        ("logins per server CPU-second", spread([r.logins_per_server_cpu_second for r in runs], ".0f")),
        ("slapd CPU per login (ms)", spread([r.slapd_cpu_ms for r in runs], ".2f")),
        ("PostgreSQL backend CPU per login (ms)", spread([r.database_cpu_ms for r in runs], ".2f")),
    ]
    return markdown_table(["Glewlwyd figure", f"median (min-max) of {len(runs)} runs"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--log-level", default="INFO", choices=["NONE", "ERROR", "WARNING", "INFO", "DEBUG"])
    parser.add_argument(
        "--no-sync-commit",
        action="store_true",
        help="synchronous_commit=off on Glewlwyd's database (analysis only: not durable)",
    )
    parser.add_argument("--postgres", default=os.environ.get("JOBSTS_TEST_DATABASE_URL") or DEFAULT_POSTGRES)
    args = parser.parse_args()
    with ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="jobsts-bench-slapd-"))
        stack.callback(shutil.rmtree, workdir, True)
        slapd = SlapdServer(workdir).start()
        stack.callback(slapd.stop)
        peer = stack.enter_context(
            glewlwyd_server(
                slapd,
                args.postgres,
                log_level=args.log_level,
                pg_settings={"synchronous_commit": "off"} if args.no_sync_commit else None,
            )
        )
        print(
            f"Glewlwyd {peer.url} (pid {peer.pid}, database {peer.database.dbname}), slapd {slapd.url}, "
            f"{args.clients} clients, {args.seconds:g} s per run",
            flush=True,
        )
        runs = []
        for index in range(args.runs):
            figures = measure_logins(peer, slapd, clients=args.clients, seconds=args.seconds)
            runs.append(figures)
            print(f"run {index + 1}: {figures}", flush=True)
    print(_table(runs))


if __name__ == "__main__":
    main()
