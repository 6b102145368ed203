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

import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType

import click

from sts.commands.demo_runner import ID_COMMAND, JOHN, Demo, Step
from sts.commands.demo_ssh import DemoSshHost, unavailable_reason


def story(demo: Demo) -> None:
    """The trust scenarios in order, each step with the outcome the trust model predicts."""
    cellb = {"credentials": {"username": "john", "password": "john-password"}}
    later = {"not_before": int(time.time()) + 3600}
    demo.say("Same registry: node1 shares the job manager's directory (realm jobmgr).")
    demo.play(1, Step("John is an operator on node1: his job runs, without a password.", "john", "node1", "succeeded"))
    demo.play(2, Step("user2 has no role on node1: refused.", "user2", "node1", "refused", "authz.denied"))
    demo.say("")
    demo.say("Different registries: dmgr is in realm cellB, with its own directory (its john is someone else).")
    demo.play(
        3,
        Step(
            "dmgr does not trust realm jobmgr: the STS refuses at once.",
            "john",
            "dmgr",
            "rejected",
            "realm.untrusted",
        ),
    )
    demo.play(4, Step("With cellB credentials the job runs as cellB's john.", "john", "dmgr", "succeeded", body=cellb))
    trust_and_import(demo)
    demo.play(5, Step("Trusted realm + imported access ID: John runs without a password.", "john", "dmgr", "succeeded"))
    demo.play(
        6, Step("user1 was never imported into dmgr's table: refused.", "user1", "dmgr", "refused", "authz.denied")
    )
    demo.say("")
    demo.say("Revocation reaches the queue.")
    demo.play(7, Step("A job for later, cancelled while queued, never runs.", "john", "node1", "cancelled", body=later))
    demo.say("")
    demo.say("Remote hosts: node1's agent is the gateway to web1, which runs no agent.")
    remote_story(demo, 8)


def trust_and_import(demo: Demo) -> None:
    """The admin's steps for a node of another registry: trust the realm, import the access ID."""
    john = demo.api("GET", "/api/v1/access-ids/jobmgr/john")["access_id"]
    demo.say("   admin: dmgr now trusts realm jobmgr (at the STS and in the agent's agent.toml), and")
    demo.say(f"   imports John's exported access ID {john} into dmgr's table as administrator")
    demo.api("PATCH", "/api/v1/nodes/dmgr", {"trusted_realms": ["jobmgr"]})
    demo.stop_agent("dmgr")
    demo.write_agent_config("dmgr", "cellB", ["jobmgr"])
    demo.grant("dmgr", [(john, "administrator")])
    demo.start_agent("dmgr")


def add_remote_host(demo: Demo, host: DemoSshHost) -> None:
    """The admin's steps for a remote host: pin its key, store the login, grant the key to John."""
    directory = demo.workdir / "agents" / "node1"
    demo.say(f"   admin: node1 pins web1's host key; `jobsts agent credentials add web1-demo --user {host.user}`")
    demo.say("   stores the login (password on stdin); John is granted operator on scope credential:web1-demo")
    demo.stop_agent("node1")
    with (directory / "agent.toml").open("a", encoding="utf-8") as config:
        config.write(host.agent_toml("web1"))
    demo.jobsts(
        "agent", "credentials", "add", "web1-demo", "--config", str(directory / "agent.toml"),
        "--user", host.user, "--password-stdin", stdin=f"{host.password}\n",
    )  # fmt: skip
    demo.grant("node1", [(JOHN, "operator")], scope="credential:web1-demo")
    demo.start_agent("node1")


def remote_story(demo: Demo, number: int) -> None:
    """A job on a remote host over SSH with a credential key, when this machine can run sshd."""
    title = "John's job runs on remote host web1 over SSH, logging in with credential key web1-demo."
    reason = unavailable_reason()
    if reason is not None:
        demo.say(f"{number}. {title}")
        demo.say(f"   -> skipped: {reason}")
        return
    host = DemoSshHost(demo.workdir / "sshd")
    demo.remote_hosts.append(host)
    add_remote_host(demo, host)
    spec = {"argv": [ID_COMMAND, "-un"], "remote_host": "web1", "credential": "web1-demo"}
    demo.play(number, Step(title, "john", "node1", "succeeded", body={"spec": spec}))


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
        story(runner)
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
