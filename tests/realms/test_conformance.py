"""The registry conformance suite: one set of tests, run unchanged against every backend.

The ``ldif`` backend reads tests/ldap/*.ldif; the slapd harness loads the very same files.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from realms.identity.access_id import AccessId, AccessIdKind
from realms.registries.ldif.format import read_ldif
from tests.ldap_harness import seed_files
from tests.realms.conftest import MakeRegistry

JM = "dc=jobmgr,dc=example"
CB = "dc=cellb,dc=example"
CC = "dc=cellc,dc=example"


def user(realm: str, dn: str) -> AccessId:
    return AccessId.user(realm, dn)


def groups(realm: str, base: str, *names: str) -> frozenset[AccessId]:
    return frozenset(AccessId.group(realm, f"cn={n},ou=groups,{base}") for n in names)


def test_login_returns_access_id_groups_and_display_name(make_registry: MakeRegistry) -> None:
    principal = make_registry("jobmgr").authenticate("john", "john-password")
    assert principal is not None
    assert principal.realm == "jobmgr"
    assert principal.username == "john"
    assert principal.access_id == user("jobmgr", f"uid=john,ou=people,{JM}")
    assert str(principal.access_id) == "user:jobmgr/uid=john,ou=people,dc=jobmgr,dc=example"
    assert principal.display_name == "John (jobmgr)"
    # operators directly, ops-all through nesting (cn=operators is a member of cn=ops-all)
    assert principal.groups == groups("jobmgr", JM, "operators", "ops-all")


@pytest.mark.parametrize(
    ("username", "expected"),
    [
        ("admin", ("jm-admins",)),  # {SSHA}
        ("john", ("operators", "ops-all")),  # {SSHA256}
        ("user1", ("operators", "ops-all")),  # {SSHA512}
        ("user2", ("operators", "ops-all")),  # {ARGON2}
        ("carol", ("monitors",)),  # groupOfUniqueNames / uniqueMember
    ],
)
def test_every_seed_user_and_hash_scheme(make_registry: MakeRegistry, username: str, expected: tuple[str, ...]) -> None:
    principal = make_registry("jobmgr").authenticate(username, f"{username}-password")
    assert principal is not None
    assert principal.groups == groups("jobmgr", JM, *expected)


def test_username_matches_case_insensitively_and_reports_the_directory_spelling(make_registry: MakeRegistry) -> None:
    principal = make_registry("jobmgr").authenticate("JoHn", "john-password")
    assert principal is not None
    assert principal.username == "john"
    assert principal.access_id == user("jobmgr", f"uid=john,ou=people,{JM}")


@pytest.mark.parametrize(
    ("username", "password"),
    [("john", "wrong"), ("john", "JOHN-PASSWORD"), ("john", "john-password "), ("nobody", "nobody-password")],
)
def test_bad_credentials_give_none(make_registry: MakeRegistry, username: str, password: str) -> None:
    assert make_registry("jobmgr").authenticate(username, password) is None


def test_locked_account_is_refused_and_not_found_by_lookup(make_registry: MakeRegistry) -> None:
    registry = make_registry("jobmgr")
    assert registry.authenticate("alice", "alice-password") is None
    assert registry.lookup("alice") is None


def test_lookup_without_password(make_registry: MakeRegistry) -> None:
    registry = make_registry("jobmgr")
    principal = registry.lookup("john")
    assert principal is not None
    assert principal.groups == groups("jobmgr", JM, "operators", "ops-all")
    assert registry.lookup("nobody") is None


def test_same_uid_in_another_realm_is_another_principal(make_registry: MakeRegistry) -> None:
    jm = make_registry("jobmgr").authenticate("john", "john-password")
    cb = make_registry("cellB").authenticate("john", "john-password")
    assert jm is not None and cb is not None
    assert cb.access_id == user("cellB", f"uid=john,ou=people,{CB}")
    assert jm.access_id != cb.access_id
    assert cb.groups == frozenset()
    bob = make_registry("cellB").authenticate("bob", "bob-password")
    assert bob is not None and bob.groups == groups("cellB", CB, "cell-ops", "cell-all")


def test_ambiguous_match_is_refused(make_registry: MakeRegistry) -> None:
    # Two entries carry uid=dup with the same password: neither may log in as "dup".
    registry = make_registry("cellC")
    assert registry.authenticate("dup", "dup-password") is None
    assert registry.lookup("dup") is None


def test_nested_chain_and_cycle_resolve_fully_by_default(make_registry: MakeRegistry) -> None:
    principal = make_registry("cellC").authenticate("grace", "grace-password")
    assert principal is not None
    chain = [f"c-chain-{i}" for i in range(1, 7)]
    assert principal.groups == groups("cellC", CC, *chain, "c-cycle-a", "c-cycle-b")


def test_depth_limit_stops_expansion(make_registry: MakeRegistry) -> None:
    principal = make_registry("cellC", max_depth=2).authenticate("grace", "grace-password")
    assert principal is not None
    # direct: c-chain-1, c-cycle-a; level 1: c-chain-2, c-cycle-b; level 2: c-chain-3
    assert principal.groups == groups("cellC", CC, "c-chain-1", "c-chain-2", "c-chain-3", "c-cycle-a", "c-cycle-b")


def test_nested_false_gives_direct_groups_only(make_registry: MakeRegistry) -> None:
    principal = make_registry("cellC", nested=False).authenticate("grace", "grace-password")
    assert principal is not None
    assert principal.groups == groups("cellC", CC, "c-chain-1", "c-cycle-a")


def test_unique_id_attribute_gives_the_same_access_ids_on_every_backend(make_registry: MakeRegistry) -> None:
    uuids = {e.dn: e.first("entryUUID") for e in read_ldif(seed_files()["jobmgr"])}
    principal = make_registry("jobmgr", unique_id="entryUUID").authenticate("john", "john-password")
    assert principal is not None
    assert principal.access_id == AccessId.user("jobmgr", str(uuids[f"uid=john,ou=people,{JM}"]))
    assert {g.name for g in principal.groups} == {
        uuids[f"cn=operators,ou=groups,{JM}"],
        uuids[f"cn=ops-all,ou=groups,{JM}"],
    }


def test_posix_groups(make_registry: MakeRegistry) -> None:
    principal = make_registry("cellC", group_mode="posix").authenticate("frank", "frank-password")
    assert principal is not None
    assert principal.groups == groups("cellC", CC, "c-posix")


def test_every_access_id_belongs_to_the_realm(make_registry: MakeRegistry) -> None:
    principal = make_registry("cellC").authenticate("grace", "grace-password")
    assert principal is not None
    for aid in (principal.access_id, *principal.groups):
        assert aid.realm == "cellC"
        assert aid.kind in (AccessIdKind.USER, AccessIdKind.GROUP)


def test_registry_is_safe_to_share_between_threads(make_registry: MakeRegistry) -> None:
    registry = make_registry("jobmgr")
    expected = {name: registry.authenticate(name, f"{name}-password") for name in ("admin", "john", "user1", "carol")}
    assert all(expected.values())
    failures: list[str] = []

    def work(name: str) -> Callable[[], None]:
        def run() -> None:
            for _ in range(15):
                if registry.authenticate(name, f"{name}-password") != expected[name]:
                    failures.append(name)
                if registry.authenticate(name, "wrong") is not None:
                    failures.append(f"{name}/wrong")

        return run

    threads = [threading.Thread(target=work(name)) for name in expected for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
