"""Executors (decision step g): run a job as the mapped account.

``setuid`` (agent is root), ``sudo`` (agent is a service account) and ``self`` (the mapping
resolved to the agent's own account). All share the allow-list environment, closed
descriptors, a checked working directory, an own process group killed on timeout or
cancel, resource limits and capped output (``run_job``).
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from agent_client.config import Limits
from agent_client.credentials.errors import CredentialUnsuitable, CredentialWrongPassword
from agent_client.credentials.local_use import open_sudo_password
from agent_client.credentials.store import CredentialInfo, CredentialStore
from agent_client.errors import AgentConfigInvalid, ExecCwdRefused
from agent_client.executors.base import (
    ChildSetup,
    ExecResult,
    capture,
    children_of,
    kill_orphans,
    set_child_subreaper,
    spawn,
)
from agent_client.executors.environment import build_environment
from agent_client.executors.self_exec import SelfExecutor
from agent_client.executors.setuid import SetuidExecutor
from agent_client.executors.sudo import CWD_FAILED_EXIT, WRONG_PASSWORD_MARKERS, SudoExecutor
from agent_client.mapping import Account
from realms.errors import JobstsError
from realms.wire.spec import JobSpec

__all__ = ["ExecResult", "Executor", "executor_for", "login_shell_argv", "run_job"]


class Executor(Protocol):
    name: str

    def problems(self) -> list[str]: ...

    def command(self, account: Account, argv: Sequence[str], env: Mapping[str, str], cwd: str | None) -> list[str]: ...

    def setup(self, account: Account, cwd: str | None, limits: Mapping[str, int]) -> tuple[ChildSetup, str | None]: ...


EXECUTORS: dict[str, Callable[[], Executor]] = {"setuid": SetuidExecutor, "sudo": SudoExecutor, "self": SelfExecutor}


def executor_for(name: str, account: Account | None = None) -> Executor:
    """The configured executor; a mapping to the agent's own account always uses ``self`` (no drop needed)."""
    if name not in EXECUTORS:
        raise AgentConfigInvalid(f"unknown executor {name!r}", field="agent.executor")
    if account is not None and account.lent_from is not None:
        # Why: only setgroups(2) as root can lend groups; "self" or sudo would run the job with
        # the agent's or the account's own groups instead of the lent ones.
        return SetuidExecutor()
    if account is not None and account.uid == os.geteuid() == os.getuid():
        return SelfExecutor()
    return EXECUTORS[name]()


def login_shell_argv(account: Account, argv: Sequence[str]) -> list[str]:
    """``load_profile``: run ``argv`` through the account's login shell (``sh -l -c 'exec "$0" "$@"'``)."""
    shell = account.shell if account.shell and os.path.isabs(account.shell) else "/bin/sh"
    # Why: argv travels as positional parameters, never spliced into the -c string, so no
    # argument is ever parsed as shell syntax.
    return [shell, "-l", "-c", 'exec "$0" "$@"', *argv]


# Jobs of one agent may run at once (``max_jobs`` slots): the subreaper stays on while any
# contained job runs, and one job's end never kills another job's own process.
_SLOTS_LOCK = threading.Lock()
_LIVE_JOB_PIDS: set[int] = set()
_CONTAINED = [0]


def _contain_begin() -> bool:
    with _SLOTS_LOCK:
        if _CONTAINED[0] == 0 and not set_child_subreaper(True):
            return False
        _CONTAINED[0] += 1
        return True


def _contain_end(uid: int, known: set[int]) -> None:
    with _SLOTS_LOCK:
        # Why: under the lock that spawning holds too, so no slot's child can appear between
        # the snapshot of live jobs and the kills and be taken for an orphan.
        kill_orphans(uid, known | _LIVE_JOB_PIDS)
        _CONTAINED[0] -= 1
        if _CONTAINED[0] == 0:
            set_child_subreaper(False)


