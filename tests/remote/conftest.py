"""Remote-host tests run against the real sshd of ``tests/ssh_harness.py``; the whole agent's
tests use the node key and fake STS of ``tests/agent_client/conftest.py`` (out of this
folder's conftest scope, so imported here)."""

from __future__ import annotations

from tests.agent_client.conftest import fake, node_key
from tests.ssh_harness import ssh_accounts, sshd

__all__ = ["fake", "node_key", "ssh_accounts", "sshd"]
