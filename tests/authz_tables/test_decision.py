"""Decisions: deny wins, then an allow of an implying role, else no; with reasons a person can act on."""

from __future__ import annotations

import pytest
from hypothesis import given

from authz_tables.decision import Snapshot, decide
from authz_tables.entries import NODE_SCOPE, Effect, Entry, Scope
from authz_tables.errors import AuthzDenied
from authz_tables.roles import Role, implies
from realms.identity.access_id import ALL_AUTHENTICATED, EVERYONE, AccessId
from tests.authz_tables.conftest import (
    CELLB_JOHN,
    HR,
    JOHN,
    OPERATORS,
    PAYROLL,
    entry_lists,
    principal_sets,
    roles,
    scope_sets,
)

ALLOW, DENY = Effect.ALLOW, Effect.DENY


def _covers(entry: Entry, scopes: list[Scope]) -> bool:
    return entry.scope.is_node_wide or entry.scope in scopes


def _reference(entries: list[Entry], principals: list[AccessId], required: Role, scopes: list[Scope]) -> bool:
    """The rule of issue 3, item 3, written as plainly as possible."""
    matching = [e for e in entries if e.principal in principals and implies(e.role, required) and _covers(e, scopes)]
    if any(e.effect is DENY for e in matching):
        return False
    return any(e.effect is ALLOW for e in matching)


@given(entry_lists, principal_sets, roles, scope_sets)
def test_decide_follows_the_rule(entries: list[Entry], principals: list[AccessId], required: Role,
                                 scopes: list[Scope]) -> None:  # fmt: skip
    decision = decide(entries, principals, required, scopes)
    assert decision.allowed == _reference(entries, principals, required, scopes)
    assert decision.reason
    for e in decision.granting:
        assert e.effect is ALLOW and e.principal in principals and implies(e.role, required)
    for e in decision.denying:
        assert e.effect is DENY and e.principal in principals and implies(e.role, required)
    if decision.allowed:
        assert decision.granting and not decision.denying


@given(entry_lists, principal_sets, roles, roles, scope_sets)
def test_a_matching_deny_always_wins(entries: list[Entry], principals: list[AccessId], required: Role,
                                     deny_role: Role, scopes: list[Scope]) -> None:  # fmt: skip
    if not implies(deny_role, required):
        return
    deny = Entry(principals[-1], deny_role, DENY, NODE_SCOPE)
    allows = [Entry(p, Role.ADMINISTRATOR, ALLOW, s) for p in principals for s in [NODE_SCOPE, *scopes]]
    decision = decide([*entries, *allows, deny], principals, required, scopes)
    assert not decision.allowed
    assert deny in decision.denying
    assert "a deny wins" in decision.reason


@given(entry_lists, principal_sets, roles, scope_sets, entry_lists)
def test_adding_allows_never_turns_an_allow_into_a_deny(entries: list[Entry], principals: list[AccessId],
                                                        required: Role, scopes: list[Scope],
                                                        more: list[Entry]) -> None:  # fmt: skip
    before = decide(entries, principals, required, scopes)
    allows = [Entry(e.principal, e.role, ALLOW, e.scope) for e in more]
    after = decide(entries + allows, principals, required, scopes)
    if before.allowed:
        assert after.allowed


@given(entry_lists, principal_sets, roles, scope_sets)
def test_the_node_scope_always_covers(
    entries: list[Entry], principals: list[AccessId], required: Role, scopes: list[Scope]
) -> None:
    # The node-wide scope always covers: listing it explicitly changes nothing.
    assert (
        decide(entries, principals, required, scopes).allowed
        == decide(entries, principals, required, [NODE_SCOPE, *scopes]).allowed
    )


def test_node_wide_deny_refuses_inside_every_authgroup() -> None:
    entries = [Entry(OPERATORS, Role.OPERATOR, ALLOW, PAYROLL), Entry(JOHN, Role.OPERATOR, DENY, NODE_SCOPE)]
    assert not decide(entries, [JOHN, OPERATORS], Role.OPERATOR, [PAYROLL]).allowed


def test_authgroup_allow_covers_only_its_group() -> None:
    entries = [Entry(OPERATORS, Role.OPERATOR, ALLOW, PAYROLL)]
    assert decide(entries, [JOHN, OPERATORS], Role.OPERATOR, [PAYROLL]).allowed
    assert not decide(entries, [JOHN, OPERATORS], Role.OPERATOR, [HR]).allowed
    assert not decide(entries, [JOHN, OPERATORS], Role.OPERATOR).allowed


def test_authgroup_deny_does_not_leak_to_other_scopes() -> None:
    entries = [Entry(JOHN, Role.OPERATOR, ALLOW, NODE_SCOPE), Entry(JOHN, Role.OPERATOR, DENY, HR)]
    assert decide(entries, [JOHN], Role.OPERATOR, [PAYROLL]).allowed
    assert not decide(entries, [JOHN], Role.OPERATOR, [HR]).allowed


def test_deny_of_a_higher_role_refuses_the_lower_one() -> None:
    entries = [Entry(JOHN, Role.MONITOR, ALLOW), Entry(OPERATORS, Role.ADMINISTRATOR, DENY)]
    assert not decide(entries, [JOHN, OPERATORS], Role.MONITOR).allowed
    # A deny of monitor refuses monitor, but not operator (it does not imply operator).
    entries = [Entry(JOHN, Role.OPERATOR, ALLOW), Entry(JOHN, Role.MONITOR, DENY)]
    assert not decide(entries, [JOHN], Role.MONITOR).allowed
    assert decide(entries, [JOHN], Role.OPERATOR).allowed


