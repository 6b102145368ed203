"""Executors with REAL OS accounts (root only): what a job really gets.

Each test creates its own users and groups (useradd/groupadd, unique names, removed after),
runs a tiny Python probe as the job, and checks the uid, gid, supplementary groups,
environment, open descriptors and working directory it reports.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import cast

import pytest

from agent_client.config import Limits
from agent_client.executors import executor_for, run_job
from agent_client.executors.environment import FIXED_PATH, build_environment
from agent_client.executors.self_exec import SelfExecutor
from agent_client.executors.setuid import SetuidExecutor
from agent_client.executors.sudo import SudoExecutor
from agent_client.mapping import Account, resolve_account
from realms.wire.spec import JobSpec
from tests.os_accounts import account_tool

IS_ROOT = os.geteuid() == 0
PYTHON = "/usr/bin/python3"
PROBE = (
    "import os, json, resource\n"
    "fds = []\n"
    "for fd in range(256):\n"
    "    try:\n"
    "        os.fstat(fd); fds.append(fd)\n"
    "    except OSError:\n"
    "        pass\n"
    "print(json.dumps({'uid': os.getresuid(), 'gid': os.getresgid(), 'groups': sorted(os.getgroups()),\n"
    "  'env': dict(os.environ), 'fds': fds, 'cwd': os.getcwd(),\n"
    "  'nofile': resource.getrlimit(resource.RLIMIT_NOFILE), 'pgid': os.getpgid(0), 'pid': os.getpid()}))\n"
)
root_only = [
    pytest.mark.root,
    pytest.mark.skipif(not IS_ROOT, reason="needs root to create OS accounts"),
    pytest.mark.skipif(not os.path.exists(PYTHON), reason="needs /usr/bin/python3 for the job probe"),
]
pytestmark = root_only


class Accounts:
    """Creates users and groups with unique names; removes them all at the end."""

    def __init__(self) -> None:
        self.users: list[str] = []
        self.groups: list[str] = []
        self.paths: list[Path] = []

    def group(self) -> str:
        name = f"jstg{secrets.token_hex(4)}"
        account_tool(["groupadd", name])
        self.groups.append(name)
        return name

    def user(self, *, groups: tuple[str, ...] = (), login_shell: str = "/bin/sh") -> str:
        name = f"jst{secrets.token_hex(4)}"
        home = Path(f"/tmp/{name}-home")
        command = ["useradd", "-U", "-m", "-d", str(home), "-s", login_shell]
        if groups:
            command += ["-G", ",".join(groups)]
        account_tool([*command, name])
        self.users.append(name)
        self.paths.append(home)
        return name

    def directory(self, owner: str | None, mode: int) -> Path:
        path = Path(f"/tmp/jstdir-{secrets.token_hex(4)}")
        path.mkdir(mode=mode)
        path.chmod(mode)
        if owner:
            entry = pwd.getpwnam(owner)
            os.chown(path, entry.pw_uid, entry.pw_gid)
        self.paths.append(path)
        return path

    def cleanup(self) -> None:
        for name in self.users:
            # Kill, by pid, whatever a test job of this (test-made) account left behind.
            listed = subprocess.run(["ps", "-o", "pid=", "-u", name], capture_output=True, text=True, check=False)
            for pid in listed.stdout.split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            account_tool(["userdel", "-r", "-f", name], check=False)
        for name in self.groups:
            account_tool(["groupdel", name], check=False)
        for path in self.paths:
            shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def accounts() -> Iterator[Accounts]:
    made = Accounts()
    try:
        yield made
    finally:
        made.cleanup()


def _spec(argv: list[str], **changes: object) -> JobSpec:
    return replace(JobSpec(tuple(argv), {}, None, 30, None), **changes)  # type: ignore[arg-type]


def _probe(result_stdout: str) -> dict[str, object]:
    lines = [line for line in result_stdout.splitlines() if line.startswith("{")]
    assert lines, result_stdout
    return json.loads(lines[-1])  # type: ignore[no-any-return]


def _account(name: str, **kw: object) -> Account:
    return resolve_account(name, via="test", allow_root=False, **kw)  # type: ignore[arg-type]


def _check_identity(probe: dict[str, object], account: Account) -> None:
    assert probe["uid"] == [account.uid] * 3
    assert probe["gid"] == [account.gid] * 3
    assert probe["groups"] == sorted(account.groups)
    assert probe["fds"] == [0, 1, 2]


def test_setuid_job_gets_exactly_the_account(accounts: Accounts, monkeypatch: pytest.MonkeyPatch) -> None:
    extra = accounts.group()
    name = accounts.user(groups=(extra,))
    workdir = accounts.directory(name, 0o700)
    account = _account(name)
    assert len(account.groups) == 2  # own group + the supplementary one
    monkeypatch.setenv("JOBSTS_AGENT_SECRET", "must-not-leak")
    leaked = os.open("/etc/hostname", os.O_RDONLY)
    os.set_inheritable(leaked, True)
    try:
        env = {"LANG": "C.UTF-8", "FOO": "bar", "LD_PRELOAD": "/tmp/evil.so", "PYTHONPATH": "/tmp"}
        env |= {"PATH": "/tmp/evil", "BASH_ENV": "x"}
        spec = _spec([PYTHON, "-c", PROBE], env=env, cwd=str(workdir))
        result = run_job(SetuidExecutor(), account, spec, Limits())
    finally:
        os.close(leaked)
    assert result.code is None and result.exit_code == 0, result.stderr_tail
    probe = _probe(result.stdout_tail)
    _check_identity(probe, account)
    assert probe["cwd"] == str(workdir)
    assert probe["env"] == {
        "PATH": FIXED_PATH, "HOME": account.home, "USER": name, "LOGNAME": name, "SHELL": "/bin/sh", "FOO": "bar",
        "LANG": "C.UTF-8",
    }  # fmt: skip
    assert result.dropped_env == ["BASH_ENV", "LD_PRELOAD", "PATH", "PYTHONPATH"]
    assert probe["pgid"] == probe["pid"]  # its own process group


def test_setuid_never_runs_when_the_drop_fails(accounts: Accounts, monkeypatch: pytest.MonkeyPatch) -> None:
    name = accounts.user()
    marker = accounts.directory(None, 0o755) / "ran"
    # The child is forked from this process, so the patched setuid is what it calls.
    monkeypatch.setattr(os, "setuid", lambda uid: None)
    result = run_job(SetuidExecutor(), _account(name), _spec(["/usr/bin/touch", str(marker)]), Limits())
    assert result.code == "exec.drop_failed"
    assert result.exit_code is None
    assert not marker.exists()


def test_setuid_checks_cwd_after_the_drop(accounts: Accounts) -> None:
    name = accounts.user()
    private = accounts.directory(None, 0o700)  # root's: the account may not enter it
    result = run_job(SetuidExecutor(), _account(name), _spec(["/bin/true"], cwd=str(private)), Limits())
    assert result.code == "exec.cwd"
    assert name in (result.reason or "")


def test_setuid_applies_resource_limits(accounts: Accounts) -> None:
    name = accounts.user()
    limits = Limits(rlimits={"nofile": 64, "nproc": 64})
    result = run_job(SetuidExecutor(), _account(name), _spec([PYTHON, "-c", PROBE]), limits)
    assert _probe(result.stdout_tail)["nofile"] == [64, 64]


def test_timeout_kills_the_whole_process_group(accounts: Accounts) -> None:
    name = accounts.user()
    spec = _spec(["/bin/sh", "-c", "sleep 300 & sleep 300 & echo started; wait"], timeout=1)
    result = run_job(SetuidExecutor(), _account(name), spec, Limits(kill_grace=1.0))
    assert result.code == "exec.timeout"
    assert "started" in result.stdout_tail
    time.sleep(0.2)
    listed = subprocess.run(["ps", "-o", "stat=", "-u", name], capture_output=True, text=True, check=False)
    alive = [state for state in listed.stdout.split() if not state.startswith("Z")]  # zombies are dead
    assert alive == []


def test_output_is_capped(accounts: Accounts) -> None:
    name = accounts.user()
    spec = _spec([PYTHON, "-c", "import sys; sys.stdout.write('x' * 300000 + 'END')"])
    result = run_job(SetuidExecutor(), _account(name), spec, Limits(output_bytes=4096))
    assert result.exit_code == 0
    assert len(result.stdout_tail) == 4096 and result.stdout_tail.endswith("xEND")


def test_load_profile_runs_through_the_login_shell(accounts: Accounts) -> None:
    name = accounts.user(login_shell="/bin/sh")
    account = _account(name)
    profile = Path(account.home) / ".profile"
    profile.write_text("export PROFILE_LOADED=yes\n")
    os.chown(profile, account.uid, account.gid)
    spec = _spec([PYTHON, "-c", PROBE, "arg with spaces; $(id)"])
    plain = run_job(SetuidExecutor(), account, spec, Limits())
    loaded = run_job(SetuidExecutor(), replace(account, load_profile=True), spec, Limits())
    assert "PROFILE_LOADED" not in _probe(plain.stdout_tail)["env"]  # type: ignore[operator]
    probe = _probe(loaded.stdout_tail)
    assert probe["env"]["PROFILE_LOADED"] == "yes"  # type: ignore[index]
    _check_identity(probe, account)


def test_self_executor_runs_as_the_agent_only(accounts: Accounts) -> None:
    root = resolve_account("root", via="test", allow_root=True)
    result = run_job(SelfExecutor(), root, _spec([PYTHON, "-c", PROBE]), Limits())
    probe = _probe(result.stdout_tail)
    assert probe["uid"] == [0, 0, 0] and probe["fds"] == [0, 1, 2]
    assert executor_for("setuid", root).name == "self"
    other = run_job(SelfExecutor(), _account(accounts.user()), _spec(["/bin/true"]), Limits())
    assert other.code == "exec.unavailable"


SUDO = shutil.which("sudo")
VISUDO = shutil.which("visudo") or "/usr/sbin/visudo"


@pytest.fixture
def sudoers(accounts: Accounts) -> Iterator[Callable[[str], tuple[str, str]]]:
    """A service account and a validated /etc/sudoers.d drop-in letting it run env as a job account."""
    files: list[Path] = []

    def make(job_account: str) -> tuple[str, str]:
        service = accounts.user()
        path = Path(f"/etc/sudoers.d/jobsts-test-{secrets.token_hex(4)}")
        text = f"Defaults:{service} !use_pty\n{service} ALL=({job_account}) NOPASSWD: /usr/bin/env\n"
        staged = Path(f"/tmp/{path.name}")
        staged.write_text(text)
        subprocess.run([VISUDO, "-cf", str(staged)], check=True, capture_output=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o440)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        staged.unlink()
        files.append(path)
        return service, str(path)

    try:
        yield make
    finally:
        for path in files:
            path.unlink(missing_ok=True)


@pytest.mark.skipif(SUDO is None, reason="sudo is installed by tests/run.sh")
def test_sudo_executor_as_root(accounts: Accounts) -> None:
    extra = accounts.group()
    name = accounts.user(groups=(extra,))
    account = _account(name)
    workdir = accounts.directory(name, 0o700)
    env = {"LANG": "C.UTF-8", "FOO": "bar", "LD_LIBRARY_PATH": "/tmp"}
    spec = _spec([PYTHON, "-c", PROBE], env=env, cwd=str(workdir))
    result = run_job(SudoExecutor(), account, spec, Limits())
    assert result.exit_code == 0, result.stderr_tail
    probe = _probe(result.stdout_tail)
    _check_identity(probe, account)
    assert probe["cwd"] == str(workdir)
    assert set(cast(dict[str, str], probe["env"])) == {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "FOO", "LANG"}


@pytest.mark.skipif(SUDO is None, reason="sudo is installed by tests/run.sh")
def test_sudo_executor_from_a_service_account(accounts: Accounts, sudoers: Callable[[str], tuple[str, str]]) -> None:
    name = accounts.user()
    account = _account(name)
    service, _ = sudoers(name)
    env, _ = build_environment(account, {"FOO": "bar"})
    command = SudoExecutor().command(account, [PYTHON, "-c", PROBE], env, None)
    assert "-E" not in command and command[:4] == [SUDO or "/usr/bin/sudo", "-n", "-u", name]
    ran = subprocess.run(command, user=service, env={"PATH": FIXED_PATH}, capture_output=True, text=True, cwd="/")
    assert ran.returncode == 0, ran.stderr
    probe = _probe(ran.stdout)
    _check_identity(probe, account)
    assert probe["env"]["FOO"] == "bar"  # type: ignore[index]
    # The same service account may not become anyone the drop-in does not name.
    other = _account(accounts.user())
    denied = subprocess.run(
        SudoExecutor().command(other, ["/bin/true"], env, None),
        user=service, env={"PATH": FIXED_PATH}, capture_output=True, text=True, cwd="/",
    )  # fmt: skip
    assert denied.returncode != 0


@pytest.mark.skipif(SUDO is None, reason="sudo is installed by tests/run.sh")
def test_sudo_cwd_is_checked_as_the_account(accounts: Accounts) -> None:
    name = accounts.user()
    private = accounts.directory(None, 0o700)
    result = run_job(SudoExecutor(), _account(name), _spec(["/bin/true"], cwd=str(private)), Limits())
    assert result.code == "exec.cwd"
