"""The ``[remote_hosts.<name>]`` tables of the agent configuration, and pinned host keys.

Each remote host has an address, a port and exactly one pinned host key, written as the
host's own ``/etc/ssh/ssh_host_<type>_key.pub`` line (``ssh-ed25519 AAAA... comment``). There
is no ``known_hosts`` file and no trust on first use: a host without a pinned key is a
configuration error, and a server that presents another key is refused
(``remote.host_key_mismatch``). This module imports no other module of the agent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field

# Host-key types accepted for pinning, and the host-key algorithms (RFC 4253 §6.6, RFC 8332
# §3, RFC 8709 §4, RFC 5656 §6.2) the client then offers: only those of the pinned key, so
# a server cannot answer with a key of another type that was never pinned.
HOST_KEY_ALGORITHMS: Mapping[str, tuple[str, ...]] = {
    "ssh-ed25519": ("ssh-ed25519",),
    "ecdsa-sha2-nistp256": ("ecdsa-sha2-nistp256",),
    "ecdsa-sha2-nistp384": ("ecdsa-sha2-nistp384",),
    "ecdsa-sha2-nistp521": ("ecdsa-sha2-nistp521",),
    # Why: the SHA-1 "ssh-rsa" signature algorithm is never offered, only RFC 8332's SHA-2 ones.
    "ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256"),
}
HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
# A DNS name or an IPv4/IPv6 literal; no user@, no spaces, no shell or option characters.
ADDRESS = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}|\[?[0-9A-Fa-f:.]{2,45}\]?")


class HostKeyInvalid(ValueError):
    """A pinned host key line that cannot be a public key (raised while reading configuration)."""


@dataclass(frozen=True, slots=True)
class PinnedKey:
    """One SSH public key: its type name and its wire blob (RFC 4253 §6.6)."""

    key_type: str
    blob: bytes

    @property
    def algorithms(self) -> tuple[str, ...]:
        return HOST_KEY_ALGORITHMS[self.key_type]

    @property
    def fingerprint(self) -> str:
        """``SHA256:...`` as ``ssh-keygen -l`` prints it."""
        digest = hashlib.sha256(self.blob).digest()
        return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")

    def matches(self, key_type: str, blob: bytes) -> bool:
        return key_type == self.key_type and blob == self.blob


def parse_host_key(text: str) -> PinnedKey:
    """Parse an OpenSSH public key line (``type base64 [comment]``); the blob must name the same type."""
    parts = text.strip().split()
    if len(parts) < 2:
        raise HostKeyInvalid("must be a public key line: '<type> <base64> [comment]'")
    key_type, encoded = parts[0], parts[1]
    if key_type not in HOST_KEY_ALGORITHMS:
        raise HostKeyInvalid(f"key type {key_type[:40]!r} is not one of {', '.join(HOST_KEY_ALGORITHMS)}")
    try:
        blob = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise HostKeyInvalid("the key is not valid base64") from None
    # Why: the blob starts with its own type name; a line whose text type and blob disagree
    # is a copy-paste error that would otherwise pin something nobody meant.
    if len(blob) < 4:
        raise HostKeyInvalid("the key is too short")
    (length,) = struct.unpack(">I", blob[:4])
    if blob[4 : 4 + length] != key_type.encode("ascii"):
        raise HostKeyInvalid(f"the key blob is not of type {key_type}")
    return PinnedKey(key_type, blob)


@dataclass(frozen=True, slots=True)
class RemoteHost:
    """One remote host the agent reaches over SSH (``[remote_hosts.<name>]``)."""

    name: str
    address: str
    host_key: PinnedKey
    port: int = 22
    connect_timeout: int = 15
    # Substitute users a job may ask to sudo to after login; empty: sudo is not allowed.
    sudo_users: frozenset[str] = field(default_factory=frozenset)

    def describe(self) -> str:
        return f"{self.name} ({self.address}:{self.port}, host key {self.host_key.fingerprint})"
