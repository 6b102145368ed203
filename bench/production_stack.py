"""The production stack of the benchmark suite (bench/run.py) on loopback: configuration,
seed data, ``jobsts serve --production`` processes, and a deep queue bulk-inserted in SQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlalchemy import insert, text  # noqa: E402

from authz_tables.roles import Role  # noqa: E402
from bench.node_key import CNF, NODE_JWK  # noqa: E402
from realms.identity.access_id import AccessId  # noqa: E402
from realms.tokens.keys import public_jwk  # noqa: E402
from realms.wire.digest import canonical_json, job_digest  # noqa: E402
from sts.config import load_sts_config  # noqa: E402
from sts.jobs.models import Job  # noqa: E402
from sts.keys.master_key import MasterKey, create_key_file  # noqa: E402
from sts.keys.material import generate_private_key  # noqa: E402
from sts.nodes.models import Node  # noqa: E402
from sts.services import build_services  # noqa: E402
from tests.ldap_harness import SlapdServer  # noqa: E402
from tests.loopback import listening_socket, port_of, socket_activation  # noqa: E402

BASE_URL = "https://sts.bench"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
JOHN = AccessId.user("jobmgr", "uid=john,ou=people,dc=jobmgr,dc=example")
SPEC = {"argv": ["/bin/echo", "bench"]}


@dataclass
class Stack:
    workdir: Path
    config: Path
    database_url: str
    slapd: SlapdServer
    workers: int
    user_token: str = ""
    agent_tokens: dict[str, str] = field(default_factory=dict)
    grant_key: Any = None


def write_config(workdir: Path, database_url: str, slapd: SlapdServer) -> Path:
    create_key_file(workdir / "master.key")
    registry = slapd.realm_table("jobmgr", pool_size=8)["registry"]
    lines = [
        "[sts]",
        f'base_url = "{BASE_URL}"',
        f"database_url = {json.dumps(database_url)}",
        'master_key_file = "master.key"',
        f'audience = "{BASE_URL}/api"',
        "",
        "[[realms]]",
        'name = "jobmgr"',
        "[realms.registry]",
    ]
    lines += [f"{key} = {json.dumps(value)}" for key, value in registry.items()]
    lines += ["[realms.token]", "access_token_ttl = 3600", "agent_token_ttl = 3600"]
    path = workdir / "sts.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def prepare(stack: Stack, nodes: list[str]) -> None:
    """Migrate; john is operator; nodes registered (one with a real key for grants); tokens."""
    config = load_sts_config(stack.config, environ={})
    services = build_services(config, migrate=True)
    try:
        services.authz.grant(JOHN, Role.OPERATOR, changed_by="bench")
        stack.grant_key = generate_private_key("ES256")
        with services.db.session() as session:
            for node_id in [*nodes, "grant-node"]:
                jwk = public_jwk(stack.grant_key.public_key(), "ES256") if node_id == "grant-node" else NODE_JWK
                session.add(
                    Node(
                        id=node_id,
                        realm="jobmgr",
                        authgroups=[],
                        public_jwk=jwk,
                        trusted_realms=[],
                        created_at=0,
                        created_by="bench",
                        updated_at=0,
                        updated_by="bench",
                    )
                )
        now = int(time.time())
        common = {"iss": config.issuer("jobmgr"), "aud": config.audience, "iat": now, "nbf": now, "exp": now + 3000}
        stack.user_token = services.keys.sign(
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
        for node_id in nodes:
            stack.agent_tokens[node_id] = services.keys.sign(
                "jobmgr", {**common, "sub": f"node:{node_id}", "jti": str(uuid.uuid4()), "cnf": CNF}, "agent+jwt"
            )
    finally:
        services.close()


@contextmanager
def sts_process(stack: Stack) -> Iterator[str]:
    """``jobsts serve --production`` on a loopback socket we hold (its log goes to a file)."""
    sock = listening_socket()
    port = port_of(sock)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JOBSTS_GUNICORN_LOGLEVEL": "warning"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    # gunicorn takes the socket by systemd socket activation: no window for another to take the port.
    argv, fds = socket_activation(
        [
            sys.executable,
            "-c",
            "from realms.console import main; main()",
            "serve",
            "--production",
            "--config",
            str(stack.config),
            "--port",
            str(port),
            "--workers",
            str(stack.workers),
        ],
        sock,
    )
    with (stack.workdir / f"sts-{port}.log").open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=log, env=env, cwd=stack.workdir, pass_fds=fds)
    url = f"http://127.0.0.1:{port}"
    try:
        give_up = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > give_up or process.poll() is not None:
                raise SystemExit(f"the STS did not start; see {stack.workdir}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(30)
        sock.close()


def bulk_queue(stack: Stack, node: str, count: int) -> None:
    """Insert ``count`` queued jobs for ``node`` straight into the table (each with a valid
    encrypted token blob, bound to its id as the STS does), in batches."""
    config = load_sts_config(stack.config, environ={})
    cipher = MasterKey.load(config)
    services = build_services(config, migrate=False)
    now = int(time.time())
    try:
        rows = []
        for index in range(count):
            job_id = str(uuid.uuid4())
            rows.append(
                {
                    "id": job_id,
                    "submitter": str(JOHN),
                    "submitter_realm": "jobmgr",
                    "subject": str(JOHN),
                    "realm": "jobmgr",
                    "node_id": node,
                    "type": "shell",
                    "spec": canonical_json(SPEC).decode(),
                    "job_digest": job_digest(job_id, node, "shell", SPEC),
                    "not_before": now - 10 - index % 1000,
                    "deadline": now + 86400,
                    "state": "queued",
                    "attempts": 0,
                    "created_at": now - 10.0,
                    "updated_at": now - 10.0,
                    "token_ciphertext": cipher.encrypt(b"bench.job.token", job_id.encode()),
                    "token_jti": str(uuid.uuid4()),
                    "token_exp": now + 86400,
                }
            )
            if len(rows) == 5000 or index == count - 1:
                with services.db.session() as session:
                    session.execute(insert(Job), rows)
                rows = []
        with services.db.engine.connect() as conn:
            conn.execute(text("ANALYZE sts_jobs"))
            conn.commit()
    finally:
        services.close()


def lease_plan(stack: Stack, node: str) -> str:
    """PostgreSQL's plan for the lease query: the index it uses (or a scan)."""
    from sqlalchemy import select

    from sts.db import make_engine

    engine = make_engine(stack.database_url)
    try:
        now = int(time.time())
        query = (
            select(Job)
            .where(Job.node_id == node, Job.state == "queued", Job.not_before <= now, Job.deadline > now)
            .order_by(Job.not_before, Job.created_at)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        compiled = query.compile(engine, compile_kwargs={"literal_binds": True})
        with engine.connect() as conn:
            plan = [row[0] for row in conn.execute(text(f"EXPLAIN {compiled}"))]
        return " / ".join(line.strip() for line in plan if "Scan" in line)[:160]
    finally:
        engine.dispose()
