"""Executor parts that need no root: environment allow-list, sudo argv, login shell, cancel, timeout."""

from __future__ import annotations

import os
import pwd
import threading

import pytest

from agent_client.config import Limits
from agent_client.errors import MapBadAccount
from agent_client.executors import login_shell_argv, run_job
from agent_client.executors.environment import FIXED_PATH, build_environment, is_denied
from agent_client.executors.self_exec import SelfExecutor
from agent_client.executors.sudo import SudoExecutor
from agent_client.mapping import Account
from realms.wire.spec import JobSpec

ME = pwd.getpwuid(os.geteuid())
SELF = Account(ME.pw_name, ME.pw_uid, ME.pw_gid, tuple(os.getgroups()), ME.pw_dir, ME.pw_shell, False, "test")
OTHER = Account("batch", 4242, 4242, (4242,), "/home/batch", "/bin/bash", False, "test", "batchgrp")


@pytest.mark.parametrize(
    "name",
    ["LD_PRELOAD", "LD_LIBRARY_PATH", "BASH_ENV", "ENV", "PYTHONPATH", "PYTHONSTARTUP", "PERL5LIB", "PERL5OPT",
     "IFS", "GCONV_PATH", "BASH_FUNC_ls", "PATH", "HOME", "USER", "LOGNAME", "SHELL", "NODE_OPTIONS", "GLIBC_TUNABLES"],
)  # fmt: skip
def test_deny_list(name: str) -> None:
    assert is_denied(name)
    env, dropped = build_environment(OTHER, {name: "x"})
    assert dropped == [name] and env.get(name) != "x"


def test_environment_is_built_not_inherited(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_SECRET", "s3cret")
    env, dropped = build_environment(OTHER, {"LANG": "C.UTF-8", "JOB_VAR": "1"})
    assert env == {
        "PATH": FIXED_PATH, "HOME": "/home/batch", "USER": "batch", "LOGNAME": "batch", "SHELL": "/bin/bash",
        "LANG": "C.UTF-8", "JOB_VAR": "1",
    }  # fmt: skip
    assert dropped == []


def test_sudo_command_never_preserves_the_environment() -> None:
    env, _ = build_environment(OTHER, {"A": "1"})
    command = SudoExecutor("/usr/bin/sudo").command(OTHER, ["/bin/echo", "-E", "x"], env, "/srv")
    assert command[:7] == ["/usr/bin/sudo", "-n", "-u", "batch", "-g", "batchgrp", "--"]
    assert "-E" not in command[: command.index("--")]
    assert command[7:11] == ["/usr/bin/env", "-i", "-C", "/srv"]
    assert command[-3:] == ["/bin/echo", "-E", "x"] and "A=1" in command


@pytest.mark.parametrize("name", ["#-1", "0", "-u", "root;id"])
def test_sudo_refuses_names_sudo_could_misread(name: str) -> None:
    account = Account(name, 1, 1, (1,), "/", "/bin/sh", False, "test")
    with pytest.raises(MapBadAccount):
        SudoExecutor("/usr/bin/sudo").command(account, ["/bin/true"], {}, None)


def test_login_shell_passes_argv_as_parameters() -> None:
    argv = login_shell_argv(OTHER, ["/bin/echo", "$(id)", "a b"])
    assert argv == ["/bin/bash", "-l", "-c", 'exec "$0" "$@"', "/bin/echo", "$(id)", "a b"]


def _spec(argv: list[str], timeout: int = 30) -> JobSpec:
    return JobSpec(tuple(argv), {}, "/", timeout, None)


def test_self_executor_timeout_kills_the_group() -> None:
    result = run_job(SelfExecutor(), SELF, _spec(["/bin/sh", "-c", "sleep 60 & sleep 60"], 1), Limits(kill_grace=0.5))
    assert result.code == "exec.timeout" and result.exit_code is None


def test_cancel_kills_the_job() -> None:
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    result = run_job(SelfExecutor(), SELF, _spec(["/bin/sleep", "60"]), Limits(kill_grace=0.5), cancel)
    assert result.code == "exec.cancelled"


def test_missing_program_is_exec_failed() -> None:
    result = run_job(SelfExecutor(), SELF, _spec(["/nonexistent/program"]), Limits())
    assert result.code == "exec.failed" and result.exit_code is None


def test_self_executor_refuses_another_account() -> None:
    result = run_job(SelfExecutor(), OTHER, _spec(["/bin/true"]), Limits())
    assert result.code == "exec.unavailable"


def test_descriptors_are_closed_for_self_too() -> None:
    leaked = os.open("/dev/null", os.O_RDONLY)
    os.set_inheritable(leaked, True)
    try:
        result = run_job(SelfExecutor(), SELF, _spec(["/bin/sh", "-c", f"[ -e /proc/self/fd/{leaked} ] && echo open"]),
                         Limits())  # fmt: skip
    finally:
        os.close(leaked)
    assert "open" not in result.stdout_tail
