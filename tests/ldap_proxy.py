"""A loopback LDAP proxy that counts the operations clients send (RFC 4511 §4.1.1 envelopes).

``LdapOpProxy(slapd.port)`` forwards every connection to the directory and parses what the
client sends just enough to name each operation: an LDAPMessage is
``SEQUENCE { messageID INTEGER, protocolOp [APPLICATION n], controls [0] OPTIONAL }`` in BER,
so the tag after the message ID names the operation (0x60 bindRequest, 0x63 searchRequest,
0x42 unbindRequest, 0x77 extendedRequest, ...). Nothing else is decoded: no DN, no password.

Used to prove by counting, not by timing, that every kind of failed login costs the directory
the same operations (tests/security/test_ldap.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from tests.loopback import HOST, Forwarder

# RFC 4511 §4.2-§4.12: protocolOp CHOICE numbers of the requests a client sends.
REQUEST_NAMES = {
    0: "bindRequest",
    2: "unbindRequest",
    3: "searchRequest",
    6: "modifyRequest",
    8: "addRequest",
    10: "delRequest",
    12: "modDNRequest",
    14: "compareRequest",
    16: "abandonRequest",
    23: "extendedRequest",
}


@dataclass(frozen=True)
class LdapOp:
    """One request seen on the wire: the proxy's connection number, its messageID and its name."""

    connection: int
    message_id: int
    name: str


class BerError(ValueError):
    """The client sent bytes that are not an LDAPMessage."""


def _length(data: bytes | bytearray, pos: int) -> tuple[int, int] | None:
    """(content length, position after the length octets) of a BER length at ``pos``; None if cut."""
    if pos >= len(data):
        return None
    first = data[pos]
    if first < 0x80:
        return first, pos + 1
    count = first & 0x7F
    if count == 0 or count > 4:
        raise BerError(f"unsupported BER length form 0x{first:02x}")
    if pos + 1 + count > len(data):
        return None
    return int.from_bytes(data[pos + 1 : pos + 1 + count], "big"), pos + 1 + count


def split_messages(buffer: bytearray) -> list[tuple[int, int]]:
    """Remove every complete LDAPMessage from the front of ``buffer``: [(messageID, op tag)]."""
    found = []
    while buffer:
        if buffer[0] != 0x30:
            raise BerError(f"an LDAPMessage starts with SEQUENCE (0x30), not 0x{buffer[0]:02x}")
        header = _length(buffer, 1)
        if header is None:
            break
        size, start = header
        end = start + size
        if len(buffer) < end:
            break
        if buffer[start] != 0x02:
            raise BerError("an LDAPMessage's first element is its messageID (INTEGER)")
        id_header = _length(buffer, start + 1)
        if id_header is None:
            raise BerError("messageID cut short inside a complete message")
        id_size, id_start = id_header
        message_id = int.from_bytes(buffer[id_start : id_start + id_size], "big")
        tag_pos = id_start + id_size
        if tag_pos >= end:
            raise BerError("an LDAPMessage without a protocolOp")
        found.append((message_id, buffer[tag_pos]))
        del buffer[:end]
    return found


def op_name(tag: int) -> str:
    """``searchRequest`` for 0x63: the [APPLICATION n] class bits are 0x40, constructed is 0x20."""
    if tag & 0xC0 != 0x40:
        return f"not-an-application-tag-0x{tag:02x}"
    return REQUEST_NAMES.get(tag & 0x1F, f"application-{tag & 0x1F}")


class LdapOpProxy:
    """A ``Forwarder`` to ``127.0.0.1:target_port`` that records every request as an ``LdapOp``."""

    def __init__(self, target_port: int) -> None:
        self._buffers: dict[int, bytearray] = {}
        self._lock = threading.Lock()
        self.ops: list[LdapOp] = []
        self.errors: list[str] = []
        self._forwarder = Forwarder((HOST, target_port), observe=self._observe)
        self.port = self._forwarder.port
        self.url = self._forwarder.url("ldap")

    def _observe(self, connection: int, data: bytes) -> None:
        with self._lock:
            buffer = self._buffers.setdefault(connection, bytearray())
            buffer.extend(data)
            try:
                messages = split_messages(buffer)
            except BerError as exc:
                self.errors.append(f"connection {connection}: {exc}")
                buffer.clear()
                return
            self.ops.extend(LdapOp(connection, mid, op_name(tag)) for mid, tag in messages)

    @property
    def connections(self) -> int:
        """How many connections have been accepted so far (they are numbered 1..connections)."""
        return self._forwarder.accepted

    def wait_ended(self, connections: Iterable[int], timeout: float = 30) -> None:
        """Wait until each of ``connections`` has ended, so all it sent has been counted.

        A wait for an event, not a timing assertion: the deadline only bounds a hang.
        """
        wanted = set(connections)
        deadline = time.monotonic() + timeout
        while not wanted <= set(self._forwarder.closed):
            if time.monotonic() > deadline:
                raise AssertionError(f"connections {sorted(wanted - set(self._forwarder.closed))} never ended")
            time.sleep(0.005)

    def close(self) -> None:
        self._forwarder.close()


__all__ = ["BerError", "LdapOp", "LdapOpProxy", "op_name", "split_messages"]
