"""Benchmark: job round trips per second through the HTTP API, against a raw SQLAlchemy loop.

For SQLite and PostgreSQL, with 1 and 8 concurrent clients, it serves the STS under gunicorn
(2 workers, 8 Flask threads each, loopback; the production stack of sts.gunicorn_conf, uvicorn
workers serving sts.asgi, or with --wsgi the gthread server of sts.wsgi) and measures, in the same run:

* ``submit/s``: ``POST /api/v1/jobs`` (validate, authorize, mint + encrypt the job token, insert),
  each client one keep-alive ``http.client`` connection, timed after a warm-up that opens the
  workers' database connections (as the peers open their pools before timing);
* ``jobs/s``: agents (all on the same node, so they contend) each running agent_client's loop:
  lease (up to 10 jobs; the call also carries the previous batch's results) -> claim (start them,
  one UPDATE): two HTTP round trips per batch of up to 10 jobs; with nothing to report an agent
  waits on ``GET /api/v1/agent/wait`` as the real one does (never spinning on empty leases). Timed
  from the agents' start to the last result recorded;
* ``raw/s``: the physical limit on the same database: a bare SQLAlchemy Core loop of one
  INSERT transaction then one UPDATE transaction per row, with the same number of threads.

Ratios printed: submit/s / raw/s and jobs/s / raw/s. On PostgreSQL, each run also measures the
dedicated job queues pgqueuer and procrastinate (bench/peers/queues.py, the ``bench`` extra) on the
same server, and the table gives jobsts ÷ peer for submit (enqueue) and dispatch (dequeue +
complete) at 1 and 8 clients/workers, min/median/max of ``--runs`` runs.

    .venv/bin/python bench/jobs.py [--jobs 300] [--runs 3] [--sqlite] \
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import http.client
import importlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import Column, MetaData, String, Table, Text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from authz_tables.roles import Role  # noqa: E402
from bench.node_key import CNF, NODE_JWK  # noqa: E402
from bench.peers.queues import QueueFigures  # noqa: E402
from bench.peers.stats import Spread, markdown_table, paired_ratios  # noqa: E402
from bench.pg import postgres_schema  # noqa: E402
from realms.identity.access_id import AccessId  # noqa: E402
from sts.config import load_sts_config  # noqa: E402
from sts.db import make_engine  # noqa: E402
from sts.keys.master_key import create_key_file  # noqa: E402
from sts.nodes.models import Node  # noqa: E402
from sts.services import build_services  # noqa: E402
from tests.loopback import listening_socket, port_of, socket_activation  # noqa: E402

JOHN = AccessId.user("jobmgr", "uid=john,ou=people,dc=jobmgr,dc=example")
BATCH = 10  # jobs per lease call: pgqueuer's default batch_size, so both sides batch alike
WAIT_SECONDS = 2  # an idle agent's wait (a real agent waits poll_wait, 20 s; only the bench's end sees it)
RESULT = {"outcome": "succeeded", "exit_code": 0, "stdout_tail": "bench\n", "stderr_tail": ""}


def write_config(folder: Path, database_url: str, port: int) -> Path:
    create_key_file(folder / "master.key")
    ldif = ROOT / "examples" / "realms" / "jobmgr.ldif"
    path = folder / "sts.toml"
    path.write_text(
        f"""[sts]
base_url = "http://127.0.0.1:{port}"
database_url = {json.dumps(database_url)}
master_key_file = "master.key"
audience = "http://127.0.0.1:{port}/api"

