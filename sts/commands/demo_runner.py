"""The running ``jobsts demo``: the STS in a thread, the agents as processes, and one step of the story.

``Demo`` writes the realms, the STS and agent configurations into a temporary directory,
serves the STS on a loopback port (Werkzeug, in a thread), registers nodes and starts their
agents as separate ``jobsts agent run`` processes, and plays one ``Step`` at a time over HTTP.
The story itself, and the command, are in ``demo.py``.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import httpx

from sts.commands.demo_files import SUFFIXES, agent_toml, local_account, realm_ldif, sts_toml
from sts.commands.demo_ssh import DemoSshHost

ID_COMMAND = shutil.which("id") or "/usr/bin/id"
JOHN = "user:jobmgr/uid=john,ou=people,dc=jobmgr,dc=example"
TERMINAL = {"succeeded", "failed", "refused", "lost", "expired", "cancelled"}
Say = Callable[[str], None]


@dataclass
class Step:
    """One job of the story and the outcome the seed predicts for it."""

    title: str
    user: str
    node: str
    expect: str  # a final state, or "rejected" for a refusal at submit
    code: str | None = None
    body: dict[str, Any] | None = None


class Demo:
    """The running demo: STS thread, agent processes, HTTP client, and the story's bookkeeping."""

    def __init__(self, workdir: Path, port: int, say: Say) -> None:
        self.workdir, self.port, self.say = workdir, port, say
        self.base_url = f"http://127.0.0.1:{port}"
        self.http = httpx.Client(base_url=self.base_url, timeout=30)
        self.agents: dict[str, subprocess.Popen[bytes]] = {}
        self.server: Any = None
        self.thread: threading.Thread | None = None
        self.account, self.executor = local_account()
        self.admin = ""  # the administrator's access token, once logged in
        self.surprises = 0
        self.remote_hosts: list[DemoSshHost] = []

    # --- setup ---------------------------------------------------------------------------
    def start(self) -> None:
        from werkzeug.serving import make_server

        from sts.app import create_app
        from sts.keys.master_key import create_key_file

        (self.workdir / "realms").mkdir()
        for realm in SUFFIXES:
            (self.workdir / "realms" / f"{realm}.ldif").write_text(realm_ldif(realm), encoding="utf-8")
        config = self.workdir / "sts.toml"
        config.write_text(sts_toml(self.base_url), encoding="utf-8")
        create_key_file(self.workdir / "master.key")
        app = create_app(config)  # migrates the SQLite database and makes each realm's first key
        services = app.extensions["jobsts"]
        self._grant_job_manager_roles(services.authz)
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        try:
            self.server = make_server("127.0.0.1", self.port, app, threaded=True)
        except OSError as exc:
            services.close()
            raise click.ClickException(f"demo: cannot listen on 127.0.0.1:{self.port}: {exc.strerror}") from None
        self.thread = threading.Thread(target=self.server.serve_forever, name="jobsts-demo-sts", daemon=True)
        self.thread.start()
        self.admin = self.login("admin")
        self.add_node("node1", "jobmgr", [(JOHN, "operator")])
        self.add_node("dmgr", "cellB", [("user:cellB/uid=john,ou=people,dc=cellb,dc=example", "operator")])

    @staticmethod
    def _grant_job_manager_roles(table: Any) -> None:
        from authz_tables.roles import Role
        from realms.identity.access_id import AccessId

        operators = AccessId.parse("group:jobmgr/cn=operators,ou=groups,dc=jobmgr,dc=example")
        table.grant(operators, Role.OPERATOR, changed_by="jobsts demo")

    def add_node(self, node_id: str, realm: str, grants: list[tuple[str, str]]) -> None:
        """What an admin does for a new node: key pair, agent.toml, local table, registration, start."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        from realms.tokens.keys import public_jwk

        directory = self.workdir / "agents" / node_id
        directory.mkdir(mode=0o700, parents=True)
        # Why: the agent refuses files or directories that others may write (sshd's StrictModes);
        # set the modes explicitly so a permissive umask (002) cannot stop the demo.
        for path in (directory.parent, directory):
            path.chmod(0o700)
        key = ec.generate_private_key(ec.SECP256R1())
        fd = os.open(directory / "node.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(
                key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
            )
        self.write_agent_config(node_id, realm, [])
        self.grant(node_id, grants)
        self.api(
            "POST",
            "/api/v1/nodes",
            {"id": node_id, "realm": realm, "public_jwk": public_jwk(key.public_key(), "ES256")},
        )
        self.start_agent(node_id)

    def write_agent_config(self, node_id: str, realm: str, trusted: list[str]) -> None:
        path = self.workdir / "agents" / node_id / "agent.toml"
        path.write_text(
            agent_toml(node_id, realm, self.base_url, trusted, self.account, self.executor), encoding="utf-8"
        )
        path.chmod(0o600)

    def grant(self, node_id: str, grants: list[tuple[str, str]], scope: str = "*") -> None:
        from authz_tables.entries import parse_scope
        from authz_tables.roles import parse_role
        from authz_tables.store import AuthzTable
        from realms.identity.access_id import AccessId

        url = f"sqlite:///{self.workdir / 'agents' / node_id / 'authz.sqlite'}"
        with AuthzTable(url, upgrade=True) as table:
            for access_id, role in grants:
                table.grant(AccessId.parse(access_id), parse_role(role), parse_scope(scope), changed_by="jobsts demo")
        (self.workdir / "agents" / node_id / "authz.sqlite").chmod(0o600)

    def jobsts(self, *args: str, stdin: str = "") -> None:
        """Run a ``jobsts`` command as a separate process (the demo never imports the agent)."""
        command = [sys.executable, "-c", "from realms.console import main; main()", *args]
        done = subprocess.run(command, input=stdin, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise click.ClickException(f"demo: jobsts {' '.join(args[:3])} failed: {done.stdout}{done.stderr}"[:500])

    def start_agent(self, node_id: str) -> None:
        directory = self.workdir / "agents" / node_id
        with (directory / "agent.log").open("ab") as log:
            self.agents[node_id] = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "from realms.console import main; main()",
                    "agent",
                    "run",
                    "--config",
                    str(directory / "agent.toml"),
                ],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                cwd=directory,
            )

    def stop_agent(self, node_id: str) -> None:
        process = self.agents.pop(node_id, None)
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def close(self) -> None:
        for node_id in list(self.agents):
            self.stop_agent(node_id)
        self.http.close()
        for host in self.remote_hosts:
            host.close()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server.app.extensions["jobsts"].close()

    # --- HTTP ----------------------------------------------------------------------------
    def login(self, username: str, realm: str = "jobmgr") -> str:
        response = self.http.post(
            f"/realms/{realm}/token",
            data={"grant_type": "password", "username": username, "password": f"{username}-password"},
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    def api(self, method: str, path: str, body: dict[str, Any] | None = None, token: str | None = None) -> Any:
        response = self.http.request(
            method, path, json=body, headers={"Authorization": f"Bearer {token or self.admin}"}
        )
        if not response.is_success:
            raise click.ClickException(f"demo: {method} {path} failed: {response.status_code} {response.text[:300]}")
        return response.json() if response.content else None

    def wait(self, token: str, job_id: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job: dict[str, Any] = self.api("GET", f"/api/v1/jobs/{job_id}", token=token)
            if job["state"] in TERMINAL or time.monotonic() > deadline:
                return job
            self.check_agents()
            time.sleep(0.2)

    def check_agents(self) -> None:
        """An agent that stopped (say, refusing unsafe file modes) ends the demo with its last log line."""
        for node_id, process in self.agents.items():
            if process.poll() is not None:
                log = self.workdir / "agents" / node_id / "agent.log"
                lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines() if log.exists() else []
                last = lines[-1] if lines else "no output"
                raise click.ClickException(f"demo: the agent of {node_id} stopped (exit {process.returncode}): {last}")

    # --- the story -------------------------------------------------------------------------
    def play(self, number: int, step: Step) -> dict[str, Any] | None:
        token = self.login(step.user)
        self.say(f"{number}. {step.title}")
        body = {"node": step.node, "type": "run", "spec": {"argv": [ID_COMMAND, "-un"]}, **(step.body or {})}
        shown = " with a cellB password" if "credentials" in body else " (no password)"
        self.say(f"   {step.user} (jobmgr) submits `id -un` to {step.node}{shown}")
        response = self.http.post("/api/v1/jobs", json=body, headers={"Authorization": f"Bearer {token}"})
        if not response.is_success:
            problem = response.json()
            code, detail = problem.get("code"), problem.get("detail")
            self.say(f"   -> rejected at submit ({response.status_code}): {code}: {detail}")
            self.check(step, "rejected", code)
            return None
        job: dict[str, Any] = response.json()
        if step.expect == "cancelled":
            job = self.api("POST", f"/api/v1/jobs/{job['id']}/cancel", token=token)
            self.say("   ... and cancels it while it is queued")
        job = self.wait(token, job["id"])
        result = job.get("result") or {}
        if job["state"] in ("succeeded", "failed"):
            output = result.get("stdout_tail", "").strip()
            self.say(
                f"   -> {job['state']} on {job['node']}: ran as {result.get('account')} for {job['subject']}; "
                f"output: {output!r}"
            )
        elif job["state"] == "refused":
            self.say(f"   -> refused by the {job['node']} agent: {job['code']}: {result.get('reason')}")
        else:
            never = "never leased, never ran" if job.get("leased_at") is None else "leased"
            self.say(f"   -> {job['state']} ({never})")
        self.check(step, job["state"], job.get("code"))
        return job

    def check(self, step: Step, state: str, code: str | None) -> None:
        if state != step.expect or (step.code is not None and code != step.code):
            self.surprises += 1
            self.say(f"   !! expected {step.expect} {step.code or ''}".rstrip())
