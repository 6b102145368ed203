"""Real STS processes for the production tests: ``jobsts serve --production`` (gunicorn) on a
loopback port, stderr captured to a file, and an HTTP client that acts as users and agents."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt

from tests.ldap_harness import ldif_realm_table
from tests.loopback import listening_socket, port_of, socket_activation
from tests.patience import STARTUP_SECONDS
from tests.sts.conftest import BASE_URL, node_keypair, write_sts_toml

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def write_sts_config(
    workdir: Path, database_url: str, tables: list[dict[str, Any]], sts: dict[str, Any] | None = None
) -> Path:
    """An STS TOML file over ``tables`` (``[[realms]]`` tables, e.g. ``slapd.realm_table(name)``) and
    ``sts``, more ``[sts]`` settings; the per-address throttle is looser than the unit tests', for
    the many logins from one loopback address."""
    return write_sts_toml(workdir, database_url, tables, per_address_failure_factor=50, sts=sts)


def raw_exchange(port: int, request: bytes, timeout: float = 30) -> bytes:
    """Connect to ``port``, send ``request`` (if any) in one write, and read until the server
    closes; what it answered. ``timeout`` only guards against a hang.

    Why one write: a server that refuses a request and closes while some of it is unread resets
    the connection, and the answer is lost; the request must be in its hands when it decides."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        if request:
            sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def status_and_body(answer: bytes) -> tuple[int, bytes]:
    """The status code and the body of a raw HTTP/1.1 answer."""
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any


class Actor:
    """Acts as users, administrators and agents over HTTP (``post`` is the transport)."""

    def post(self, path: str, **kwargs: Any) -> Reply:
        raise NotImplementedError

    def login(self, username: str, password: str | None = None, realm: str = "jobmgr") -> Reply:
        return self.post(
            f"/realms/{realm}/token",
            data={
                "grant_type": "password",
                "username": username,
                "password": f"{username}-password" if password is None else password,
            },
        )

    def token(self, username: str, password: str | None = None) -> str:
        response = self.login(username, password)
        assert response.status == 200, response.body
        return str(response.body["access_token"])

    def register_node(self, admin_token: str, node_id: str, trusted: tuple[str, ...] = ()) -> Any:
        private, jwk = node_keypair()
        response = self.post(
            "/api/v1/nodes",
            headers=bearer(admin_token),
            json={
                "id": node_id,
                "realm": "jobmgr",
                "authgroups": ["batch"],
                "public_jwk": jwk,
                "trusted_realms": list(trusted),
            },
        )
        assert response.status == 201, response.body
        return private

    def enrolled_agent(self, admin_token: str, node_id: str) -> str:
        """Register ``node_id`` with a fresh key and return an agent token for it."""
        return self.agent_token(node_id, self.register_node(admin_token, node_id))

    def agent_token(self, node_id: str, private: Any, realm: str = "jobmgr") -> str:
        now = int(time.time())
        signed = jwt.encode(
            {
                "iss": node_id,
                "sub": node_id,
                "aud": f"{BASE_URL}/realms/{realm}/token",
                "jti": str(uuid.uuid4()),
                "iat": now,
                "exp": now + 120,
            },
            private,
            algorithm="ES256",
        )
        response = self.post(
            f"/realms/{realm}/token",
            data={
                "grant_type": "client_credentials",
                "client_id": node_id,
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": signed,
            },
        )
        assert response.status == 200, response.body
        return str(response.body["access_token"])

    def submit(self, token: str, node_id: str, argv: tuple[str, ...] = ("/bin/true",)) -> str:
        response = self.post(
            "/api/v1/jobs",
            headers=bearer(token),
            json={"node": node_id, "type": "command", "spec": {"argv": list(argv)}},
        )
        assert response.status == 201, response.body
        return str(response.body["id"])

    def lease(self, agent_token: str) -> dict[str, Any] | None:
        response = self.post("/api/v1/agent/lease", headers=bearer(agent_token), json={"wait": 0})
        if response.status == 204:
            return None
        assert response.status == 200, response.body
        body: dict[str, Any] = response.body
        return body

    def finish(self, agent_token: str, job: dict[str, Any], outcome: str = "succeeded") -> None:
        job_id = job["job"]["id"]
        if outcome != "refused":
            started = self.post(
                f"/api/v1/agent/jobs/{job_id}/start",
                headers=bearer(agent_token),
                json={"attempt": job["job"]["attempt"]},
            )
            assert started.status == 200, started.body
        result = self.post(
            f"/api/v1/agent/jobs/{job_id}/result",
            headers=bearer(agent_token),
            json={
                "outcome": outcome,
                "exit_code": 0 if outcome == "succeeded" else None,
                "stdout_tail": "",
                "stderr_tail": "",
                "code": "authz.denied" if outcome == "refused" else None,
                "reason": None,
                "account": None,
                "trace": [],
            },
        )
        assert result.status == 200, result.body

    def full_cycle(self, canary_password: str, node_id: str = "n1") -> list[str]:
        """Login (one failing with ``canary_password``) -> register a node -> agent token ->
        submit (once with canary credentials) -> lease -> start -> result, and a refusal.
        Returns every token and assertion that went over the wire."""
        secrets: list[str] = []
        failed = self.login("john", canary_password)
        assert failed.status == 400 and failed.body["code"] == "login.failed", failed.body
        admin = self.login("admin")
        assert admin.status == 200, admin.body
        secrets += [admin.body["access_token"], admin.body["refresh_token"], self.token("john")]
        agent = self.enrolled_agent(secrets[0], node_id)
        secrets.append(agent)
        refused = self.post(
            "/api/v1/jobs",
            headers=bearer(secrets[0]),
            json={
                "node": node_id,
                "type": "command",
                "spec": {"argv": ["/bin/true"]},
                "credentials": {"username": "john", "password": canary_password},
            },
        )
        assert refused.status == 401, refused.body
        for outcome in ("succeeded", "refused"):
            self.submit(secrets[0], node_id)
            leased = self.lease(agent)
            assert leased is not None
            secrets.append(leased["job_token"])
            self.finish(agent, leased, outcome)
        return secrets


