"""Remote-host tests run against the real sshd of ``tests/ssh_harness.py``."""

from __future__ import annotations

from tests.ssh_harness import ssh_accounts, sshd

__all__ = ["ssh_accounts", "sshd"]
