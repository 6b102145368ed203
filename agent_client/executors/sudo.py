"""The ``sudo`` executor, for an agent running as a service account: ``sudo -n -u NAME -- ...``.

Never ``-E``: the job's environment is passed explicitly through ``env -i NAME=VALUE...``,
which runs as the target account, so it also enters the working directory (``-C``) only
after sudo dropped to that account. sudoers must allow the agent's account to run
``/usr/bin/env`` as the mapped accounts without a password (see README), or the job names a
credential key whose password the agent types into ``sudo -S`` on a pipe
(``agent_client/credentials/local_use.py``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence

from agent_client.config_reader import check_account_name
from agent_client.errors import ExecUnavailable
from agent_client.executors.base import ChildSetup, child_fail
from agent_client.executors.limits import apply_limits
from agent_client.executors.setuid import job_directory
from agent_client.mapping import Account

ENV_PROGRAM = "/usr/bin/env"
CWD_FAILED_EXIT = 125
# sudo's own words when the password it read was wrong or missing (with LC_ALL=C).
WRONG_PASSWORD_MARKERS = ("incorrect password attempt", "no password was provided")


class SudoExecutor:
    name = "sudo"

    def __init__(self, sudo: str | None = None) -> None:
        self.sudo = sudo or shutil.which("sudo", path="/usr/bin:/bin:/usr/sbin:/sbin") or "/usr/bin/sudo"

    def problems(self) -> list[str]:
        lines = []
        if not os.path.isfile(self.sudo):
            lines.append(f"executor sudo: {self.sudo} is not installed")
        if not os.path.isfile(ENV_PROGRAM):
            lines.append(f"executor sudo: {ENV_PROGRAM} is missing")
        return lines

    def command(
        self, account: Account, argv: Sequence[str], env: Mapping[str, str], cwd: str | None, *, password: bool = False
    ) -> list[str]:
        # Why: the name passed the strict pattern, so sudo can never read it as "#uid" or an option.
        check_account_name(account.name)
        # Why -S -k -p "": the password comes on standard input (a pipe), never argv, the
        # environment or a file; -k makes sudo ignore and NOT write its credential cache, or the
        # agent's next job without a password would ride on this one's authentication for minutes.
        # Without a password, -n: sudo never waits for a prompt nobody answers.
        asks = ["-S", "-k", "-p", ""] if password else ["-n"]
        command = [self.sudo, *asks, "-u", account.name]
        if account.primary_group is not None:
            command += ["-g", check_account_name(account.primary_group, "group")]
        command += ["--", ENV_PROGRAM, "-i", "-C", job_directory(account, cwd)]
        command += [f"{name}={value}" for name, value in env.items()]
        return [*command, *argv]

    def setup(self, account: Account, cwd: str | None, limits: Mapping[str, int]) -> tuple[ChildSetup, str | None]:
        if not os.path.isfile(self.sudo):
            raise ExecUnavailable(f"executor sudo: {self.sudo} is not installed")

        def child(status_fd: int) -> None:
            try:
                apply_limits(limits)
            except (OSError, ValueError) as exc:
                child_fail(status_fd, "exec.drop_failed", f"cannot apply resource limits: {exc}")

        # sudo itself starts in "/" (the agent's cwd may be private); env -C moves as the account.
        return child, "/"