[[realms]]
name = "jobmgr"
[realms.registry]
type = "ldif"
path = {json.dumps(str(ldif))}
user_base = "ou=people,dc=jobmgr,dc=example"
group_base = "ou=groups,dc=jobmgr,dc=example"
""",
        encoding="utf-8",
    )
    return path


def prepare(config_path: Path) -> tuple[str, str]:
    """Migrate, grant john operator, register node1; return (user token, agent token)."""
    config = load_sts_config(config_path, environ={})
    services = build_services(config, migrate=True)
    try:
        services.authz.grant(JOHN, Role.OPERATOR, changed_by="bench")
        with services.db.session() as session:
            session.add(
                Node(
                    id="node1",
                    realm="jobmgr",
                    authgroups=[],
                    public_jwk=NODE_JWK,
                    trusted_realms=[],
                    created_at=0,
                    created_by="bench",
                    updated_at=0,
                    updated_by="bench",
                )
            )
        now = int(time.time())
        common = {"iss": config.issuer("jobmgr"), "aud": config.audience, "iat": now, "nbf": now, "exp": now + 300}
        user = services.keys.sign(
            "jobmgr",
            {
                **common,
                "sub": str(JOHN),
                "jti": str(uuid.uuid4()),
                "realm": "jobmgr",
                "groups": [],
                "preferred_username": "john",
            },
            "at+jwt",
        )
        agent_claims = {**common, "sub": "node:node1", "jti": str(uuid.uuid4()), "cnf": CNF}
        agent = services.keys.sign("jobmgr", agent_claims, "agent+jwt")
        return user, agent
    finally:
        services.close()


# What operators run (sts.gunicorn_conf: uvicorn workers, Flask on 8 threads each under a2wsgi,
# agents waiting on the event loop), or with --wsgi the plain gthread server of sts.wsgi.
SERVERS = {
    "asgi": ["-c", "python:sts.gunicorn_conf", "sts.asgi:app"],
    "wsgi": ["--threads", "8", "sts.wsgi:app"],
}


@contextmanager
def gunicorn(config_path: Path, sock: socket.socket, server: str = "asgi") -> Iterator[str]:
    """gunicorn (2 workers) serving on ``sock``, a listening socket we hold (systemd socket activation)."""
    env = {
        **os.environ,
        "JOBSTS_CONFIG": str(config_path),
        "JOBSTS_GUNICORN_THREADS": "8",
        "PYTHONPATH": str(ROOT),
        "PYTHONWARNINGS": "ignore::DeprecationWarning",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    argv, fds = socket_activation(
        [sys.executable, "-m", "gunicorn", *SERVERS[server], "-w", "2", "--log-level", "warning"], sock
    )
    # The audit log (a JSON line per lease, start and result) goes to a file, as to a journal in production.
    with (config_path.parent / "sts.log").open("wb") as log:
        process = subprocess.Popen(argv, env=env, cwd=ROOT, pass_fds=fds, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port_of(sock)}"
    try:
        give_up = time.monotonic() + 120  # a loaded machine: the workers may take a while to import
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > give_up or process.poll() is not None:
                raise SystemExit(f"gunicorn did not start; see {config_path.parent / 'sts.log'}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(30)


def run_threads(count: int, work: Callable[[int], None]) -> float:
    threads = [threading.Thread(target=work, args=(i,)) for i in range(count)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


SUBMISSION = json.dumps({"node": "node1", "type": "shell", "spec": {"argv": ["/bin/echo", "bench"]}})


def warm_up(url: str, user: str, clients: int) -> None:
    """Before timing, as the peers open their connection pools first: ``4 * clients`` rounds of
    ``2 * clients`` concurrent authenticated reads (``GET /api/v1/jobs?limit=1``, which write
    nothing), so each gunicorn worker has its database connections open."""

    def reader(_index: int) -> None:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {user}"}, timeout=60) as http:
            for _ in range(4 * clients):
                assert http.get("/api/v1/jobs", params={"limit": 1}).status_code == 200

    run_threads(2 * clients, reader)


class JsonClient:
    """One keep-alive ``http.client`` connection with a bearer token: JSON in, JSON out."""

    def __init__(self, url: str, token: str) -> None:
        address = urlsplit(url)
        self.connection = http.client.HTTPConnection(address.hostname or "127.0.0.1", address.port, timeout=60)
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: object = None) -> tuple[int, Any]:
        """(status, parsed JSON body or None) of one request."""
        payload = None if body is None else json.dumps(body)
        self.connection.request(method, path, payload, self.headers)
        response = self.connection.getresponse()
        raw = response.read()
        return response.status, json.loads(raw) if raw else None

    def close(self) -> None:
        self.connection.close()


def submit_http(url: str, user: str, jobs: int, clients: int) -> float:
    """Seconds for ``clients`` clients to submit ``jobs`` jobs, one ``POST /api/v1/jobs`` each.
    Each client is one keep-alive connection of the standard library's ``http.client``: the
    clients share the STS's 2 cores, and httpx costs about 2 ms of CPU per request there (5x
    http.client), which is the bench's cost, not the STS's; the peers' clients are asyncpg."""
    address = urlsplit(url)
    headers = {"Authorization": f"Bearer {user}", "Content-Type": "application/json"}

    def submitter(index: int) -> None:
        connection = http.client.HTTPConnection(address.hostname or "127.0.0.1", address.port, timeout=60)
        try:
            for _ in range(index, jobs, clients):
                connection.request("POST", "/api/v1/jobs", SUBMISSION, headers)
                response = connection.getresponse()
                answer = response.read()
                assert response.status == 201, answer
        finally:
            connection.close()

    return run_threads(clients, submitter)


