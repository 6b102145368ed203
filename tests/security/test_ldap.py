"""Attacks on password login through a real directory.

The STS here is the real app with its realms on the harness slapd (``tests/ldap_harness.py``);
logins go through ``POST /realms/<realm>/token``. Registry-level unit tests are in
tests/realms/test_bad_input.py and test_conformance.py; this module attacks the HTTP boundary
and adds what only a live directory shows: the operations a login costs, referrals and StartTLS
on the wire. (The wall-clock view of the same property is bench/login_timing.py.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from ldap3 import Connection, Server

from realms.config import load_realms
from realms.errors import JobstsError, RegistryTooManyGroups, UnavailableError
from realms.registries.base import Registry
from tests.ldap_harness import ROOT_PASSWORD, FakeDirectory, SlapdServer, _parse_request, seed_files
from tests.ldap_proxy import LdapOpProxy
from tests.security.conftest import ldap_app

pytestmark = [pytest.mark.slapd, pytest.mark.db]
BIND_REQUEST = 0x60


@pytest.fixture
def app(tmp_path: Path, database_url: str, slapd: SlapdServer) -> Iterator[Flask]:
    tables = [slapd.realm_table(realm) for realm in ("jobmgr", "cellB", "cellC")]
    application = ldap_app(tmp_path, database_url, tables)
    yield application
    application.extensions["jobsts"].close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def login(client: FlaskClient, username: str, password: str, realm: str = "jobmgr") -> tuple[int, Any]:
    response = client.post(
        f"/realms/{realm}/token", data={"grant_type": "password", "username": username, "password": password}
    )
    return response.status_code, response.get_json()


# SASLprep (RFC 4013) maps RFC 3454 B.1 characters to nothing and C.1.2 spaces to U+0020.
VANISHING = [
    "",
    " ",
    "   ",
    "\t",
    "\n",
    "\u00a0",
    "\u2003",
    "\u3000",
    "\u00ad",
    "\u200b",
    "\u2060",
    "\ufeff",
    "\u180e",
    "\u034f",
    "\u200b\u00ad \u2060",
    "\ufe00",
]


def test_refused_login_answer(client: FlaskClient) -> None:
    """Control: a correct password works, and a wrong one is the single refusal answer."""
    assert login(client, "john", "john-password")[0] == 200
    status, body = login(client, "john", "wrong-password")
    assert status == 400 and body["error"] == "invalid_grant", body


@pytest.mark.parametrize("password", VANISHING, ids=lambda p: repr(p)[1:-1] or "empty")
def test_empty_whitespace_and_saslprep_empty_passwords(client: FlaskClient, password: str) -> None:
    """RFC 4513 §5.1.2: the harness slapd accepts unauthenticated binds (DN + empty password),
    as many servers do; none of these may log in or differ from a wrong password."""
    wrong = login(client, "john", "wrong-password")
    assert login(client, "john", password) == wrong


@pytest.mark.parametrize(
    "password",
    ["a\u180eb", "pass\x85word", "\ue000secret", "x\U000e0001y", "pass\u200eword"],
    ids=["mongolian-vowel-separator", "NEL", "private-use", "tag", "LRM"],
)
def test_passwords_saslprep_prohibits_are_wrong_passwords_not_outages(client: FlaskClient, password: str) -> None:
    """RFC 4013 §2.3: ldap3 will not send these; that must read as a wrong password (400), not
    as a directory outage (503) that a caller could trigger at will."""
    assert login(client, "john", password) == login(client, "john", "wrong-password")


@pytest.mark.parametrize(
    "username",
    [
        "*",
        "jo*",
        "j*n",
        "*)(uid=*",
        "john)(|(uid=*",
        "john)(objectClass=*",
        "admin)(&",
        "\\2a",
        "john\\",
        "(uid=john)",
        "uid=john,ou=people,dc=jobmgr,dc=example",
        "john,ou=people,dc=jobmgr,dc=example",
        "cn=sts,ou=services,dc=jobmgr,dc=example",
        "john\x00",
        "john\x00admin",
        " john",
        "john ",
        "jo\u200bhn",
    ],
)
def test_filter_and_dn_injection_never_logs_in(client: FlaskClient, username: str) -> None:
    """RFC 4515 §3 escaping: an unescaped ``jo*`` would find john and bind with his password."""
    wrong = login(client, "john", "wrong-password")
    for password in ("john-password", "sts-password", "admin-password"):
        assert login(client, username, password) == wrong, (username, password)


def test_unknown_wrong_locked_and_ambiguous_get_one_answer(client: FlaskClient) -> None:
    answers = {
        "unknown user": login(client, "nobody-here", "nobody-password"),
        "wrong password": login(client, "john", "wrong-password"),
        "locked account, right password": login(client, "alice", "alice-password"),
        "ambiguous name (cellC dup)": login(client, "dup", "dup-password", realm="cellC"),
    }
    assert len({repr(answer) for answer in answers.values()}) == 1, answers


@pytest.fixture
def counted(slapd: SlapdServer) -> Iterator[LdapOpProxy]:
    """The harness slapd behind a loopback proxy that counts the requests clients send."""
    proxy = LdapOpProxy(slapd.port)
    try:
        yield proxy
    finally:
        proxy.close()


def _directory_work(proxy: LdapOpProxy, registry: Registry, username: str, password: str) -> list[tuple[str, str]]:
    """The requests one refused login sends, each as (pooled or new connection, operation)."""
    ops_before, connections_before = len(proxy.ops), proxy.connections
    assert registry.authenticate(username, password) is None
    opened = range(connections_before + 1, proxy.connections + 1)
    proxy.wait_ended(opened)  # a per-login connection's unbind is counted once it has closed
    return [("new" if op.connection in opened else "pooled", op.name) for op in proxy.ops[ops_before:]]


def test_unknown_wrong_locked_and_ambiguous_cost_the_same_directory_work(
    slapd: SlapdServer, counted: LdapOpProxy, tmp_path: Path
) -> None:
    """No user enumeration by timing (CWE-208; OWASP ASVS V2.2), proven by counting instead of
    timing: an unknown user, a wrong password, a locked account and an ambiguous name each send
    exactly one search (on the pooled service connection) and one bind (on a pooled bind-only
    connection). Without the decoy bind, unknown, locked and ambiguous logins would skip the
    bind and answer one round trip sooner than a wrong password."""
    tables = [slapd.realm_table(realm, url=counted.url) for realm in ("jobmgr", "cellC")]
    realms = load_realms(tables, tmp_path)
    registries = {name: realms[name].open_registry() for name in ("jobmgr", "cellC")}
    cases = {
        "unknown user": ("jobmgr", "nosuchuser", "some-password"),
        "wrong password": ("jobmgr", "john", "wrong-password"),
        "locked account, right password": ("jobmgr", "alice", "alice-password"),
        "ambiguous name": ("cellC", "dup", "dup-password"),
    }
    try:
        for registry in registries.values():  # open the pooled service and bind connections first
            assert registry.authenticate("nosuchuser", "some-password") is None
        work = {
            name: _directory_work(counted, registries[realm], username, password)
            for name, (realm, username, password) in cases.items()
        }
    finally:
        for registry in registries.values():
            registry.close()
    assert counted.errors == []
    expected = [("pooled", "searchRequest"), ("pooled", "bindRequest")]
    assert work == dict.fromkeys(cases, expected), work


def test_referrals_are_never_followed(slapd: SlapdServer, tmp_path: Path, database_url: str) -> None:
    """cellC's ``ou=partners`` is a referral to ``slapd.referral_url``, where the harness holds a
    listener: it must see no connection, so no search and no bind (no password) ever leaves for it."""
    assert slapd.referral is not None
    seen_before = len(slapd.referral.connections)
    partners = f"ou=partners,ou=people,{slapd.base_dn('cellC')}"
    tables = [slapd.realm_table("cellC", user_base=partners)]
    application = ldap_app(tmp_path, database_url, tables)
    try:
        client = application.test_client()
        for username in ("john", "eve"):
            status, body = login(client, username, f"{username}-password", realm="cellC")
            assert status in (400, 503), body
        registry = load_realms([slapd.realm_table("cellC")], tmp_path)["cellC"].open_registry()
        try:
            assert registry.authenticate("john", "john-password") is None  # continuation refs skipped
        finally:
            registry.close()
    finally:
        application.extensions["jobsts"].close()
    assert slapd.referral.connections[seen_before:] == []


def _operations(received: list[bytes]) -> list[int]:
    return [parsed[1] for data in received if (parsed := _parse_request(data)) is not None]


def test_starttls_refusal_is_never_followed_by_a_plaintext_bind(
    slapd: SlapdServer, starttls_refusing_server: FakeDirectory, tmp_path: Path, database_url: str
) -> None:
    table = slapd.realm_table("jobmgr", url=starttls_refusing_server.url, start_tls=True, ca_file=str(slapd.ca_file))
    application = ldap_app(tmp_path, database_url, [table])
    try:
        status, body = login(application.test_client(), "john", "john-password")
    finally:
        application.extensions["jobsts"].close()
    assert status == 503, body
    assert starttls_refusing_server.received, "the directory was never contacted"
    assert BIND_REQUEST not in _operations(starttls_refusing_server.received)
    assert not any(b"john-password" in data or b"sts-password" in data for data in starttls_refusing_server.received)


@pytest.mark.parametrize("kind", ["down", "slow", "busy"])
def test_directory_down_slow_or_busy_is_503_not_a_refusal(
    kind: str, slapd: SlapdServer, request: pytest.FixtureRequest, tmp_path: Path, database_url: str
) -> None:
    url = {
        "down": lambda: request.getfixturevalue("down_ldap_url"),
        "slow": lambda: request.getfixturevalue("slow_ldap_url"),
        "busy": lambda: request.getfixturevalue("busy_directory").url,
    }[kind]()
    table = slapd.realm_table("jobmgr", url=url, connect_timeout=1, receive_timeout=1)
    application = ldap_app(tmp_path, database_url, [table])
    try:
        status, body = login(application.test_client(), "john", "john-password")
    finally:
        application.extensions["jobsts"].close()
    assert status == 503 and body["error"] == "temporarily_unavailable", body


@pytest.fixture(scope="module")
def own_slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlapdServer]:
    """A private slapd (cellC only) that this module may fill with hostile group structures."""
    server = SlapdServer(tmp_path_factory.mktemp("own-slapd"), seeds={"cellC": seed_files()["cellC"]}).start()
    try:
        yield server
    finally:
        server.stop()


HUGE = 520  # more than the harness slapd's sizelimit (500) for the service account


def _add_groups(server: SlapdServer, adder: Callable[[Connection, str], None]) -> None:
    conn = Connection(Server(server.url), server.root_dn("cellC"), ROOT_PASSWORD, auto_bind=True)
    try:
        adder(conn, server.base_dn("cellC"))
    finally:
        conn.unbind()


@pytest.fixture(scope="module")
def hostile_groups(own_slapd: SlapdServer) -> SlapdServer:
    def add(conn: Connection, base: str) -> None:
        frank = f"uid=frank,ou=people,{base}"
        for i in range(HUGE):
            conn.add(f"cn=huge-{i},ou=groups,{base}", ["groupOfNames"], {"cn": f"huge-{i}", "member": [frank]})
        # a three-group cycle, entered from eve's direct group
        cycle = [f"cn=ring-{i},ou=groups,{base}" for i in range(3)]
        conn.add(cycle[0], ["groupOfNames"], {"cn": "ring-0", "member": [f"uid=eve,ou=people,{base}"]})
        conn.add(cycle[1], ["groupOfNames"], {"cn": "ring-1", "member": [cycle[0]]})
        conn.add(cycle[2], ["groupOfNames"], {"cn": "ring-2", "member": [cycle[1]]})
        conn.modify(cycle[0], {"member": [("MODIFY_ADD", [cycle[2]])]})

    _add_groups(own_slapd, add)
    return own_slapd


@pytest.mark.parametrize("mode", ["member", "memberOf"])
def test_cyclic_groups_end(hostile_groups: SlapdServer, tmp_path: Path, mode: str) -> None:
    registry = load_realms([hostile_groups.realm_table("cellC", group_mode=mode)], tmp_path)["cellC"].open_registry()
    try:
        principal = registry.authenticate("eve", "eve-password")  # returns: the cycle ended
    finally:
        registry.close()
    assert principal is not None
    names = {g.name.split(",")[0] for g in principal.groups}
    assert {"cn=ring-0", "cn=ring-1", "cn=ring-2"} <= names


def test_a_huge_group_list_is_never_silently_truncated(hostile_groups: SlapdServer, tmp_path: Path) -> None:
    """frank is in more groups than the directory returns to the service account, even paged
    (RFC 2696; slapd's size limit is 500). A partial list would drop groups a node's table may
    *deny*, so the login must fail closed, with a refusal that names the cause and is not an
    outage (503 would invite retries); read through the memberOf overlay, all groups arrive."""
    results: dict[str, Any] = {}
    for mode in ("member", "memberOf"):
        table = hostile_groups.realm_table("cellC", group_mode=mode)
        registry = load_realms([table], tmp_path)["cellC"].open_registry()
        try:
            results[mode] = registry.authenticate("frank", "frank-password")
        except JobstsError as exc:
            results[mode] = exc
        finally:
            registry.close()
    assert isinstance(results["member"], RegistryTooManyGroups), results["member"]
    assert not isinstance(results["member"], UnavailableError)
    assert "size limit" in results["member"].message
    principal = results["memberOf"]
    assert sum(1 for g in principal.groups if g.name.startswith("cn=huge-")) == HUGE
    small = hostile_groups.realm_table("cellC", group_mode="memberOf", max_groups=HUGE - 1)
    registry = load_realms([small], tmp_path)["cellC"].open_registry()
    try:
        with pytest.raises(RegistryTooManyGroups, match="max_groups"):
            registry.authenticate("frank", "frank-password")
    finally:
        registry.close()


def test_too_many_groups_is_a_documented_400_at_the_token_endpoint(
    slapd: SlapdServer, tmp_path: Path, database_url: str
) -> None:
    """Past ``max_groups`` the token endpoint answers RFC 6749 §5.2 ``invalid_grant`` with the
    registry's own code: not a 500, and not the retry-inviting 503 of an outage. A wrong
    password still gets the one wrong-password answer (the group count is never revealed)."""
    application = ldap_app(tmp_path, database_url, [slapd.realm_table("jobmgr", max_groups=1)])
    try:
        client = application.test_client()
        status, body = login(client, "john", "john-password")
        assert (status, body["error"], body["code"]) == (400, "invalid_grant", "ldap.too_many_groups"), body
        assert "max_groups" in body["error_description"]
        status, body = login(client, "john", "wrong-password")
        assert (status, body["code"]) == (400, "login.failed")
    finally:
        application.extensions["jobsts"].close()
