"""The ``setuid`` executor, for an agent running as root (the BMC UNIX agent's impersonation).

In the child, after fork and before exec: set exactly the account's groups, then the gid,
then the uid, each checked; then prove that root cannot be regained; then apply the
resource limits and enter the working directory as the account. Any failure aborts the
job with ``exec.drop_failed`` (or ``exec.cwd``): it never runs as root or as the agent.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from agent_client.errors import ExecUnavailable
from agent_client.executors.base import ChildSetup, child_fail
from agent_client.executors.limits import apply_limits
from agent_client.mapping import Account
from agent_client.privilege_map import verify_in_child


def drop_privileges(account: Account, status_fd: int) -> None:
    """Become ``account`` for good: setgroups → setgid → setuid, each verified (runs in the child)."""
    try:
        # Why: groups first, while still root; afterwards setgroups would be refused and the
        # job would keep root's supplementary groups.
        os.setgroups(list(account.groups))
        os.setgid(account.gid)
        os.setuid(account.uid)
    except OSError as exc:
        child_fail(status_fd, "exec.drop_failed", f"cannot become {account.name}: {exc.strerror}")
    if os.getresgid() != (account.gid,) * 3 or os.getresuid() != (account.uid,) * 3:
        child_fail(status_fd, "exec.drop_failed", f"real/effective/saved ids are not all {account.name}'s")
    if sorted(set(os.getgroups())) != sorted(set(account.groups)):
        child_fail(status_fd, "exec.drop_failed", f"supplementary groups are not exactly {account.name}'s")
    if account.uid != 0:
        # Why: if the saved set-user-ID (or a capability) still allowed it, the job could
        # become root again; the drop is proven by trying.
        try:
            os.setuid(0)
        except PermissionError:
            pass
        else:
            child_fail(status_fd, "exec.drop_failed", f"{account.name} could regain root after the drop")
        if account.gid != 0:
            try:
                os.setgid(0)
            except PermissionError:
                pass
            else:
                child_fail(status_fd, "exec.drop_failed", f"{account.name} could regain gid 0 after the drop")


def enter_directory(account: Account, cwd: str, status_fd: int) -> None:
    """``chdir`` as the account (after the drop), so the account's own permissions decide."""
    try:
        os.chdir(cwd)
    except OSError as exc:
        child_fail(status_fd, "exec.cwd", f"{account.name} cannot enter {cwd}: {exc.strerror}")


def limit_and_enter(account: Account, directory: str, limits: Mapping[str, int], status_fd: int) -> None:
    """The child's last steps before exec, for every executor: resource limits, then the directory."""
    try:
        apply_limits(limits)
    except (OSError, ValueError) as exc:
        child_fail(status_fd, "exec.drop_failed", f"cannot apply resource limits: {exc}")
    enter_directory(account, directory, status_fd)


def job_directory(account: Account, cwd: str | None) -> str:
    if cwd is not None:
        return cwd
    return account.home if account.home and os.path.isabs(account.home) and os.path.isdir(account.home) else "/"


class SetuidExecutor:
    name = "setuid"

    def problems(self) -> list[str]:
        if os.geteuid() != 0:
            return ['executor setuid needs the agent to run as root; use executor = "sudo" or "self"']
        return []

    def command(self, account: Account, argv: Sequence[str], env: Mapping[str, str], cwd: str | None) -> list[str]:
        return list(argv)

    def setup(self, account: Account, cwd: str | None, limits: Mapping[str, int]) -> tuple[ChildSetup, str | None]:
        if os.geteuid() != 0:
            raise ExecUnavailable("executor setuid needs root; the agent does not run as root")
        directory = job_directory(account, cwd)

        def child(status_fd: int) -> None:
            drop_privileges(account, status_fd)
            if account.lent_from is not None:
                # Why: a privilege map promises the dedicated uid (never 0) with exactly the lent
                # groups; the child proves what it really got before the job's first instruction.
                problem = verify_in_child(account.uid, account.gid, account.groups)
                if problem is not None:
                    child_fail(status_fd, "exec.drop_failed", f"privilege map of {account.lent_from}: {problem}")
            limit_and_enter(account, directory, limits, status_fd)

        return child, None