def measure_http(url: str, user: str, agent: str, jobs: int, clients: int) -> tuple[float, float]:
    warm_up(url, user, clients)
    submit_seconds = submit_http(url, user, jobs, clients)
    dispatch_seconds = dispatch_http(url, agent, jobs, clients)
    return jobs / submit_seconds, jobs / dispatch_seconds


def dispatch_http(url: str, agent: str, jobs: int, agents: int) -> float:
    """Seconds for ``agents`` agents of one node to lease, start and report ``jobs`` queued jobs,
    from their start to the last result recorded: the loop of agent_client/loop.py with
    ``max_jobs = BATCH`` and no-op jobs. With results to report, one lease carries them (and
    leases up to BATCH more, no wait); without, the agent waits on ``GET /api/v1/agent/wait``
    (the STS answers at once when the node has queued work) and then leases. Each leased batch
    is claimed (started) in one call."""
    done: list[str] = []
    finished: list[float] = []
    lock = threading.Lock()

    def agent_loop(_index: int) -> None:
        # One keep-alive http.client connection per agent, as the submitters have (httpx would
        # spend the STS's 2 shared cores on the bench's side; real agents run on their nodes).
        client = JsonClient(url, agent)
        try:
            results: list[dict[str, object]] = []
            while True:
                if not results:
                    with lock:
                        if len(done) >= jobs:
                            return
                    # As the real agent: nothing to report, so wait for work, holding no STS thread.
                    status, waited = client.call("GET", f"/api/v1/agent/wait?timeout={WAIT_SECONDS}")
                    assert status == 200, waited
                    if not waited["work"]:
                        continue
                body: dict[str, object] = {"max_jobs": BATCH, "wait": 0}
                if results:
                    body["results"] = results
                status, answer = client.call("POST", "/api/v1/agent/leases", body)
                assert status in (200, 204), answer
                if results:
                    reported = answer["outcomes"]
                    assert all("code" not in outcome for outcome in reported), reported
                    with lock:
                        done.extend(str(outcome["job_id"]) for outcome in reported)
                        if len(done) >= jobs:
                            finished.append(time.perf_counter())
                    results = []
                if status == 204 or not answer["leases"]:
                    continue
                jobs_leased = [lease["job"] for lease in answer["leases"]]
                claims = [{"job_id": job["id"], "attempt": job["attempt"]} for job in jobs_leased]
                status, claimed = client.call("POST", "/api/v1/agent/claims", {"claims": claims})
                assert status == 200, claimed
                started = [outcome["job_id"] for outcome in claimed["outcomes"] if "code" not in outcome]
                results = [{"job_id": job_id, "result": RESULT} for job_id in started]
        finally:
            client.close()

    started = time.perf_counter()
    run_threads(agents, agent_loop)  # the idle agents end their last wait (WAIT_SECONDS) after the finish
    assert len(done) == len(set(done)) == jobs, f"dispatched {len(done)} ({len(set(done))} distinct) of {jobs}"
    return finished[0] - started


