"""The ``ldap`` registry's connection pools, group closure cache, paged group reads and value
checks, against a private slapd this module may restart and edit."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from ldap3 import Connection, Server

from realms.errors import RegistryRefused, RegistryTooManyGroups, RegistryValueInvalid
from realms.identity.principal import Principal
from realms.registries.base import Registry
from realms.registries.ldap.group_cache import ClosureCache
from realms.registries.ldap.registry import LdapRegistry
from tests.ldap_harness import ROOT_PASSWORD, SlapdServer, seed_files

pytestmark = pytest.mark.slapd
OpenRegistry = Callable[[dict[str, Any]], Registry]
BASE = "dc=jobmgr,dc=example"
JOHN = f"uid=john,ou=people,{BASE}"
MANY = 120  # more than one page of test_paged_group_reads' page size


@pytest.fixture(scope="module")
def own_slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlapdServer]:
    server = SlapdServer(tmp_path_factory.mktemp("pools-slapd"), seeds={"jobmgr": seed_files()["jobmgr"]}).start()
    try:
        yield server
    finally:
        server.stop()


def _root(server: SlapdServer) -> Connection:
    return Connection(Server(server.url), server.root_dn("jobmgr"), ROOT_PASSWORD, auto_bind=True)


def _ldap_registry(open_registry: OpenRegistry, server: SlapdServer, **settings: Any) -> LdapRegistry:
    registry = open_registry(server.realm_table("jobmgr", **settings))
    assert isinstance(registry, LdapRegistry)
    return registry


def _group_names(principal: Principal | None) -> set[str]:
    assert principal is not None
    return {g.name.split(",")[0].removeprefix("cn=") for g in principal.groups}


def test_logins_work_at_once_after_the_directory_restarts(own_slapd: SlapdServer, open_registry: OpenRegistry) -> None:
    """Every pooled connection died with the old slapd. The first login after the restart
    succeeds: dead idle connections are found before use and all of them are replaced (a user
    bind is never sent on a dead connection, so it never needs a retry)."""
    registry = _ldap_registry(open_registry, own_slapd, pool_size=4)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: registry.authenticate("john", "john-password"), range(12)))
    assert all(results)
    assert registry.service_pool.idle() and registry.bind_pool.idle()
    own_slapd.terminate()
    own_slapd._run()  # the same ports again: a restart, not a move
    assert registry.authenticate("john", "john-password") is not None
    assert registry.authenticate("john", "wrong-password") is None
    assert registry.lookup("john") is not None


@pytest.fixture
def nested_pair(own_slapd: SlapdServer, request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """``child`` (john is a member) inside ``parent``; names unique to the test."""
    tag = request.node.name.replace("[", "-").replace("]", "").replace("_", "-")[-40:]
    child, parent = f"cn=child-{tag},ou=groups,{BASE}", f"cn=parent-{tag},ou=groups,{BASE}"
    conn = _root(own_slapd)
    try:
        conn.add(child, ["groupOfNames"], {"cn": f"child-{tag}", "member": [JOHN]})
        conn.add(parent, ["groupOfNames"], {"cn": f"parent-{tag}", "member": [child]})
        yield child, parent
    finally:
        conn.delete(parent)
        conn.delete(child)
        conn.unbind()


@pytest.mark.parametrize("mode", ["member", "memberOf"])
def test_nested_changes_wait_for_the_cache_but_own_memberships_are_live(
    own_slapd: SlapdServer, open_registry: OpenRegistry, nested_pair: tuple[str, str], mode: str
) -> None:
    child, parent = nested_pair
    registry = _ldap_registry(open_registry, own_slapd, group_mode=mode, group_cache_seconds=3600)
    first = _group_names(registry.authenticate("john", "john-password"))
    assert {child.split(",")[0][3:], parent.split(",")[0][3:]} <= first
    conn = _root(own_slapd)
    try:
        conn.modify(parent, {"member": [("MODIFY_REPLACE", [f"cn=monitors,ou=groups,{BASE}"])]})
        # The nesting changed: within group_cache_seconds the cached closure still holds it.
        assert _group_names(registry.authenticate("john", "john-password")) == first
        # The user's own membership changed: seen at the very next login.
        conn.modify(child, {"member": [("MODIFY_REPLACE", [f"uid=user2,ou=people,{BASE}"])]})
        after = _group_names(registry.authenticate("john", "john-password"))
    finally:
        conn.unbind()
    assert child.split(",")[0][3:] not in after
    assert parent.split(",")[0][3:] not in after


@pytest.mark.parametrize("mode", ["member", "memberOf"])
def test_group_cache_seconds_zero_reads_nesting_live(
    own_slapd: SlapdServer, open_registry: OpenRegistry, nested_pair: tuple[str, str], mode: str
) -> None:
    _child, parent = nested_pair
    registry = _ldap_registry(open_registry, own_slapd, group_mode=mode, group_cache_seconds=0)
    assert parent.split(",")[0][3:] in _group_names(registry.authenticate("john", "john-password"))
    conn = _root(own_slapd)
    try:
        conn.modify(parent, {"member": [("MODIFY_REPLACE", [f"cn=monitors,ou=groups,{BASE}"])]})
    finally:
        conn.unbind()
    assert parent.split(",")[0][3:] not in _group_names(registry.authenticate("john", "john-password"))


def test_closure_cache_expires_and_is_bounded() -> None:
    now = [0.0]
    cache: ClosureCache[str] = ClosureCache(10, max_entries=2, clock=lambda: now[0])
    cache.put("a", "A")
    cache.put("b", "B")
    assert cache.get("a") == "A"
    cache.put("c", "C")  # "b" is the least recently used
    assert (cache.get("b"), len(cache)) == (None, 2)
    now[0] = 10.0
    assert cache.get("a") is None
    off: ClosureCache[str] = ClosureCache(0)
    off.put("a", "A")
    assert off.get("a") is None


@pytest.fixture(scope="module")
def many_groups(own_slapd: SlapdServer) -> Iterator[str]:
    """``user2`` is in MANY extra groups."""
    bob = f"uid=user2,ou=people,{BASE}"
    names = [f"cn=many-{i},ou=groups,{BASE}" for i in range(MANY)]
    conn = _root(own_slapd)
    try:
        for i, dn in enumerate(names):
            conn.add(dn, ["groupOfNames"], {"cn": f"many-{i}", "member": [bob]})
        yield bob
    finally:
        for dn in names:
            conn.delete(dn)
        conn.unbind()


@pytest.mark.parametrize("mode", ["member", "memberOf"])
def test_paged_group_reads_return_every_group(
    own_slapd: SlapdServer, open_registry: OpenRegistry, many_groups: str, mode: str
) -> None:
    registry = _ldap_registry(open_registry, own_slapd, group_mode=mode)
    registry.search.page_size = 50  # three pages
    names = _group_names(registry.authenticate("user2", "user2-password"))
    assert {f"many-{i}" for i in range(MANY)} <= names


@pytest.mark.parametrize("mode", ["member", "memberOf"])
def test_more_groups_than_max_groups_is_a_refusal_not_an_outage(
    own_slapd: SlapdServer, open_registry: OpenRegistry, many_groups: str, mode: str
) -> None:
    registry = _ldap_registry(open_registry, own_slapd, group_mode=mode, max_groups=MANY - 20)
    registry.search.page_size = 50
    with pytest.raises(RegistryTooManyGroups, match="max_groups") as raised:
        registry.authenticate("user2", "user2-password")
    assert (raised.value.status, raised.value.oauth_error) == (400, "invalid_grant")
    # A wrong password still gets the wrong-password answer, never the group count.
    assert registry.authenticate("user2", "wrong-password") is None


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("group", "ops\x07bell"),
        ("group", "ops\x85next-line"),
        ("user", "carol\x1b[31m"),
    ],
)
def test_directory_values_that_are_not_text_are_refused(
    own_slapd: SlapdServer, open_registry: OpenRegistry, where: str, value: str
) -> None:
    """A control character in a group's or the user's name is refused with ldap.value_invalid
    (after the password was checked), never passed on, repaired or answered with a 500."""
    conn = _root(own_slapd)
    if where == "group":
        dn = f"cn={_escape(value)},ou=groups,{BASE}"
        assert conn.add(dn, ["groupOfNames"], {"cn": value, "member": [JOHN]}), conn.result
        username, password = "john", "john-password"
    else:
        dn = f"uid=u{len(value)},ou=people,{BASE}"
        attrs = {"uid": ["u-ctl", value], "cn": "x", "sn": "x", "userPassword": "pw-ctl"}
        assert conn.add(dn, ["inetOrgPerson"], attrs), conn.result
        username, password = "u-ctl", "pw-ctl"
    try:
        for mode in ("member", "memberOf"):
            registry = _ldap_registry(open_registry, own_slapd, group_mode=mode)
            assert registry.authenticate(username, "wrong-password") is None
            with pytest.raises(RegistryValueInvalid) as raised:
                registry.authenticate(username, password)
            assert isinstance(raised.value, RegistryRefused) and raised.value.status == 400
    finally:
        conn.delete(dn)
        conn.unbind()


def _escape(value: str) -> str:
    """RFC 4514 §2.4 hex escapes, one per UTF-8 byte, for the control characters."""
    return "".join(
        "".join(f"\\{b:02x}" for b in c.encode()) if ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F else c for c in value
    )


def test_attribute_values_that_are_not_utf8_are_refused() -> None:
    from realms.registries.ldap.values import decode_entry, text_problem

    assert text_problem(b"\xff\xfe") == "not valid UTF-8 (byte 0)"
    assert text_problem(b"\xed\xa0\x80") is not None  # an encoded surrogate (CESU-8), not UTF-8
    assert text_problem("Zoë Ωmega".encode()) is None
    entry = decode_entry(JOHN, {"cn": [b"ok", b"bad\xc3"], "displayName": [b"\x00"]})
    assert entry.attrs == {"cn": ["ok"], "displayname": []}
    assert entry.problem() is not None and entry.problem(ignore=("cn", "displayname")) is None
