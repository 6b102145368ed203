"""Real processes for the end-to-end tests: the STS under gunicorn, agents as ``jobsts agent run``.

* ``jobsts(...)`` runs the installed console script as a subprocess, with its own
  ``XDG_CONFIG_HOME`` per identity (so ``jobsts login`` sessions never mix).
* ``StsServer`` writes an STS TOML file (realms on the harness slapd, or LDIF files), runs
  ``jobsts init`` and then ``gunicorn sts.wsgi:app`` with ``JOBSTS_CONFIG``, and offers small
  HTTP helpers (password login, submit, job view) for the scenarios.
* ``AgentNode`` is one target node: its own directory with ``node.key`` (from
  ``jobsts agent init``), ``agent.toml`` and a local authorization table filled with
  ``jobsts authz import``; ``run_once()`` is ``jobsts agent run --config ... --once``.
* ``Accounts`` names the OS accounts jobs run as: unique accounts made with ``useradd`` (and
  removed afterwards) when the tests run as root, else the current account (``self`` executor).
"""

from __future__ import annotations

import csv
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.loopback import listening_socket, port_of, socket_activation
from tests.os_accounts import account_tool
from tests.patience import STARTUP_SECONDS

JOBSTS = Path(sys.executable).parent / "jobsts"
GUNICORN = Path(sys.executable).parent / "gunicorn"
ID_COMMAND = shutil.which("id") or "/usr/bin/id"
TERMINAL = frozenset({"succeeded", "failed", "refused", "lost", "expired", "cancelled"})
IS_ROOT = os.geteuid() == 0
CLI_TIMEOUT = 120


class CliError(AssertionError):
    """A ``jobsts`` command exited with an unexpected status (stdout and stderr attached)."""