def measure_raw(database_url: str, rows: int, clients: int) -> float:
    engine = make_engine(database_url)
    metadata = MetaData()
    table = Table(
        f"bench_raw_{uuid.uuid4().hex[:8]}",
        metadata,
        Column("id", String(36), primary_key=True),
        Column("state", String(16)),
        Column("body", Text),
    )
    metadata.create_all(engine)
    body = json.dumps({"argv": ["/bin/echo", "bench"], "pad": "x" * 600})

    def worker(index: int) -> None:
        for _ in range(index, rows, clients):
            row_id = str(uuid.uuid4())
            with engine.begin() as conn:
                conn.execute(table.insert().values(id=row_id, state="queued", body=body))
            with engine.begin() as conn:
                conn.execute(table.update().where(table.c.id == row_id).values(state="succeeded"))

    try:
        return rows / run_threads(clients, worker)
    finally:
        metadata.drop_all(engine)
        engine.dispose()


@contextmanager
def sqlite_file(folder: Path) -> Iterator[str]:
    yield f"sqlite:///{folder / 'bench.db'}"


def bench_backend(name: str, postgres: str | None, jobs: int, server: str = "asgi") -> dict[int, tuple[float, float]]:
    """One run of jobsts on ``postgres`` (or SQLite): clients -> (submit/s, dispatch jobs/s)."""
    figures = {}
    for clients in (1, 8):
        with tempfile.TemporaryDirectory() as folder_name:
            folder = Path(folder_name)
            with postgres_schema(postgres) if postgres else sqlite_file(folder) as url:
                figures[clients] = _run(name, folder, url, jobs, clients, server)
    return figures


def _run(name: str, folder: Path, url: str, jobs: int, clients: int, server: str) -> tuple[float, float]:
    sock = listening_socket()
    config_path = write_config(folder, url, port_of(sock))
    user, agent = prepare(config_path)
    with sock, gunicorn(config_path, sock, server) as base:
        submits, dispatched = measure_http(base, user, agent, jobs, clients)
    raw = measure_raw(url, jobs, clients)
    print(
        f"{name:10s} clients={clients}: submit {submits:7.1f}/s  lease+claim+result {dispatched:7.1f} jobs/s "
        f"raw insert+update {raw:7.1f}/s  ratios submit/raw {submits / raw:.2f}  jobs/raw {dispatched / raw:.2f}",
        flush=True,
    )
    return submits, dispatched


def peer_table(ours: list[dict[int, tuple[float, float]]], peers: list[list[QueueFigures]]) -> str:
    """Markdown: jobsts ÷ peer, per measure and concurrency, ratios taken within each run."""
    rows = []
    for position, first in enumerate(peers[0]):
        for label, index, attribute in (("submit", 0, "enqueue_per_s"), ("dispatch", 1, "dispatch_per_s")):
            for clients in (1, 8):
                mine = [run[clients][index] for run in ours]
                theirs = [getattr(run[position], attribute)[clients] for run in peers]
                rows.append(
                    (
                        f"{label}, {clients} client{'s' if clients > 1 else ''}",
                        Spread.of(mine).format(".0f"),
                        f"{first.peer}: {Spread.of(theirs).format('.0f')}",
                        paired_ratios(mine, theirs).format(".2f") + "x",
                    )
                )
    header = ["measure", "jobsts jobs/s", "peer jobs/s", f"jobsts ÷ peer, median (min-max) of {len(ours)} runs"]
    return markdown_table(header, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--wsgi", action="store_true", help="serve sts.wsgi (gthread) instead of the production ASGI stack"
    )
    parser.add_argument("--sqlite", action="store_true", help="also measure jobsts on SQLite (no peers there)")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("JOBSTS_TEST_DATABASE_URL"),
        help="PostgreSQL URL (a scratch schema is created and dropped); omit to skip",
    )
    args = parser.parse_args()
    server = "wsgi" if args.wsgi else "asgi"
    if args.sqlite:
        bench_backend("sqlite", None, args.jobs, server)
    if not args.postgres:
        return
    # procrastinate warns about an App built in ``__main__``; the imported module builds it.
    queues = importlib.import_module("bench.peers.queues")
    ours, peers = [], []
    for index in range(args.runs):
        ours.append(bench_backend("postgresql", args.postgres, args.jobs, server))
        run = queues.measure_queues(args.postgres, args.jobs, (1, 8))
        peers.append(run)
        for figures in run:
            print(f"run {index + 1}: {figures}", flush=True)
    print(peer_table(ours, peers))


if __name__ == "__main__":
    main()
