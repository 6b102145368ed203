"""A real STS served over HTTP for the fault tests: the app of a ``tests/jobs`` World on a
loopback port (so agents and subprocesses reach it), a node registered with a real key, and the
arguments of the test's own agent process (``agent_process``). Spawning is ``tests.processes``."""

from __future__ import annotations

import os
import pwd
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask
from sqlalchemy import update
from werkzeug.serving import BaseWSGIServer, make_server

from authz_tables.roles import Role
from realms.tokens.keys import public_jwk
from sts import create_app
from sts.config import JobSettings
from sts.jobs.models import JOBS
from tests.jobs.conftest import JOHN, World, migrate_database
from tests.sts.conftest import make_config, spy_on_registries

ROOT = Path(__file__).resolve().parents[2]
# The account fault-test jobs run as: nobody when root (setuid executor), else our own (self).
ACCOUNT = "nobody" if os.geteuid() == 0 else pwd.getpwuid(os.getuid()).pw_name


@dataclass
class Served:
    """The STS app of a World, served over HTTP on loopback, and a node with a real key."""

    world: World
    url: str
    key_file: Path
    marker: Path
    tmp_path: Path

    def submit(self) -> str:
        job = self.world.submit("john", node="fnode", spec={"argv": ["/bin/sh", "-c", f"id -un >> {self.marker}"]})
        return str(job["id"])

    def state(self, job_id: str) -> dict[str, Any]:
        response = self.world.client.get(f"/api/v1/jobs/{job_id}", headers=self.world.as_user("john"))
        assert response.status_code == 200, response.get_json()
        body: dict[str, Any] = response.get_json()
        return body

    def runs(self) -> list[str]:
        return self.marker.read_text().split() if self.marker.exists() else []

    def expire_lease(self, job_id: str) -> None:
        """Move the job's lease end into the past: what the STS sees once the lease ran out, without
        a test waiting for a short lease (a short lease also runs out under load before the agent
        has started the job, which is another scenario than the one the test sets up)."""
        with self.world.services.session() as session:
            session.execute(update(JOBS).where(JOBS.c.id == job_id).values(lease_expires_at=0))


def make_world(tmp_path: Path, database_url: str, base_url: str, lease_seconds: int) -> World:
    migrate_database(database_url)
    jobs = JobSettings(lease_seconds=lease_seconds, reap_interval=0.2, poll_interval=0.05)
    app = create_app(make_config(tmp_path, database_url, base_url=base_url, jobs=jobs))
    app.config.update(TESTING=True)
    spy_on_registries(app)
    world = World(app, app.test_client(), app.extensions["jobsts"])
    world.grant(JOHN, Role.OPERATOR)
    return world


def register_node(world: World, tmp_path: Path) -> Path:
    private = ec.generate_private_key(ec.SECP256R1())
    key_file = tmp_path / "node.key"
    key_file.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_file.chmod(0o600)
    response = world.client.post(
        "/api/v1/nodes",
        headers=world.as_user("admin"),
        json={
            "id": "fnode",
            "realm": "jobmgr",
            "authgroups": [],
            "public_jwk": public_jwk(private.public_key(), "ES256"),
            "trusted_realms": [],
        },
    )
    assert response.status_code == 201, response.get_json()
    return key_file


def serve(app: Flask, sock: socket.socket) -> tuple[BaseWSGIServer, threading.Thread]:
    """Serve ``app`` on ``sock``, a listening socket the caller holds (tests/loopback.py)."""
    server = make_server("127.0.0.1", 0, app, threaded=True, fd=sock.fileno())
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return server, thread


def agent_args(served: Served, state: Path) -> list[str]:
    return [
        "--sts",
        served.url,
        "--node",
        "fnode",
        "--key",
        str(served.key_file),
        "--state",
        str(state),
        "--account",
        ACCOUNT,
    ]
