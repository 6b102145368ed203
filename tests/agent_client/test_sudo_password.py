"""A local job through ``sudo`` with a stored password: real sudo, real accounts (root, to make them).

The agent's side runs as an unprivileged service account (root never needs sudo's password);
sudoers lets it run ``/usr/bin/env`` as the target account only with its password. The job's
credential key holds that password; the executor types it into ``sudo -S`` on a pipe.
"""

from __future__ import annotations

import codecs
import json
import os
import pwd
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent_client.config import Limits
from agent_client.credentials.store import CredentialsConfig, CredentialStore
from agent_client.executors import run_job
from agent_client.executors.sudo import SudoExecutor
from agent_client.mapping import resolve_account
from realms.wire.spec import parse_spec
from tests.ssh_harness import IS_ROOT, SshAccounts

pytestmark = [pytest.mark.root, pytest.mark.skipif(not IS_ROOT, reason="needs root to make accounts and sudoers")]
PASSWORD = "Sudo-canary-7f3a91"


def agent_side(directory: Path, user: str, target: str, jobs: list[tuple[list[str], bool]], password: str) -> str:
    """What the agent does, as its service account: store the key, run the jobs through sudo
    (one after the other, as one agent process does, with or without the credential)."""
    store = CredentialStore(CredentialsConfig(directory / "credentials.enc", directory / "credentials.key"))
    store.put("sudo-pw", user, password=password, replace=True)
    account = resolve_account(target, via="test", allow_root=False)
    results = []
    for argv, use in jobs:
        credential = store.infos()["sudo-pw"] if use else None
        spec = parse_spec({"argv": argv, "timeout": 300})
        result = run_job(SudoExecutor(), account, spec, Limits(), credential=credential, store=store)
        results.append({"exit": result.exit_code, "code": result.code, "out": result.stdout_tail,
                        "err": result.stderr_tail, "reason": result.reason})  # fmt: skip
    return json.dumps(results[0] if len(results) == 1 else {"results": results})


# The child cannot import after the drop (this Python lives under root's home): load now
# what it needs later.
for _codec in ("ascii", "latin-1", "utf-8"):
    codecs.lookup(_codec)


class AgentProcess:
    """A fork of the test that drops to the service account (its Python need not be readable by it)."""

    def __init__(self, account: pwd.struct_passwd, job: Callable[[], str]) -> None:
        self.read_fd, write_fd = os.pipe()
        self.reaped = False
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover - the child
            code = 1
            try:
                os.setgroups([])
                os.setgid(account.pw_gid)
                os.setuid(account.pw_uid)
                os.chdir(account.pw_dir)
                os.write(write_fd, job().encode())
                code = 0
            except BaseException as exc:
                os.write(write_fd, json.dumps({"crash": repr(exc)}).encode())
            finally:
                os._exit(code)
        os.close(write_fd)

    def running(self) -> bool:
        if not self.reaped:
            self.reaped = os.waitpid(self.pid, os.WNOHANG) != (0, 0)
        return not self.reaped

    def finish(self) -> dict[str, object]:
        chunks = []
        while chunk := os.read(self.read_fd, 65536):
            chunks.append(chunk)
        os.close(self.read_fd)
        if not self.reaped:
            os.waitpid(self.pid, 0)
        result: dict[str, object] = json.loads(b"".join(chunks))
        assert "crash" not in result, result
        return result


class Setup:
    def __init__(self, accounts: SshAccounts) -> None:
        self.agent = accounts.user(password=PASSWORD)
        self.target = accounts.user(login=False)
        # Without NOPASSWD: sudo asks the agent's account for its own password (sudo's default).
        accounts.sudoers_rule(f"{self.agent} ALL=({self.target}) /usr/bin/env\n")
        self.home = Path(f"/tmp/{self.agent}-home")
        self.store = self.home / "store"
        subprocess.run(["install", "-d", "-m", "700", "-o", self.agent, str(self.store)], check=True)

    def run(self, argv: list[str], password: str, *, then: list[str] | None = None) -> AgentProcess:
        jobs = [(argv, True)] + ([(then, False)] if then is not None else [])
        return AgentProcess(
            pwd.getpwnam(self.agent), lambda: agent_side(self.store, self.agent, self.target, jobs, password)
        )


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    accounts = SshAccounts(tmp_path)
    try:
        yield Setup(accounts)
    finally:
        accounts.cleanup()


def test_the_stored_password_opens_sudo_and_never_shows(setup: Setup) -> None:
    gate = setup.home / "gate"
    subprocess.run(["install", "-d", "-m", "777", str(gate)], check=True)
    # The job waits at a gate while this test looks for the password in every process's
    # command line and environment; then it reads its standard input (it must be empty).
    script = f"touch {gate}/started; while [ ! -e {gate}/go ]; do sleep 0.1; done; cat; id -un"
    process = setup.run(["/bin/sh", "-c", script], PASSWORD)
    deadline = time.monotonic() + 300
    while not (gate / "started").exists():
        assert process.running(), process.finish()
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.05)
    seen = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            for part in ("cmdline", "environ"):
                try:
                    data = Path(f"/proc/{entry}/{part}").read_bytes()
                except OSError:
                    continue
                if PASSWORD.encode() in data and int(entry) != os.getpid():
                    seen.append(f"{entry}/{part}")
    (gate / "go").touch()
    result = process.finish()
    assert seen == [], f"the password is visible in /proc: {seen}"
    assert result["code"] is None and result["exit"] == 0, result
    assert result["out"] == f"{setup.target}\n"  # ran as the target; stdin was empty
    assert PASSWORD not in json.dumps(result)


def test_sudo_never_caches_the_password_for_a_later_job(setup: Setup) -> None:
    both = setup.run(["/usr/bin/id", "-un"], PASSWORD, then=["/usr/bin/id", "-un"]).finish()["results"]
    assert isinstance(both, list)
    first, later = both
    assert first["exit"] == 0 and first["out"] == f"{setup.target}\n", first
    # Why: without -k, sudo would remember the authentication for this agent process, and the
    # agent's next job would switch accounts with no password at all (sudo -n succeeds).
    assert later["exit"] != 0 and "a password is required" in later["err"], later


def test_a_wrong_password_is_reported_and_the_job_never_runs(setup: Setup) -> None:
    marker = setup.home / "ran"
    result = (setup.run(["/usr/bin/touch", str(marker)], "not-the-password")).finish()
    assert result["code"] == "credential.wrong_password" and result["exit"] is None, result
    assert "sudo-pw" in str(result["reason"]) and not marker.exists()
