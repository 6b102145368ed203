"""The ``self`` executor: run as the agent's own account, only when the mapping resolved to it."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from agent_client.errors import ExecUnavailable
from agent_client.executors.base import ChildSetup
from agent_client.executors.setuid import job_directory, limit_and_enter
from agent_client.mapping import Account


class SelfExecutor:
    name = "self"

    def problems(self) -> list[str]:
        return []

    def command(self, account: Account, argv: Sequence[str], env: Mapping[str, str], cwd: str | None) -> list[str]:
        return list(argv)

    def setup(self, account: Account, cwd: str | None, limits: Mapping[str, int]) -> tuple[ChildSetup, str | None]:
        # Why: "self" must never become a way to run a job mapped to someone else as the agent.
        if account.uid != os.geteuid() or account.uid != os.getuid():
            raise ExecUnavailable(
                f"executor self runs jobs as the agent's own account only, not as {account.name} (uid {account.uid})"
            )
        directory = job_directory(account, cwd)

        def child(status_fd: int) -> None:
            limit_and_enter(account, directory, limits, status_fd)

        return child, None
