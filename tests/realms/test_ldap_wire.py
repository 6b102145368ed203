"""The hand-written LDAP requests (realms.registries.ldap.wire) are byte for byte ldap3's.

ldap3 itself encodes the reference: a real ``Connection.search()`` / ``Connection.bind()``
whose encoded message is captured where ldap3 would write it to the socket. Values are any
text (non-ASCII, RFC 4515 metacharacters, NUL), written into ldap3's filter string escaped
with ldap3's ``escape_filter_chars``: the one thing ldap3 does that the wire encoder does not is
strip outer whitespace off filter values, and no value the registry sends has any (usernames
are refused with it, DNs end with the base DN).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ldap3 import NONE, SIMPLE, SYNC, Connection, Server
from ldap3.core.exceptions import LDAPSASLPrepError
from ldap3.protocol.sasl.sasl import validate_simple_password
from ldap3.utils.conv import escape_filter_chars
from pyasn1.codec.ber.encoder import encode

from realms.errors import RegistryTooManyGroups, RegistryUnavailable
from realms.registries.ldap import wire
from realms.registries.ldap.registry import LdapRegistry
from tests.ldap_harness import SlapdServer, _parse_request, _response
from tests.loopback import HOST, AcceptLoop, Forwarder

METACHARACTERS = "*()\\\x00=<>~&|!:, \u00e9\u00df\u4e2d\U0001f600\u200b\u00a0"
values = st.text(st.characters(codec="utf-8") | st.sampled_from(METACHARACTERS), min_size=1, max_size=40).filter(
    lambda v: v == v.strip()
)
names = st.sampled_from(["uid", "cn", "member", "uniqueMember", "memberUid", "objectClass", "mail"])


class _Sent(Exception):
    pass


def _ldap3_bytes(call: Any) -> tuple[bytes, int]:
    """What ``call(conn)`` makes ldap3 write to the socket, and the message id it used."""
    conn = Connection(
        Server("127.0.0.1", get_info=NONE),
        client_strategy=SYNC,
        auto_referrals=False,
        raise_exceptions=False,
        read_only=True,
        check_names=False,
    )
    sent: list[bytes] = []

    def sending(message: Any) -> None:
        sent.append(encode(message))
        raise _Sent

    conn.strategy.sending = sending
    conn.strategy._outstanding = {}
    conn.listening = True
    conn.closed = False
    with pytest.raises(_Sent):
        call(conn)
    (message,) = sent
    return message, int(Server._message_counter)  # type: ignore[attr-defined]


def _filter_string(attribute: str, value: str) -> str:
    return f"({attribute}={escape_filter_chars(value)})"


@given(
    user_class=names,
    attribute=names,
    value=values,
    base=values,
    attributes=st.lists(names, max_size=4),
    size_limit=st.integers(0, 2**31 - 1),
)
def test_user_search_is_ldap3s_bytes(
    user_class: str, attribute: str, value: str, base: str, attributes: list[str], size_limit: int
) -> None:
    text = f"(&{_filter_string('objectClass', user_class)}{_filter_string(attribute, value)})"
    expected, message_id = _ldap3_bytes(
        lambda conn: conn.search(base, text, "SUBTREE", attributes=attributes, size_limit=size_limit)
    )
    ours = wire.all_of(wire.equality("objectClass", user_class), wire.equality(attribute, value))
    assert wire.search_request(message_id, base, "SUBTREE", ours, attributes, size_limit) == expected


@given(
    classes=st.lists(names, min_size=1, max_size=3),
    dns=st.lists(values, min_size=1, max_size=4),
    scope=st.sampled_from(["BASE", "LEVEL", "SUBTREE"]),
    page_size=st.integers(1, 100_001),
    cookie=st.binary(max_size=300),
)
def test_paged_group_search_is_ldap3s_bytes(
    classes: list[str], dns: list[str], scope: str, page_size: int, cookie: bytes
) -> None:
    class_text = "(|" + "".join(_filter_string("objectClass", c) for c in classes) + ")"
    terms = "".join(_filter_string("member", d) + _filter_string("uniqueMember", d) for d in dns)
    text = f"(&{class_text}(|{terms}))"
    expected, message_id = _ldap3_bytes(
        lambda conn: conn.search(
            "ou=groups,dc=x", text, scope, attributes=[], size_limit=0, paged_size=page_size, paged_cookie=cookie
        )
    )
    class_filter = wire.any_of(*(wire.equality("objectClass", c) for c in classes))
    ours = wire.all_of(
        class_filter,
        wire.any_of(*(t for d in dns for t in (wire.equality("member", d), wire.equality("uniqueMember", d)))),
    )
    controls = wire.paged_control(page_size, cookie)
    assert wire.search_request(message_id, "ou=groups,dc=x", scope, ours, [], 0, controls) == expected


def _ldap3_bind(dn: str, password: str) -> Any:
    def call(conn: Connection) -> None:
        conn.user, conn.password, conn.authentication = dn, password, SIMPLE
        conn.bind()

    return call


@given(dn=values, password=st.text(min_size=1, max_size=60) | st.text(st.characters(max_codepoint=0x7F), min_size=1))
def test_simple_bind_is_ldap3s_bytes_and_saslprep_is_ldap3s(dn: str, password: str) -> None:
    """Same bytes for every password ldap3 sends; ``LDAPSASLPrepError`` for every one it refuses."""
    try:
        prepared = validate_simple_password(password)
    except LDAPSASLPrepError:
        with pytest.raises(LDAPSASLPrepError):
            wire.simple_password(password)
        return
    assert wire.simple_password(password) == prepared
    expected, message_id = _ldap3_bytes(_ldap3_bind(dn, password))
    assert wire.bind_request(message_id, dn, wire.simple_password(password)) == expected


@pytest.mark.parametrize(
    "password", ["a\x7fb", "tab\there", "new\nline", "\x1b[0m", "caf\u00e9", "\u00a0spaced", "x\u200by", "\u0627b"]
)
def test_the_ascii_shortcut_never_passes_what_saslprep_changes_or_refuses(password: str) -> None:
    try:
        prepared: bytes | None = validate_simple_password(password)
    except LDAPSASLPrepError:
        prepared = None
    if prepared is None:
        with pytest.raises(LDAPSASLPrepError):
            wire.simple_password(password)
    else:
        assert wire.simple_password(password) == prepared


@given(size=st.integers(0, 2**31 - 1) | st.sampled_from([0, 127, 128, 255, 256, 65535, 65536]))
def test_lengths_and_integers_cross_every_boundary(size: int) -> None:
    expected, message_id = _ldap3_bytes(lambda conn: conn.search("x" * (size % 70000), "(a=b)", size_limit=size))
    assert wire.search_request(message_id, "x" * (size % 70000), "SUBTREE", wire.equality("a", "b"), [], size) == (
        expected
    )


@pytest.mark.slapd
def test_filter_metacharacters_in_a_name_match_only_that_literal_name(slapd: SlapdServer, open_registry: Any) -> None:
    """A name made of filter syntax finds nobody: it is one AssertionValue, never filter text.
    Without that, "*" would match every user and ")(uid=john" would add a term."""
    registry = open_registry(slapd.realm_table("jobmgr"))
    assert isinstance(registry, LdapRegistry)
    for name in ("*", "jo*", "john)(uid=*", "*)(|(uid=*", "john\\2a", "john\\"):
        assert registry.lookup(name) is None, name
    assert registry.lookup("john") is not None


class _Peer:
    """A connection-shaped end of a socket pair; the test plays the directory on the other end."""

    def __init__(self) -> None:
        self.socket, self.server = socket.socketpair()
        self.closed = False

    def answer(self, data: bytes, *, close: bool = False) -> None:
        self.server.sendall(data)
        if close:
            self.server.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.socket.close()
        self.server.close()


@pytest.fixture
def peer() -> Iterator[_Peer]:
    made = _Peer()
    yield made
    made.close()


def _done(message_id: int, code: int = 0, controls: bytes = b"") -> bytes:
    result = wire._integer(code, 0x0A) + wire._octets(b"") + wire._octets(b"")
    return wire._message(message_id, wire._tlv(0x65, result), controls)


def _entry(message_id: int, dn: bytes, attrs: dict[bytes, list[bytes]]) -> bytes:
    body = b"".join(
        wire._tlv(0x30, wire._octets(k) + wire._tlv(0x31, b"".join(wire._octets(v) for v in vs)))
        for k, vs in attrs.items()
    )
    return wire._message(message_id, wire._tlv(0x64, wire._octets(dn) + wire._tlv(0x30, body)))


def _reference(message_id: int) -> bytes:
    return wire._message(message_id, wire._tlv(0x73, wire._octets(b"ldap://elsewhere/")))


def _search(
    peer: _Peer, answer: Callable[[int], bytes], *, close: bool = False, page: bool = False, max_entries: int = 10
) -> wire.Result:
    message_id = int(Server._message_counter) + 1  # type: ignore[attr-defined]
    peer.answer(answer(message_id), close=close)
    conn = cast(Connection, peer)
    page_ = (10, b"") if page else None
    return wire.search(conn, "dc=x", "SUBTREE", wire.equality("a", "b"), [], 0, max_entries, page_)


def test_entries_references_and_the_paged_cookie_are_read(peer: _Peer) -> None:
    cookie_value = wire._tlv(0x30, wire._integer(0) + wire._octets(b"next"))
    control = wire._tlv(0x30, wire._octets(wire.PAGED_RESULTS) + wire._octets(cookie_value))

    result = _search(
        peer,
        lambda i: _entry(i, b"cn=a,dc=x", {b"cn": [b"a", b"\xc3\xa9"]}) + _reference(i) + _done(i, 0, control),
        page=True,
    )
    assert (result.code, result.cookie) == (0, b"next")
    assert result.entries == [("cn=a,dc=x", {"cn": [b"a", b"\xc3\xa9"]})]


@pytest.mark.parametrize(
    ("answer", "close"),
    [
        (lambda i: _done(0), False),  # an unsolicited notification (notice of disconnection)
        (lambda i: _done(i + 7), False),  # somebody else's answer
        (lambda i: b"\x31\x03\x02\x01\x01", False),  # not an LDAPMessage
        (lambda i: b"\x30\x84\x7f\xff\xff\xff", False),  # 2 GiB announced
        (lambda i: _done(i)[:-2], True),  # cut short, then the connection closed
        (lambda i: _done(i) + b"\x30\x00", False),  # more than the answer
        (lambda i: wire._message(i, wire._tlv(0x65, b"\x0a\x01")), False),  # a result without its fields
        (lambda i: wire._message(i, wire._tlv(0x79, b"")), False),  # an operation a search never answers
    ],
    ids=["notice", "other-id", "not-a-message", "oversized", "cut-short", "trailing", "bad-result", "wrong-op"],
)
def test_answers_out_of_protocol_are_connection_failures(
    peer: _Peer, answer: Callable[[int], bytes], close: bool
) -> None:
    """Each is a ``WireError`` (an ``LDAPException``: the registry's outage path, and the pool
    drops the connection), never a crash or a wrong verdict."""
    with pytest.raises(wire.WireError):
        _search(peer, answer, close=close)


def test_a_dn_that_is_not_utf8_is_a_value_error_not_a_connection_failure(peer: _Peer) -> None:
    with pytest.raises(UnicodeDecodeError):
        _search(peer, lambda i: _entry(i, b"cn=\xff,dc=x", {}) + _done(i))


def _answer(layout: list[bool]) -> Callable[[int], bytes]:
    """An answer of entries (True) and references (False) in ``layout``'s order, then searchResDone."""

    def answer(i: int) -> bytes:
        parts = (
            _entry(i, f"cn={n},dc=x".encode(), {}) if is_entry else _reference(i) for n, is_entry in enumerate(layout)
        )
        return b"".join(parts) + _done(i)

    return answer