class FlaskActor(Actor):
    """The same actions through a Flask test client (in-process)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def post(self, path: str, **kwargs: Any) -> Reply:
        response = self.client.post(path, **kwargs)
        return Reply(response.status_code, response.get_json(silent=True))


@contextmanager
def sqlite_sts(
    workdir: Path, sts: dict[str, Any] | None = None, env: dict[str, str] | None = None
) -> Iterator[StsProcess]:
    """One ready ``jobsts serve --production`` (one worker) on SQLite with the jobmgr LDIF realm."""
    config = write_sts_config(workdir, f"sqlite:///{workdir / 'sts.db'}", [ldif_realm_table("jobmgr")], sts)
    server = StsProcess(config, workdir, 1, env=env)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


class StsProcess(Actor):
    """One ``jobsts serve --production`` process tree (gunicorn master and its workers); with
    ``wait_listener``, also an agent-wait listener (``--wait-port``) on ``wait_url``."""

    def __init__(
        self,
        config: Path,
        workdir: Path,
        workers: int = 1,
        env: dict[str, str] | None = None,
        metrics_dir: Path | None = None,
        wait_listener: bool = False,
    ) -> None:
        # Why socket activation: gunicorn serves the sockets we hold, so no other process can
        # take a port between its choice and the bind.
        self.sock = listening_socket()
        self.port = port_of(self.sock)
        self.url = f"http://127.0.0.1:{self.port}"
        self.wait_sock = listening_socket() if wait_listener else None
        self.wait_url = self.url if self.wait_sock is None else f"http://127.0.0.1:{port_of(self.wait_sock)}"
        waits = [] if self.wait_sock is None else ["--wait-port", str(port_of(self.wait_sock))]
        self.stderr_path = workdir / f"sts-{self.port}.stderr"
        environment = {**os.environ, "JOBSTS_GUNICORN_THREADS": "4", **(env or {})}
        environment.pop("PROMETHEUS_MULTIPROC_DIR", None)
        if metrics_dir is not None:
            environment["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        argv, fds = socket_activation(
            [
                sys.executable,
                "-c",
                "from realms.console import main; main()",
                "serve",
                "--production",
                "--config",
                str(config),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                str(workers),
                *waits,
            ],
            *([self.sock] if self.wait_sock is None else [self.sock, self.wait_sock]),
        )
        with self.stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen(
                argv, stdout=subprocess.DEVNULL, stderr=stderr, env=environment, cwd=workdir, pass_fds=fds
            )
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def wait_ready(self, timeout: float = STARTUP_SECONDS) -> None:
        give_up = time.monotonic() + timeout
        while time.monotonic() < give_up:
            if self.process.poll() is not None:
                raise AssertionError(f"STS exited ({self.process.returncode}): {self.stderr()[-2000:]}")
            try:
                if self.client.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"STS on {self.url} did not answer: {self.stderr()[-2000:]}")

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def post(self, path: str, **kwargs: Any) -> Reply:
        response = self.client.post(path, **kwargs)
        return Reply(response.status_code, response.json() if response.content else None)

    def stop(self) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.sock.close()
        if self.wait_sock is not None:
            self.wait_sock.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextmanager
def running(
    config: Path, workdir: Path, count: int = 1, workers: int = 1, metrics_dir: Path | None = None
) -> Iterator[list[StsProcess]]:
    """``count`` STS processes on one configuration (so one database), all ready."""
    servers: list[StsProcess] = []
    try:
        for _ in range(count):
            servers.append(StsProcess(config, workdir, workers, metrics_dir=metrics_dir))
        for server in servers:
            server.wait_ready()
        yield servers
    finally:
        for server in servers:
            server.stop()
