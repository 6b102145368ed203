"""The whole agent (fake STS on loopback, real sshd, real accounts): remote jobs end to end.

Covers the README's worked example as written, and the password canary: the secret is never in
a file the agent writes, a log line, the result sent to the STS, or the remote job's view.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import shlex
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import ec

from agent_client.config import load_agent_config
from agent_client.loop import open_agent
from realms.console import cli
from realms.sealing import seal
from realms.tokens.keys import public_jwk
from tests.agent_client.conftest import NODE, OPS_JM, OWN, TRUSTED, make_job, mint, write_node_key
from tests.agent_client.fake_sts import FakeState
from tests.ssh_harness import SshAccounts, SshServer, needs_sshd

pytestmark = needs_sshd
README = Path(__file__).resolve().parents[2] / "README.md"

CONFIG = """
[agent]
node_id = "{node}"
realm = "{own}"
sts_url = "{sts}"
trusted_realms = ["{trusted}"]
executor = "setuid"
poll_wait = 0

[job_types]
run = "operator"

[limits]
kill_grace = 1
"""


def agent_dir(directory: Path, sts: str, key: ec.EllipticCurvePrivateKey, extra: str) -> Path:
    directory.mkdir(mode=0o700)
    write_node_key(directory, key)
    config = directory / "agent.toml"
    config.write_text(CONFIG.format(node=NODE, own=OWN, trusted=TRUSTED, sts=sts) + extra)
    config.chmod(0o600)
    return config


def jobsts(*args: str, stdin: str | None = None) -> str:
    result = CliRunner().invoke(cli, list(args), input=stdin)
    assert result.exit_code == 0, f"{args}: {result.output} {result.exception!r}"
    return result.output


def lease(fake: FakeState, spec: dict[str, Any]) -> dict[str, Any]:
    job = make_job(spec)
    token = mint(job, iss=f"{fake.base_url}/realms/{TRUSTED}")
    return {"job": job, "job_token": token, "lease_expires_at": 2_000_000_000}


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


def test_worked_example_of_the_docs(
    sshd: SshServer, ssh_accounts: SshAccounts, fake: FakeState, node_key: ec.EllipticCurvePrivateKey, tmp_path: Path
) -> None:
    section = README.read_text().split("\n## Worked example: a job on a remote host with a credential key\n", 1)[1]
    example = section.split("\n## ", 1)[0]
    password = "deploy password"
    user = ssh_accounts.user(password=password)
    toml = blocks(example, "toml")[0]
    pinned = re.search(r'host_key = "(.*)"', toml)
    assert pinned is not None
    toml = toml.replace('"192.0.2.10"', f'"{sshd.address}"').replace("port = 22", f"port = {sshd.port}")
    toml = toml.replace(pinned.group(1), sshd.host_key())
    config = agent_dir(tmp_path / "agent", fake.base_url, node_key, toml)
    table = tmp_path / "agent" / "authz.sqlite"
    commands = blocks(example, "sh")[1].strip().splitlines()
    assert len(commands) == 3
    for line in commands:
        stdin = None
        if line.startswith("printf '%s\\n' \"$DEPLOY_PASSWORD\" | "):
            line, stdin = line.split(" | ", 1)[1], f"{password}\n"
        line = line.replace("/etc/jobsts/agent.toml", str(config)).replace("--user deploy", f"--user {user}")
        line = line.replace("sqlite:////etc/jobsts/authz.sqlite", f"sqlite:///{table}")
        words = shlex.split(line)
        assert words[0] == "jobsts"
        jobsts(*words[1:], stdin=stdin)
    spec = json.loads(blocks(example, "json")[0])
    worker = open_agent(load_agent_config(config, environ={}))
    try:
        fake.leases.append(lease(fake, spec))
        assert worker.run_once() == "succeeded"
    finally:
        worker.close()
    result = next(iter(fake.results.values()))
    assert (result["account"], result["stdout_tail"], result["exit_code"]) == (f"{user}@web1", f"{user}\n", 0)
    step_f = next(s for s in result["trace"] if s["step"] == "f")
    assert step_f["detail"].startswith(
        f"remote login {user}@web1 with credential web1-deploy (password); host key pinned SHA256:"
    )
    assert [s["step"] for s in result["trace"]] == list("abcdeefg")
    assert all(s["verdict"] == "pass" for s in result["trace"])


def test_password_canary_never_leaves_the_agents_memory(
    sshd: SshServer,
    ssh_accounts: SshAccounts,
    fake: FakeState,
    node_key: ec.EllipticCurvePrivateKey,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    canary = f"canary-{secrets.token_hex(12)}"
    target = ssh_accounts.user(login=False)
    user = ssh_accounts.user(password=canary)
    ssh_accounts.sudoers_rule(f"{user} ALL=({target}) ALL\n")
    extra = f"""