def test_allow_of_an_implying_role_grants_and_incomparable_roles_do_not() -> None:
    entries = [Entry(JOHN, Role.ADMINISTRATOR, ALLOW)]
    for role in Role:
        assert decide(entries, [JOHN], role).allowed
    entries = [Entry(JOHN, Role.OPERATOR, ALLOW)]
    assert not decide(entries, [JOHN], Role.CONFIGURATOR).allowed
    assert not decide(entries, [JOHN], Role.ADMINISTRATOR).allowed
    assert decide(entries, [JOHN], Role.MONITOR).allowed


def test_deny_by_default() -> None:
    assert not decide([], [JOHN, EVERYONE], Role.MONITOR).allowed


@pytest.mark.parametrize(
    "asked",
    [
        "user:jobmgr/UID=john,ou=people,dc=jobmgr,dc=example",  # case folding
        "user:jobmgr/uid=john,ou=people,dc=jobmgr",  # prefix
        "user:jobmgr/uid=john,ou=people,dc=jobmgr,dc=example,dc=x",  # extension
        "user:JOBMGR/uid=john,ou=people,dc=jobmgr,dc=example",  # realm case
        "user:cellB/uid=john,ou=people,dc=cellb,dc=example",  # same uid, other realm
        "group:jobmgr/uid=john,ou=people,dc=jobmgr,dc=example",  # other kind
    ],
)
def test_matching_is_exact(asked: str) -> None:
    entries = [Entry(JOHN, Role.ADMINISTRATOR, ALLOW)]
    assert not decide(entries, [asked], Role.MONITOR).allowed
    assert decide(entries, [str(JOHN)], Role.MONITOR).allowed


def test_no_wildcards_in_special_subjects() -> None:
    # EVERYONE in the table grants only when the caller passes EVERYONE among its principals.
    entries = [Entry(EVERYONE, Role.MONITOR, ALLOW)]
    assert not decide(entries, [JOHN], Role.MONITOR).allowed
    assert decide(entries, [JOHN, EVERYONE], Role.MONITOR).allowed
    assert not decide([Entry(ALL_AUTHENTICATED, Role.MONITOR, ALLOW)], [JOHN, EVERYONE], Role.MONITOR).allowed


def test_default_deny_reason_names_subject_role_scope_and_nearest_grant() -> None:
    entries = [Entry(OPERATORS, Role.OPERATOR, ALLOW)]
    decision = decide(entries, [OPERATORS, JOHN, EVERYONE], Role.CONFIGURATOR)
    assert not decision.allowed
    assert decision.nearest == entries[0]
    assert decision.reason == (
        f"{JOHN} has no role implying configurator on node scope; nearest grant: operator via {OPERATORS} on node scope"
    )
    assert decision.subject == str(JOHN) and decision.scope == "node scope"


def test_nearest_prefers_the_right_role_in_another_scope() -> None:
    entries = [Entry(JOHN, Role.MONITOR, ALLOW), Entry(OPERATORS, Role.OPERATOR, ALLOW, PAYROLL)]
    decision = decide(entries, [JOHN, OPERATORS], Role.OPERATOR, [HR])
    assert decision.nearest == entries[1]
    assert "has no role implying operator on authgroup:hr" in decision.reason
    assert decide([], [JOHN], Role.OPERATOR).reason.endswith("nearest grant: none")


def test_deny_reason_names_the_deny_and_allow_reason_the_grant() -> None:
    deny = Entry(OPERATORS, Role.ADMINISTRATOR, DENY, PAYROLL)
    decision = decide([deny, Entry(JOHN, Role.OPERATOR, ALLOW)], [JOHN, OPERATORS], Role.OPERATOR, [PAYROLL])
    assert decision.denying == (deny,)
    assert decision.reason.startswith(
        f"{JOHN} is refused operator on authgroup:payroll: deny administrator for {OPERATORS}"
    )
    allowed = decide([Entry(OPERATORS, Role.ADMINISTRATOR, ALLOW)], [JOHN, OPERATORS], Role.MONITOR)
    assert allowed.reason == f"{JOHN} holds monitor on node scope: allow administrator to {OPERATORS} on node scope"


def test_raise_if_denied_carries_the_code_and_names() -> None:
    decision = decide([], [CELLB_JOHN], Role.OPERATOR, [PAYROLL])
    with pytest.raises(AuthzDenied) as caught:
        decision.raise_if_denied()
    err = caught.value
    assert err.code == "authz.denied"
    assert (err.principal, err.role, err.scope) == (str(CELLB_JOHN), "operator", "authgroup:payroll")
    assert str(CELLB_JOHN) in err.message
    snapshot = Snapshot([Entry(CELLB_JOHN, Role.OPERATOR, ALLOW)])
    assert snapshot.require([CELLB_JOHN], Role.OPERATOR).allowed


def test_snapshot_accessors() -> None:
    entries = [Entry(JOHN, Role.OPERATOR, ALLOW), Entry(OPERATORS, Role.MONITOR, DENY, HR)]
    snapshot = Snapshot(entries, version=7)
    assert len(snapshot) == 2 and snapshot.version == 7
    assert snapshot.entries() == sorted(entries, key=Entry.sort_key)
    assert snapshot.entries_for(JOHN) == [entries[0]]
    assert snapshot.entries_for("user:nope/x") == []