@given(max_entries=st.integers(0, 4), layout=st.lists(st.booleans(), max_size=12))
def test_a_search_answer_is_read_up_to_max_entries_and_refused_past_them(max_entries: int, layout: list[bool]) -> None:
    """Up to ``max_entries`` entries (references do not count) the answer is the result; one
    more is ``TooManyEntries``, a ``WireError``. Without the bound every answer is read whole,
    however many entries a directory streams."""
    peer = _Peer()
    try:
        if sum(layout) > max_entries:
            with pytest.raises(wire.TooManyEntries):
                _search(peer, _answer(layout), max_entries=max_entries)
        else:
            result = _search(peer, _answer(layout), max_entries=max_entries)
            assert [dn for dn, _ in result.entries] == [f"cn={n},dc=x" for n, e in enumerate(layout) if e]
    finally:
        peer.close()


def test_reading_stops_at_the_first_entry_past_the_bound(peer: _Peer) -> None:
    """The answer never ends (no searchResDone, the connection stays open): the search stops at
    the entry past the bound, without waiting for more. Without the bound it would wait for
    the rest; the socket's timeout only bounds that hang (it would be a plain ``WireError``)."""
    peer.socket.settimeout(30)
    with pytest.raises(wire.TooManyEntries) as raised:
        _search(peer, lambda i: b"".join(_entry(i, b"cn=e,dc=x", {}) for _ in range(3)), max_entries=2)
    assert raised.value.max_entries == 2