[remote_hosts.web1]
address = "{sshd.address}"
port = {sshd.port}
host_key = "{sshd.host_key()}"
sudo_users = ["{target}"]
"""
    config_path = agent_dir(tmp_path / "agent", fake.base_url, node_key, extra)
    table = f"sqlite:///{tmp_path / 'agent' / 'authz.sqlite'}"
    jobsts("agent", "credentials", "add", "k", "--config", str(config_path), "--user", user, "--password-stdin",
           stdin=f"{canary}\n")  # fmt: skip
    for scope in ("*", "credential:k"):
        jobsts("authz", "--table", table, "grant", OPS_JM, "operator", "--scope", scope)
    caplog.set_level(logging.DEBUG)  # every logger, paramiko's included, at its most talkative
    # The job looks for the password everywhere it can: environment, every command line, its stdin.
    probe = "env; ps -eo args; cat; cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'; id -un"
    worker = open_agent(load_agent_config(config_path, environ={}))
    try:
        fake.leases.append(lease(fake, {"argv": ["/bin/sh", "-c", probe], "remote_host": "web1", "credential": "k",
                                        "sudo_user": target}))  # fmt: skip
        fake.leases.append(lease(fake, {"argv": ["/bin/true"], "remote_host": "web1", "credential": "k",
                                        "sudo_user": "root"}))  # fmt: skip
        assert worker.run_once() == "succeeded"
        assert worker.run_once() == "refused"
    finally:
        worker.close()
    results = list(fake.results.values())
    assert results[0]["stdout_tail"].strip().endswith(target)  # it ran, as the substitute user
    assert results[1]["code"] == "remote.sudo_not_allowed"
    needle = canary.encode()
    assert needle not in json.dumps(results).encode()  # what the STS receives and stores
    assert canary not in caplog.text  # log records
    out, err = capfd.readouterr()
    assert canary not in out + err  # anything printed by the agent or its libraries
    for path in (tmp_path / "agent").rglob("*"):  # every file the agent (or the CLI) wrote
        if path.is_file():
            assert needle not in path.read_bytes(), path


def test_a_login_given_at_submit_is_opened_only_by_this_node(
    sshd: SshServer,
    ssh_accounts: SshAccounts,
    fake: FakeState,
    node_key: ec.EllipticCurvePrivateKey,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    canary = f"canary-{secrets.token_hex(12)}"
    user = ssh_accounts.user(password=canary)
    extra = f"""
[remote_hosts.web1]
address = "{sshd.address}"
port = {sshd.port}
host_key = "{sshd.host_key()}"
"""
    config_path = agent_dir(tmp_path / "agent", fake.base_url, node_key, extra)
    table = f"sqlite:///{tmp_path / 'agent' / 'authz.sqlite'}"
    jobsts("authz", "--table", table, "grant", OPS_JM, "operator", "--scope", "*")
    caplog.set_level(logging.DEBUG)
    jwk = public_jwk(node_key.public_key(), "ES256")
    login = json.dumps({"user": user, "password": canary}).encode()
    spec = {"argv": ["/usr/bin/id", "-un"], "remote_host": "web1"}
    good = lease(fake, spec)
    good["sealed_credentials"] = seal(jwk, login, good["job"]["id"].encode())
    moved = lease(fake, spec)  # a sealed copy of another job does not open here
    moved["sealed_credentials"] = good["sealed_credentials"]
    other_key = lease(fake, spec)  # nor one sealed to another node's key
    stranger = public_jwk(ec.generate_private_key(ec.SECP256R1()).public_key(), "ES256")
    other_key["sealed_credentials"] = seal(stranger, login, other_key["job"]["id"].encode())
    worker = open_agent(load_agent_config(config_path, environ={}))
    try:
        fake.leases.extend([good, moved, other_key])
        assert [worker.run_once() for _ in range(3)] == ["succeeded", "refused", "refused"]
    finally:
        worker.close()
    results = list(fake.results.values())
    assert (results[0]["account"], results[0]["stdout_tail"]) == (f"{user}@web1", f"{user}\n")
    assert [r["code"] for r in results[1:]] == ["seal.invalid", "seal.invalid"]
    assert canary not in json.dumps(results) and canary not in caplog.text
    for path in (tmp_path / "agent").rglob("*"):
        if path.is_file():
            assert canary.encode() not in path.read_bytes(), path