def run_job(
    executor: Executor,
    account: Account,
    spec: JobSpec,
    limits: Limits,
    cancel: threading.Event | None = None,
    on_tick: Callable[[], None] | None = None,
    *,
    credential: CredentialInfo | None = None,
    store: CredentialStore | None = None,
) -> ExecResult:
    """Run ``spec`` as ``account``; an exec failure is an ``ExecResult`` with a code, never an exception.

    ``credential`` (decided in step f) is the key whose password sudo asks for; it is opened
    from ``store`` only here, and only the ``sudo`` executor can use it."""
    env, dropped = build_environment(account, spec.env)
    argv = login_shell_argv(account, spec.argv) if account.load_profile else list(spec.argv)
    timeout = min(spec.timeout, limits.max_timeout)
    # Why: a job that calls setsid(2) (a daemon) leaves its process group, so killing the group
    # misses it. As the subreaper, the agent inherits such orphans and kills every one that runs
    # as the job's account (never root or the agent itself) when the job ends, is cancelled or
    # times out (found by tests/security/test_agent_os.py). Only while this job runs.
    contain = account.uid not in (0, os.getuid()) and _contain_begin()
    known = children_of(account.uid) if contain else set()
    pid: int | None = None
    try:
        try:
            child, spawn_cwd = executor.setup(account, spec.cwd, limits.rlimits)
            # Why: another slot's orphan sweep must never see this child before it is registered
            # as a live job, or one job's end would kill a job that had just started.
            with _SLOTS_LOCK:
                if credential is None:
                    command = executor.command(account, argv, env, spec.cwd)
                    process = spawn(command, env, child, cwd=spawn_cwd)
                else:
                    process = _spawn_with_password(
                        executor, account, argv, env, spec.cwd, child, spawn_cwd, credential, store
                    )
                pid = process.pid
                _LIVE_JOB_PIDS.add(pid)
        except JobstsError as exc:
            return ExecResult(None, "", "", exc.code, exc.message, dropped)
        result = capture(
            process,
            timeout=timeout,
            output_bytes=limits.output_bytes,
            kill_grace=limits.kill_grace,
            cancel=cancel,
            on_tick=on_tick,
        )
    finally:
        if pid is not None:
            with _SLOTS_LOCK:
                _LIVE_JOB_PIDS.discard(pid)
        if contain:
            _contain_end(account.uid, known)
    result.dropped_env = dropped
    cwd_failed = result.exit_code == CWD_FAILED_EXIT and "cannot change directory" in result.stderr_tail
    if executor.name == "sudo" and cwd_failed:
        error = ExecCwdRefused(f"{account.name} cannot enter {spec.cwd or account.home}")
        result.code, result.reason = error.code, error.message
    if (
        credential is not None
        and result.exit_code == 1
        and any(m in result.stderr_tail for m in WRONG_PASSWORD_MARKERS)
    ):
        wrong = CredentialWrongPassword(
            f"sudo refused the password of credential {credential.key!r} (user {credential.user}); the job did not "
            f"run. Store the right one with `jobsts agent credentials add {credential.key} --replace ...`"
        )
        result.exit_code, result.code, result.reason = None, wrong.code, wrong.message
    return result


def _spawn_with_password(
    executor: Executor,
    account: Account,
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: str | None,
    child: ChildSetup,
    spawn_cwd: str | None,
    credential: CredentialInfo,
    store: CredentialStore | None,
) -> subprocess.Popen[bytes]:
    """Start ``sudo -S`` and type the credential's password into its standard input."""
    if not isinstance(executor, SudoExecutor):
        raise CredentialUnsuitable(
            f"credential {credential.key!r}: a local job uses a password only through the sudo executor, "
            f"and this job runs through {executor.name}",
            key=credential.key,
        )
    command = executor.command(account, argv, env, cwd, password=True)
    line = open_sudo_password(store, credential)
    # Why LC_ALL=C for sudo itself: its refusal must be recognisable, whatever the job's locale;
    # env -i gives the job its own environment afterwards.
    return spawn(command, {**env, "LC_ALL": "C"}, child, cwd=spawn_cwd, stdin_line=line)
