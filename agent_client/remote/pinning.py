"""Host-key pinning for SSH connections: the one check before any credential is sent.

The client offers only the host-key algorithms of the pinned key (RFC 4253 §7.1), then
compares the key the server proved it holds (RFC 4253 §8) with the pinned blob, byte for
byte. No known_hosts file is read or written and no key is ever learnt on first use.
"""

from __future__ import annotations

import base64
import hashlib

import paramiko

from agent_client.remote.errors import RemoteHostKeyMismatch
from agent_client.remote.hosts import RemoteHost


def offer_pinned_algorithms(transport: paramiko.Transport, host: RemoteHost) -> None:
    """Before the handshake: accept host keys of the pinned type only."""
    transport.get_security_options().key_types = list(host.host_key.algorithms)


def fingerprint(blob: bytes) -> str:
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii").rstrip("=")


def check_host_key(transport: paramiko.Transport, host: RemoteHost) -> None:
    """After the handshake, before authentication: the presented key must be the pinned one."""
    presented = transport.get_remote_server_key()
    blob = presented.asbytes()
    # Why: a different key means another machine or a man in the middle; sending a password
    # (or using a key) there would hand it the credential. The job is refused, never retried
    # with the new key: re-pinning is an administrator's decision.
    if not host.host_key.matches(presented.get_name(), blob):
        raise RemoteHostKeyMismatch(
            f"remote host {host.name} ({host.address}:{host.port}) presented {presented.get_name()} key "
            f"{fingerprint(blob)}, not the pinned {host.host_key.key_type} key {host.host_key.fingerprint}; "
            "nothing was sent. If the host's key really changed, update host_key in [remote_hosts."
            f"{host.name}] from the host's own /etc/ssh/ssh_host_*_key.pub",
            host=host.name,
            presented=fingerprint(blob),
        )


def no_pinned_type(host: RemoteHost, detail: str) -> RemoteHostKeyMismatch:
    """The server has no key of the pinned type at all: as much a mismatch as a different key."""
    return RemoteHostKeyMismatch(
        f"remote host {host.name} ({host.address}:{host.port}) offers no {host.host_key.key_type} host key "
        f"({detail}); the pinned key is {host.host_key.fingerprint}; nothing was sent",
        host=host.name,
    )
