"""The login path's LDAP requests, BER-encoded by hand (RFC 4511 §5.1), and their answers.

A login sends one user search and one simple bind (and, in ``member`` mode, group searches).
ldap3 builds each request as a pyasn1 object tree, encodes it, and decodes it back into a dict
for its own bookkeeping: most of the STS's CPU per login. Here the few messages the login path
sends are encoded directly, byte for byte as ldap3 encodes them (tests/realms/test_ldap_wire.py
proves it by a property test against ldap3 itself), and sent on the pooled ldap3 connection's
socket (plain or TLS); answers are split with ldap3's ``decode_message_fast``.

Filters are built from their parts (``equality``, ``all_of``, ``any_of``), never parsed from a
string: a user's name goes into an AssertionValue (RFC 4511 §4.5.1.7) as its UTF-8 bytes, so no
character of it can change the filter's structure (the RFC 4515 string form and its escaping
are not involved at all).

Every search answer is read up to a bound the caller gives (``max_entries``): the user search
needs two entries to know a name is ambiguous, a group search page never more than the realm's
``max_groups`` + 1 in all. Past it the reading stops (``TooManyEntries``) and the connection is
dropped, so a directory that streams entries without end cannot exhaust the STS's memory;
an answer is also bounded in bytes (``MAX_ANSWER_BYTES``) and in skipped references.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NewType

from ldap3 import Connection
from ldap3.core.exceptions import LDAPException
from ldap3.core.server import Server
from ldap3.protocol.sasl.sasl import sasl_prep
from ldap3.utils.asn1 import decode_message_fast, decode_sequence

Filter = NewType("Filter", bytes)  # one encoded Filter (RFC 4511 §4.5.1.7)

SCOPES = {"BASE": 0, "LEVEL": 1, "SUBTREE": 2}
DEREF_ALWAYS = 3  # ldap3's default derefAliases; kept so the bytes stay ldap3's
NO_ATTRIBUTES = "1.1"  # RFC 4511 §4.5.1.8: "no attributes"
PAGED_RESULTS = "1.2.840.113556.1.4.319"  # RFC 2696
LDAP_VERSION = 3

_BIND_RESPONSE, _SEARCH_ENTRY, _SEARCH_DONE, _SEARCH_REFERENCE = 1, 4, 5, 19
_SEARCH_PARTS = frozenset({_SEARCH_ENTRY, _SEARCH_REFERENCE})
_READ_SIZE = 65536
# Why a bound: a broken or hostile directory must not make the STS buffer without limit; one
# message is one entry, and even 100000 memberOf values fit well within it.
MAX_MESSAGE_BYTES = 64 * 2**20
# Why: bounding the entries alone would still let each of them be MAX_MESSAGE_BYTES; one answer
# (a user with 100000 memberOf values, a page of group entries) fits well within this in all.
MAX_ANSWER_BYTES = 64 * 2**20
# Why: search references are skipped, never kept, but a directory streaming them without end
# would hold a login thread for ever; a real answer carries a handful (AD: about three).
MAX_REFERENCES = 100


class WireError(LDAPException):
    """The connection broke or the server answered out of protocol; the connection is dropped."""


class TooManyEntries(WireError):
    """A search answer carried more entries than the caller's ``max_entries``.

    Raised at the first entry past the bound: the rest of the answer is left unread on the
    socket, so the connection must be dropped (as for every ``WireError``).
    """

    def __init__(self, max_entries: int) -> None:
        super().__init__(f"the directory sent more than {max_entries} entries in one search answer")
        self.max_entries = max_entries


# -- BER (X.690 §8.1: definite lengths, minimal integers) ------------------------------


def _length(size: int) -> bytes:
    if size < 0x80:
        return bytes((size,))
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(octets),)) + octets


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes((tag,)) + _length(len(body)) + body


def _integer(value: int, tag: int = 0x02) -> bytes:
    return _tlv(tag, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def _octets(value: str | bytes) -> bytes:
    return _tlv(0x04, value.encode("utf-8") if isinstance(value, str) else value)


# -- filters (RFC 4511 §4.5.1.7) --------------------------------------------------------


def equality(attribute: str, value: str) -> Filter:
    """``(attribute=value)``: ``value`` is sent as its UTF-8 bytes, whatever characters it holds."""
    return Filter(_tlv(0xA3, _octets(attribute) + _octets(value)))


def all_of(*filters: Filter) -> Filter:
    """``(&...)``."""
    return Filter(_tlv(0xA0, b"".join(filters)))


def any_of(*filters: Filter) -> Filter:
    """``(|...)``."""
    return Filter(_tlv(0xA1, b"".join(filters)))


# -- requests ---------------------------------------------------------------------------


def _message(message_id: int, operation: bytes, controls: bytes = b"") -> bytes:
    return _tlv(0x30, _integer(message_id) + operation + (_tlv(0xA0, controls) if controls else b""))


def paged_control(size: int, cookie: bytes) -> bytes:
    """The simple paged results control (RFC 2696 §2), not critical (ldap3's default)."""
    return _tlv(0x30, _octets(PAGED_RESULTS) + _octets(_tlv(0x30, _integer(size) + _octets(cookie))))


def search_request(
    message_id: int,
    base: str,
    scope: str,
    filter_: Filter,
    attributes: list[str],
    size_limit: int,
    controls: bytes = b"",
) -> bytes:
    """SearchRequest (RFC 4511 §4.5.1): derefAliases always, no time limit, types and values."""
    selection = b"".join(_octets(a) for a in attributes or [NO_ATTRIBUTES])
    body = (
        _octets(base)
        + _integer(SCOPES[scope], 0x0A)
        + _integer(DEREF_ALWAYS, 0x0A)
        + _integer(size_limit)
        + _integer(0)
        + b"\x01\x01\x00"
        + filter_
        + _tlv(0x30, selection)
    )
    return _message(message_id, _tlv(0x63, body), controls)


def simple_password(password: str) -> bytes:
    """The password as a simple bind sends it: SASLprep'd (RFC 4013), UTF-8.

    Raises ldap3's ``LDAPSASLPrepError`` for a password SASLprep prohibits, as ldap3 does.
    """
    # Why a shortcut is the same check: for printable ASCII (U+0020..U+007E) every SASLprep
    # step is the identity: no character is in B.1 or C.1.2 (nothing mapped), NFKC leaves
    # ASCII alone, none is prohibited (C.2.1 is only U+0000..U+001F and U+007F, every other
    # table lies above U+007F) and none is R/AL, so no bidi rule applies. Every other password
    # goes through ldap3's own sasl_prep; the property test compares both on any text.
    if password and password.isascii() and password.isprintable():
        return password.encode("ascii")
    return str(sasl_prep(password)).encode("utf-8")


def bind_request(message_id: int, name: str, password: bytes) -> bytes:
    """Simple BindRequest (RFC 4511 §4.2), LDAP version 3; ``password`` from ``simple_password``."""
    return _message(message_id, _tlv(0x60, _integer(LDAP_VERSION) + _octets(name) + _tlv(0x80, password)))


# -- answers ----------------------------------------------------------------------------


@dataclass(slots=True)
class Result:
    """An LDAPResult (RFC 4511 §4.1.9) and the entries of a search."""

    code: int
    message: str
    entries: list[tuple[str, dict[str, list[bytes]]]] = field(default_factory=list)
    cookie: bytes = b""  # RFC 2696: empty when the last page was sent


def _message_size(buffer: bytearray) -> int | None:
    """The size of the LDAPMessage at the start of ``buffer``, or None if its header is partial."""
    if len(buffer) < 2:
        return None
    if buffer[0] != 0x30:
        raise WireError("the directory's answer is not an LDAPMessage")
    first = buffer[1]
    if first < 0x80:
        return 2 + first
    count = first & 0x7F
    if count == 0 or count > 4:
        raise WireError("LDAP message with an indefinite or oversized length")
    if len(buffer) < 2 + count:
        return None
    size = 2 + count + int.from_bytes(buffer[2 : 2 + count], "big")
    if size > MAX_MESSAGE_BYTES:
        raise WireError(f"LDAP message of {size} bytes (more than {MAX_MESSAGE_BYTES})")
    return size


def _read_messages(conn: Connection, message_id: int, final: int, max_entries: int = 0) -> list[dict[str, Any]]:
    """The answer to ``message_id``: messages up to and including the ``final`` operation.

    A search answer keeps its entries, at most ``max_entries`` of them (``TooManyEntries`` at
    the next one, nothing after it decoded), and drops its references (``MAX_REFERENCES`` at
    most); the whole answer is at most ``MAX_ANSWER_BYTES``.
    """
    before_final = _SEARCH_PARTS if final == _SEARCH_DONE else frozenset()
    sock = conn.socket
    buffer = bytearray()
    messages: list[dict[str, Any]] = []
    entries = references = answered = 0
    while True:
        size = _message_size(buffer)
        while size is None or len(buffer) < size:
            try:
                chunk = sock.recv(_READ_SIZE)
            except OSError as exc:
                raise WireError(f"receiving from the directory failed: {exc}") from None
            if not chunk:
                raise WireError("the directory closed the connection")
            buffer += chunk
            size = _message_size(buffer)
        answered += size
        if answered > MAX_ANSWER_BYTES:
            raise WireError(f"an LDAP answer of more than {MAX_ANSWER_BYTES} bytes")
        message = _decoded(bytes(buffer[:size]))
        del buffer[:size]
        if message["messageID"] != message_id:
            # messageID 0 is an unsolicited notification, e.g. a notice of disconnection (§4.4.1).
            raise WireError(f"unexpected LDAP message {message['messageID']} (waiting for {message_id})")
        operation = message["protocolOp"]
        if operation != final and operation not in before_final:
            raise WireError(f"unexpected LDAP operation {operation} in the answer")
        if operation == _SEARCH_ENTRY:
            entries += 1
            # Why: a hostile or broken directory could stream entries without end and exhaust
            # the STS's memory; the caller knows how many it can use (module docstring).
            if entries > max_entries:
                raise TooManyEntries(max_entries)
        elif operation == _SEARCH_REFERENCE:
            references += 1
            if references > MAX_REFERENCES:
                raise WireError(f"more than {MAX_REFERENCES} search references in one answer")
            continue
        messages.append(message)
        if operation == final:
            if buffer:
                raise WireError("the directory sent more than the answer")
            return messages


def _decoded(data: bytes) -> dict[str, Any]:
    try:
        return dict(decode_message_fast(data))
    except (IndexError, KeyError, ValueError, TypeError) as exc:
        raise WireError(f"malformed LDAP message from the directory ({type(exc).__name__})") from None


def _exchange(
    conn: Connection, request: bytes, message_id: int, final: int, max_entries: int = 0
) -> list[dict[str, Any]]:
    if conn.closed or conn.socket is None:
        raise WireError("the connection is closed")
    try:
        conn.socket.sendall(request)
    except OSError as exc:
        raise WireError(f"sending to the directory failed: {exc}") from None
    return _read_messages(conn, message_id, final, max_entries)


def _result(payload: list[Any]) -> Result:
    return Result(code=int(payload[0][3]), message=bytes(payload[2][3]).decode("utf-8", "replace"))


def next_message_id() -> int:
    """ldap3's message counter, so the ids stay unique with ldap3's own requests."""
    return int(Server.next_message_id())


def bind(conn: Connection, name: str, password: bytes) -> Result:
    """Simple bind as ``name`` on ``conn``; the result code is the server's verdict."""
    message_id = next_message_id()
    messages = _exchange(conn, bind_request(message_id, name, password), message_id, _BIND_RESPONSE)
    if len(messages) != 1:
        raise WireError("the directory answered a bind with more than a bindResponse")
    try:
        return _result(messages[0]["payload"])
    except (IndexError, KeyError, ValueError, TypeError) as exc:
        raise WireError(f"malformed bind answer from the directory ({type(exc).__name__})") from None


def search(
    conn: Connection,
    base: str,
    scope: str,
    filter_: Filter,
    attributes: list[str],
    size_limit: int,
    max_entries: int,
    page: tuple[int, bytes] | None = None,
) -> Result:
    """One search (one page of it with ``page = (size, cookie)``); references are skipped.

    ``max_entries`` bounds the entries read from the answer: ``TooManyEntries`` at the next
    one (for the ``size_limit`` the server was asked, RFC 4511 §4.5.1.5, a server that keeps
    to it never sends more). Raises ``UnicodeDecodeError`` for an entry DN or attribute name
    that is not UTF-8.
    """
    message_id = next_message_id()
    controls = paged_control(*page) if page else b""
    request = search_request(message_id, base, scope, filter_, attributes, size_limit, controls)
    messages = _exchange(conn, request, message_id, _SEARCH_DONE, max_entries)
    try:
        return _search_result(messages, page is not None)
    except UnicodeError:
        raise
    except (IndexError, KeyError, ValueError, TypeError) as exc:
        raise WireError(f"malformed search answer from the directory ({type(exc).__name__})") from None


def _search_result(messages: list[dict[str, Any]], paged: bool) -> Result:
    entries: list[tuple[str, dict[str, list[bytes]]]] = []
    done: Result | None = None
    for message in messages:
        operation, payload = message["protocolOp"], message["payload"]
        if operation == _SEARCH_ENTRY:
            raw: dict[str, list[bytes]] = {}
            for attribute in payload[1][3]:
                type_, values = attribute[3]
                raw[bytes(type_[3]).decode("utf-8")] = [bytes(v[3]) for v in values[3]]
            entries.append((bytes(payload[0][3]).decode("utf-8"), raw))
        elif operation == _SEARCH_DONE:
            done = _result(payload)
            done.cookie = _paged_cookie(message["controls"]) if paged else b""
        elif operation != _SEARCH_REFERENCE:
            raise WireError(f"unexpected LDAP operation {operation} in a search answer")
    if done is None:  # _read_messages returns once the searchResDone is in
        raise WireError("search answer without searchResDone")
    done.entries = entries
    return done


def _paged_cookie(controls: list[Any] | None) -> bytes:
    """The cookie of the paged results control of a searchResDone (RFC 2696 §2), or b""."""
    for control in controls or []:
        parts = control[3]
        if bytes(parts[0][3]) != PAGED_RESULTS.encode():
            continue
        value = parts[-1]
        if value[2] != 4:  # no controlValue
            return b""
        encoded = bytes(value[3])
        (sequence,) = decode_sequence(encoded, 0, len(encoded))
        return bytes(sequence[3][1][3])
    return b""
