"""``jobsts demo``: the whole system on loopback, with no servers to install.

It writes two LDIF realms (``jobmgr``, the job manager's registry, and ``cellB``, another
registry), an STS configuration on SQLite and two agent configurations into a temporary
directory; serves the STS on a loopback port (Werkzeug, in a thread); starts the two agents
as separate ``jobsts agent run`` processes; then submits jobs over HTTP that walk through the
seed's topologies (same registry, different registries, trusted realms and imported access
IDs, credentials for the node's realm, cancel before dispatch, and, when this machine can run
sshd as root, a job on a remote host over SSH with a credential key) and prints what happened.
Jobs run through the ``self`` executor, or as ``nobody`` through ``setuid`` when run as root.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import click
import httpx

from sts.commands.demo_files import SUFFIXES, agent_toml, local_account, realm_ldif, sts_toml
from sts.commands.demo_ssh import DemoSshHost, unavailable_reason

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

    def add_remote_host(self, host: DemoSshHost) -> None:
        """The admin's steps for a remote host: pin its key, store the login, grant the key to John."""
        directory = self.workdir / "agents" / "node1"
        self.say(f"   admin: node1 pins web1's host key; `jobsts agent credentials add web1-demo --user {host.user}`")
        self.say("   stores the login (password on stdin); John is granted operator on scope credential:web1-demo")
        self.stop_agent("node1")
        with (directory / "agent.toml").open("a", encoding="utf-8") as config:
            config.write(host.agent_toml("web1"))
        self.jobsts(
            "agent", "credentials", "add", "web1-demo", "--config", str(directory / "agent.toml"),
            "--user", host.user, "--password-stdin", stdin=f"{host.password}\n",
        )  # fmt: skip
        self.grant("node1", [(JOHN, "operator")], scope="credential:web1-demo")
        self.start_agent("node1")

    def remote_story(self, number: int) -> None:
        """A job on a remote host over SSH with a credential key, when this machine can run sshd."""
        title = "John's job runs on remote host web1 over SSH, logging in with credential key web1-demo."
        reason = unavailable_reason()
        if reason is not None:
            self.say(f"{number}. {title}")
            self.say(f"   -> skipped: {reason}")
            return
        host = DemoSshHost(self.workdir / "sshd")
        self.remote_hosts.append(host)
        self.add_remote_host(host)
        spec = {"argv": [ID_COMMAND, "-un"], "remote_host": "web1", "credential": "web1-demo"}
        self.play(number, Step(title, "john", "node1", "succeeded", body={"spec": spec}))

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

    def trust_and_import(self) -> None:
        """The admin's steps for a node of another registry: trust the realm, import the access ID."""
        john = self.api("GET", "/api/v1/access-ids/jobmgr/john")["access_id"]
        self.say("   admin: dmgr now trusts realm jobmgr (at the STS and in the agent's agent.toml), and")
        self.say(f"   imports John's exported access ID {john} into dmgr's table as administrator")
        self.api("PATCH", "/api/v1/nodes/dmgr", {"trusted_realms": ["jobmgr"]})
        self.stop_agent("dmgr")
        self.write_agent_config("dmgr", "cellB", ["jobmgr"])
        self.grant("dmgr", [(john, "administrator")])
        self.start_agent("dmgr")

    def story(self) -> None:
        cellb = {"credentials": {"username": "john", "password": "john-password"}}
        later = {"not_before": int(time.time()) + 3600}
        self.say("Same registry: node1 shares the job manager's directory (realm jobmgr).")
        self.play(
            1, Step("John is an operator on node1: his job runs, without a password.", "john", "node1", "succeeded")
        )
        self.play(2, Step("user2 has no role on node1: refused.", "user2", "node1", "refused", "authz.denied"))
        self.say("")
        self.say("Different registries: dmgr is in realm cellB, with its own directory (its john is someone else).")
        self.play(
            3,
            Step(
                "dmgr does not trust realm jobmgr: the STS refuses at once.",
                "john",
                "dmgr",
                "rejected",
                "realm.untrusted",
            ),
        )
        self.play(
            4, Step("With cellB credentials the job runs as cellB's john.", "john", "dmgr", "succeeded", body=cellb)
        )
        self.trust_and_import()
        self.play(
            5, Step("Trusted realm + imported access ID: John runs without a password.", "john", "dmgr", "succeeded")
        )
        self.play(
            6, Step("user1 was never imported into dmgr's table: refused.", "user1", "dmgr", "refused", "authz.denied")
        )
        self.say("")
        self.say("Revocation reaches the queue.")
        self.play(
            7, Step("A job for later, cancelled while queued, never runs.", "john", "node1", "cancelled", body=later)
        )
        self.say("")
        self.say("Remote hosts: node1's agent is the gateway to web1, which runs no agent.")
        self.remote_story(8)


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for_signal() -> None:
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    stop.wait()


@click.command()
@click.option("--keep", is_flag=True, help="Leave the STS and agents running (Ctrl-C stops and cleans up).")
@click.option("--port", type=int, default=0, help="STS port on 127.0.0.1 (default: a free one).")
@click.pass_context
def demo(ctx: click.Context, keep: bool, port: int) -> None:
    """Run an STS and two agents on loopback and walk through the trust scenarios."""
    workdir = Path(tempfile.mkdtemp(prefix="jobsts-demo-"))
    runner = Demo(workdir, port or _free_port(), click.echo)
    try:
        runner.start()
        click.echo(
            f"jobsts demo: STS on {runner.base_url} (SQLite, LDIF realms jobmgr and cellB); agents node1 "
            f"(jobmgr) and dmgr (cellB); jobs run as {runner.account} via the {runner.executor} executor"
        )
        click.echo("")
        runner.story()
        click.echo("")
        if runner.surprises:
            click.echo(f"demo: {runner.surprises} step(s) did not go as the seed predicts; see {workdir}", err=True)
            ctx.exit(1)
        click.echo("Every step went as the trust model predicts.")
        if keep:
            click.echo("")
            click.echo(f"Still running (Ctrl-C stops it and removes {workdir}):")
            click.echo(
                f"  STS:    {runner.base_url}  (GET /openapi.json; discovery at "
                f"/realms/jobmgr/.well-known/openid-configuration)"
            )
            click.echo(f"  agents: node1 and dmgr, configurations in {workdir / 'agents'}")
            click.echo("Try it (users admin, john, user1, user2; password <user>-password):")
            click.echo(f"  jobsts login --url {runner.base_url} --realm jobmgr --username john")
            click.echo(f"  jobsts submit --node node1 --type run --wait -- {ID_COMMAND} -un", nl=True)
            sys.stdout.flush()
            _wait_for_signal()
    finally:
        runner.close()
        if not runner.surprises:
            shutil.rmtree(workdir, ignore_errors=True)