def test_references_are_not_kept_and_are_bounded(peer: _Peer) -> None:
    """Skipped references are not stored, and a stream of them ends the read like a stream of
    entries: a thread is not held for ever by an answer that never gets to its end."""
    result = _search(peer, _answer([False] * wire.MAX_REFERENCES + [True]), max_entries=1)
    assert [dn for dn, _ in result.entries] == [f"cn={wire.MAX_REFERENCES},dc=x"]
    with pytest.raises(wire.WireError, match="references") as raised:
        _search(peer, _answer([False] * (wire.MAX_REFERENCES + 1)), max_entries=1)
    assert not isinstance(raised.value, wire.TooManyEntries)


def _paged_done(message_id: int, cookie: bytes) -> bytes:
    value = wire._tlv(0x30, wire._integer(0) + wire._octets(cookie))
    return _done(message_id, 0, wire._tlv(0x30, wire._octets(wire.PAGED_RESULTS) + wire._octets(value)))


class _GroupFlood(AcceptLoop):
    """A directory that finds eve, lets her bind, and answers her group search with ``groups``
    entries and then nothing, the connection left open (an answer without end); or, with
    ``empty_pages``, that many empty pages, each with a cookie for the next, and then nothing.
    Each connection is served on its own thread (the registry holds two: service and bind)."""

    def __init__(self, groups: int = 0, empty_pages: int = 0) -> None:
        self.groups, self.empty_pages = groups, empty_pages
        super().__init__(accept_timeout=0.2)
        self.url = f"ldap://127.0.0.1:{self.port}"

    def handle(self, conn: socket.socket) -> None:
        threading.Thread(target=self._talk, args=(conn.dup(),), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        with conn:
            try:
                while data := conn.recv(65536):
                    request = _parse_request(data)
                    if request is None:
                        continue
                    message_id, tag = int.from_bytes(request[0], "big"), request[1]
                    if tag != 0x63:
                        conn.sendall(_response(request[0], tag, 0))
                    elif wire.PAGED_RESULTS.encode() not in data:  # the user search
                        conn.sendall(
                            _entry(message_id, b"uid=eve,ou=people,dc=x", {b"uid": [b"eve"]}) + _done(message_id)
                        )
                    elif self.empty_pages:
                        self.empty_pages -= 1
                        conn.sendall(_paged_done(message_id, b"more"))
                    elif self.groups:  # a page of the group search
                        dns = (f"cn=g{n},ou=groups,dc=x".encode() for n in range(self.groups))
                        conn.sendall(b"".join(_entry(message_id, dn, {}) for dn in dns))
            except OSError:
                pass


def _eve_logs_in_at(flood: _GroupFlood, open_registry: Any) -> None:
    """eve's login on a registry (``max_groups`` 3) whose directory is ``flood``; then it closes."""
    table = {
        "type": "ldap",
        "url": flood.url,
        "bind_dn": "cn=sts,dc=x",
        "bind_password": "pw",
        "user_base": "ou=people,dc=x",
        "group_base": "ou=groups,dc=x",
        "group_mode": "member",
        "max_groups": 3,
        "receive_timeout": 5,
    }
    try:
        open_registry({"name": "flood", "registry": table}).authenticate("eve", "eve-password")
    finally:
        flood.close()


def test_a_group_search_that_floods_is_read_only_up_to_max_groups(open_registry: Any) -> None:
    """The group search stops one entry past ``max_groups`` and refuses with
    ``ldap.too_many_groups`` (the directory may have ignored the non-critical paged control:
    that alone is no fault). Without the bound the registry would wait for the rest of the
    answer until ``receive_timeout``: an outage, not this refusal."""
    with pytest.raises(RegistryTooManyGroups, match="max_groups"):
        _eve_logs_in_at(_GroupFlood(groups=50), open_registry)


def test_empty_pages_without_end_are_an_outage(open_registry: Any) -> None:
    """Empty pages, each with a cookie for the next, count too: more than ``max_groups`` + 1
    pages is out of protocol. Without the bound the registry would ask for page after page for
    ever (here: until the directory stops answering, a timeout, not this outage)."""
    with pytest.raises(RegistryUnavailable, match="more than 4 pages"):
        _eve_logs_in_at(_GroupFlood(empty_pages=10), open_registry)


def test_one_answer_is_bounded_in_bytes_too(peer: _Peer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Few entries, each large: the answer's size is bounded as well as their number (the
    bound lowered here so the test sends kilobytes, not the real 64 MiB)."""
    monkeypatch.setattr(wire, "MAX_ANSWER_BYTES", 8192)
    big = {b"description": [b"x" * 1000]}
    with pytest.raises(wire.WireError, match="bytes"):
        _search(peer, lambda i: b"".join(_entry(i, b"cn=e,dc=x", big) for _ in range(10)) + _done(i), max_entries=100)
    within = _Peer()
    try:
        assert len(_search(within, lambda i: _entry(i, b"cn=e,dc=x", big) + _done(i), max_entries=100).entries) == 1
    finally:
        within.close()


_SIZE_LIMIT_2 = (
    b"\x0a\x01\x03\x02\x01\x02\x02\x01\x00\x01\x01\x00"  # derefAliases 3, sizeLimit 2, timeLimit 0, typesOnly
)


@pytest.mark.slapd
def test_a_user_search_answered_past_its_size_limit_is_an_outage(slapd: SlapdServer, open_registry: Any) -> None:
    """Real slapd, its user search's sizeLimit 2 rewritten to 0 on the way (a directory that
    ignores it), and a name every user matches: slapd sends every user. Two entries already make
    the name ambiguous; a third breaks the size limit the STS sent (RFC 4511 §4.5.1.5), so the
    reading stops there and the login is ``ldap.unavailable``, like any answer out of protocol.
    Without the bound all entries would be read (and the name called ambiguous)."""
    settings = {"user_attribute": "objectClass", "user_object_class": "inetOrgPerson"}
    direct = open_registry(slapd.realm_table("jobmgr", **settings))
    assert direct.lookup("inetOrgPerson") is None  # slapd keeps to the limit: two entries, ambiguous
    proxy = Forwarder(
        (HOST, slapd.port),
        rewrite=lambda data: data.replace(_SIZE_LIMIT_2, b"\x0a\x01\x03\x02\x01\x00" + _SIZE_LIMIT_2[6:]),
    )
    try:
        flooded = open_registry(slapd.realm_table("jobmgr", url=proxy.url("ldap"), **settings))
        with pytest.raises(RegistryUnavailable, match="more than 2 entries"):
            flooded.lookup("inetOrgPerson")
        with pytest.raises(RegistryUnavailable, match="more than 2 entries"):
            flooded.authenticate("inetOrgPerson", "any-password")
    finally:
        proxy.close()