def jobsts(
    *args: str,
    home: Path | None = None,
    stdin: str | None = None,
    expect: int | None = 0,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``jobsts ARGS`` as a subprocess; ``expect=None`` accepts any exit status."""
    environ = {key: value for key, value in os.environ.items() if not key.startswith("JOBSTS_")}
    if home is not None:
        environ["XDG_CONFIG_HOME"] = str(home)
    environ.update(env or {})
    command = [str(JOBSTS), *args]
    done = subprocess.run(
        command,
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        env=environ,
        cwd=cwd,
        timeout=CLI_TIMEOUT,
        check=False,
    )
    if expect is not None and done.returncode != expect:
        raise CliError(
            f"jobsts {' '.join(args)} exited {done.returncode} (expected {expect})\n"
            f"stdout: {done.stdout[-3000:]}\nstderr: {done.stderr[-3000:]}"
        )
    return done


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML for {type(value).__name__}")


def toml_table(name: str, values: Mapping[str, Any], *, array: bool = False) -> list[str]:
    header = f"[[{name}]]" if array else f"[{name}]"
    return [header, *(f"{key} = {toml_value(value)}" for key, value in values.items()), ""]


def write_private(path: Path, text: str, mode: int = 0o600) -> None:
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)


@dataclass
class StsServer:
    """One STS: TOML file, SQLite database, master key, and gunicorn serving ``sts.wsgi:app``."""

    workdir: Path
    realm_tables: Sequence[Mapping[str, Any]]
    bootstrap_admins: Sequence[str] = ()
    database: str | None = None  # a SQLAlchemy URL; default: an SQLite file in ``workdir``
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    sock: socket.socket | None = None  # the listening socket, held from prepare() to close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "sts.toml"

    @property
    def database_url(self) -> str:
        return self.database or f"sqlite:///{self.workdir / 'jobsts.db'}"

    def write_config(self) -> None:
        lines = toml_table(
            "sts",
            {
                "base_url": self.base_url,
                "database_url": self.database_url,
                "master_key_file": "master.key",
                "bootstrap_admins": list(self.bootstrap_admins),
            },
        )
        for table in self.realm_tables:
            lines += toml_table("realms", {"name": table["name"]}, array=True)
            lines += toml_table("realms.registry", table["registry"])
        write_private(self.config_path, "\n".join(lines))

    def prepare(self) -> StsServer:
        """Write the configuration and run ``jobsts init`` (master key, schema, first keys)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.sock is None:
            self.sock = listening_socket()
        self.port = port_of(self.sock)
        self.write_config()
        jobsts("init", "--config", str(self.config_path))
        return self

    def start(self) -> StsServer:
        """Serve with gunicorn (``prepare()`` first) and wait until ``/readyz`` answers 200."""
        log = (self.workdir / "gunicorn.log").open("wb")
        # HOME: gunicorn >= 23 puts a control socket under $HOME; keep it in the work dir.
        environ = {**os.environ, "JOBSTS_CONFIG": str(self.config_path), "HOME": str(self.workdir)}
        assert self.sock is not None, "prepare() first"
        # Why socket activation: gunicorn serves the socket we hold since prepare(), so no other
        # process can take the port in between (a restart keeps it too).
        argv, fds = socket_activation(
            [
                str(GUNICORN),
                "--workers",
                "2",
                "--threads",
                "16",
                "--worker-class",
                "gthread",
                "--timeout",
                "60",
                "--graceful-timeout",
                "5",
                "sts.wsgi:app",
            ],
            self.sock,
        )
        try:
            self.process = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=environ,
                cwd=self.workdir,
                pass_fds=fds,
            )
        finally:
            log.close()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + STARTUP_SECONDS
        with httpx.Client(timeout=2) as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"gunicorn exited: {self.log_tail()}")
                try:
                    if http.get(f"{self.base_url}/readyz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        raise RuntimeError(f"the STS did not become ready: {self.log_tail()}")

    def log_tail(self) -> str:
        path = self.workdir / "gunicorn.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop(self) -> None:
        """Stop gunicorn and release the port (``prepare()`` again to serve anew)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    # --- HTTP helpers ------------------------------------------------------------------
    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=30)

    def token(self, username: str, realm: str = "jobmgr", password: str | None = None) -> str:
        """A password login (RFC 6749 §4.3); returns the access token."""
        with self.http() as http:
            response = http.post(
                f"/realms/{realm}/token",
                data={
                    "grant_type": "password",
                    "username": username,
                    "password": f"{username}-password" if password is None else password,
                },
            )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def submit(
        self,
        token: str,
        node: str,
        job_type: str,
        argv: Sequence[str] = (ID_COMMAND, "-un"),
        *,
        expect: int = 201,
        **extra: Any,
    ) -> dict[str, Any]:
        spec: dict[str, Any] = {"argv": list(argv)}
        for name in ("authgroup", "env", "cwd", "timeout"):
            if name in extra:
                spec[name] = extra.pop(name)
        body = {"node": node, "type": job_type, "spec": spec, **extra}
        with self.http() as http:
            response = http.post("/api/v1/jobs", json=body, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == expect, response.text
        document: dict[str, Any] = response.json()
        return document

    def job(self, token: str, job_id: str) -> dict[str, Any]:
        with self.http() as http:
            response = http.get(f"/api/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text
        document: dict[str, Any] = response.json()
        return document

    def cancel(self, token: str, job_id: str) -> dict[str, Any]:
        with self.http() as http:
            response = http.post(f"/api/v1/jobs/{job_id}/cancel", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text
        document: dict[str, Any] = response.json()
        return document

    def register_node(
        self,
        admin_token: str,
        node_id: str,
        realm: str,
        public_pem: Path,
        trusted: Sequence[str] = (),
        authgroups: Sequence[str] = (),
    ) -> None:
        """``POST /api/v1/nodes`` as a job-manager administrator (what ``jobsts node register`` sends)."""
        from cryptography.hazmat.primitives import serialization

        from realms.tokens.keys import public_jwk

        key = serialization.load_pem_public_key(public_pem.read_bytes())
        body = {
            "id": node_id,
            "realm": realm,
            "public_jwk": public_jwk(key, "ES256"),  # type: ignore[arg-type]
            "trusted_realms": list(trusted),
            "authgroups": list(authgroups),
        }
        with self.http() as http:
            response = http.post("/api/v1/nodes", json=body, headers={"Authorization": f"Bearer {admin_token}"})
        assert response.status_code == 201, response.text

    def update_node(self, admin_token: str, node_id: str, **changes: Any) -> None:
        with self.http() as http:
            response = http.patch(
                f"/api/v1/nodes/{node_id}", json=changes, headers={"Authorization": f"Bearer {admin_token}"}
            )
        assert response.status_code == 200, response.text


@dataclass
class AgentNode:
    """One target node with its own directory, key, configuration and authorization table."""

    node_id: str
    realm: str
    directory: Path
    sts: StsServer
    trusted: list[str] = field(default_factory=list)
    authgroups: list[str] = field(default_factory=list)
    job_types: dict[str, str] = field(default_factory=dict)
    rules: list[dict[str, Any]] = field(default_factory=list)
    fallback: str = "deny"

    @property
    def config_path(self) -> Path:
        return self.directory / "agent.toml"

    @property
    def table_url(self) -> str:
        return f"sqlite:///{self.directory / 'authz.sqlite'}"

    def init(self) -> AgentNode:
        """``jobsts agent init``: key pair (0600) and template; the template is then replaced."""
        jobsts(
            "agent",
            "init",
            "--node",
            self.node_id,
            "--realm",
            self.realm,
            "--sts",
            self.sts.base_url,
            "--dir",
            str(self.directory),
        )
        self.write_config()
        return self

    def write_config(self) -> None:
        agent = {
            "node_id": self.node_id,
            "realm": self.realm,
            "sts_url": self.sts.base_url,
            "key_file": "node.key",
            "state_dir": "state",
            "authz_table": "authz.sqlite",
            "executor": "setuid" if IS_ROOT else "self",
            "trusted_realms": self.trusted,
            "authgroups": self.authgroups,
            "poll_wait": 0,
        }
        lines = toml_table("agent", agent) + toml_table("job_types", self.job_types)
        lines += toml_table("mapping", {"fallback": self.fallback})
        for rule in self.rules:
            lines += toml_table("mapping.rules", rule, array=True)
        write_private(self.config_path, "\n".join(lines))

    def import_table(self, rows: Iterable[tuple[str, str, str, str]]) -> None:
        """``jobsts authz import`` of a CSV (access_id, role, effect, scope): all or nothing."""
        path = write_csv(self.directory / "import.csv", rows)
        jobsts("authz", "--table", self.table_url, "import", str(path))

    def run_once(self) -> subprocess.CompletedProcess[str]:
        """``jobsts agent run --once``: lease at most one job, decide, run or refuse, report."""
        return jobsts("agent", "run", "--config", str(self.config_path), "--once")

    def forget_keys(self) -> None:
        """Drop the cached JWKS, so the next run fetches the realms' key sets afresh."""
        shutil.rmtree(self.directory / "state" / "jwks", ignore_errors=True)


def write_csv(path: Path, rows: Iterable[Sequence[str]]) -> Path:
    """An authorization-table import file: header ``access_id,role,effect,scope``."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["access_id", "role", "effect", "scope"])
        writer.writerows(rows)
    return path


def run_agents(nodes: Sequence[AgentNode], rounds: int = 1) -> None:
    """Each node's agent handles up to ``rounds`` jobs; different nodes run in parallel."""
    for _ in range(rounds):
        environ = {key: value for key, value in os.environ.items() if not key.startswith("JOBSTS_")}
        running = [
            subprocess.Popen(
                [str(JOBSTS), "agent", "run", "--config", str(node.config_path), "--once"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                text=True,
                env=environ,
            )
            for node in nodes
        ]
        failures = []
        for node, process in zip(nodes, running, strict=True):
            _, err = process.communicate(timeout=CLI_TIMEOUT)
            if process.returncode != 0:
                failures.append(f"agent {node.node_id} exited {process.returncode}: {err[-2000:]}")
        assert not failures, "\n".join(failures)


@dataclass
class Accounts:
    """Local accounts that jobs run as: unique ``useradd`` accounts as root, else the current one."""

    names: dict[str, str] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)

    @classmethod
    def make(cls, keys: Sequence[str]) -> Accounts:
        accounts = cls()
        if not IS_ROOT:
            me = pwd.getpwuid(os.getuid()).pw_name
            accounts.names = dict.fromkeys(keys, me)
            return accounts
        tag = uuid.uuid4().hex[:5]
        try:
            for key in keys:
                name = f"e2e{tag}{key}"[:32]
                account_tool(["useradd", "--no-create-home", "--user-group", "--shell", "/bin/sh", name])
                accounts.created.append(name)
                accounts.names[key] = name
        except BaseException:
            accounts.remove()
            raise
        return accounts

    def __getitem__(self, key: str) -> str:
        return self.names[key]

    def remove(self) -> None:
        for name in self.created:
            account_tool(["userdel", name], check=False)
        self.created.clear()


def wait_terminal(sts: StsServer, token: str, job_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = sts.job(token, job_id)
        if job["state"] in TERMINAL or time.monotonic() > deadline:
            return job
        time.sleep(0.2)
