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


def _refuses(deny: Entry, required: Role) -> bool:
    """A deny of R refuses every role that implies R: whoever held it would hold R through it."""
    return implies(required, deny.role)


def _grants(allow: Entry, required: Role) -> bool:
    return implies(allow.role, required)


def _reference(entries: list[Entry], principals: list[AccessId], required: Role, scopes: list[Scope]) -> bool:
    """The rule, written as plainly as possible."""
    matching = [e for e in entries if e.principal in principals and _covers(e, scopes)]
    if any(e.effect is DENY and _refuses(e, required) for e in matching):
        return False
    return any(e.effect is ALLOW and _grants(e, required) for e in matching)


@given(entry_lists, principal_sets, roles, scope_sets)
def test_decide_follows_the_rule(entries: list[Entry], principals: list[AccessId], required: Role,
                                 scopes: list[Scope]) -> None:  # fmt: skip
    decision = decide(entries, principals, required, scopes)
    assert decision.allowed == _reference(entries, principals, required, scopes)
    assert decision.reason
    for e in decision.granting:
        assert e.effect is ALLOW and e.principal in principals and implies(e.role, required)
    for e in decision.denying:
        assert e.effect is DENY and e.principal in principals and implies(required, e.role)
    if decision.allowed:
        assert decision.granting and not decision.denying


@given(entry_lists, principal_sets, roles, roles, scope_sets)
def test_a_matching_deny_always_wins(entries: list[Entry], principals: list[AccessId], required: Role,
                                     deny_role: Role, scopes: list[Scope]) -> None:  # fmt: skip
    if not implies(required, deny_role):
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


def test_deny_of_monitor_refuses_every_role_even_through_a_group_grant() -> None:
    """``deny john monitor`` locks John out: his group's operator grant no longer runs jobs."""
    entries = [Entry(OPERATORS, Role.OPERATOR, ALLOW), Entry(JOHN, Role.MONITOR, DENY)]
    for role in Role:
        assert not decide(entries, [JOHN, OPERATORS], role).allowed
    assert decide(entries, [OPERATORS], Role.OPERATOR).allowed  # the group's other members keep it


def test_deny_of_administrator_refuses_only_administrator() -> None:
    """``deny john administrator`` means "never an admin here", not "strip his other grants"."""
    entries = [Entry(JOHN, Role.OPERATOR, ALLOW), Entry(OPERATORS, Role.ADMINISTRATOR, ALLOW),
               Entry(JOHN, Role.ADMINISTRATOR, DENY)]  # fmt: skip
    assert not decide(entries, [JOHN, OPERATORS], Role.ADMINISTRATOR).allowed
    for role in (Role.CONFIGURATOR, Role.OPERATOR, Role.MONITOR):
        assert decide(entries, [JOHN, OPERATORS], role).allowed, role


def test_deny_of_operator_refuses_operator_and_administrator_only() -> None:
    entries = [Entry(OPERATORS, Role.ADMINISTRATOR, ALLOW), Entry(JOHN, Role.OPERATOR, DENY)]
    refused = {role for role in Role if not decide(entries, [JOHN, OPERATORS], role).allowed}
    assert refused == {Role.OPERATOR, Role.ADMINISTRATOR}


@given(entry_lists, principal_sets, roles, scope_sets, entry_lists)
def test_adding_a_deny_never_grants(entries: list[Entry], principals: list[AccessId], required: Role,
                                    scopes: list[Scope], more: list[Entry]) -> None:  # fmt: skip
    denies = [Entry(e.principal, e.role, DENY, e.scope) for e in more]
    if not decide(entries, principals, required, scopes).allowed:
        assert not decide(entries + denies, principals, required, scopes).allowed


@given(entry_lists, principal_sets, roles, scope_sets)
def test_a_deny_refuses_every_role_above_it(entries: list[Entry], principals: list[AccessId], deny_role: Role,
                                            scopes: list[Scope]) -> None:  # fmt: skip
    """Whatever else the table says, a deny of R makes every role implying R refused."""
    deny = Entry(principals[0], deny_role, DENY, NODE_SCOPE)
    allows = [Entry(p, Role.ADMINISTRATOR, ALLOW, s) for p in principals for s in [NODE_SCOPE, *scopes]]
    for role in Role:
        decision = decide([*entries, *allows, deny], principals, role, scopes)
        if implies(role, deny_role):
            assert not decision.allowed and deny in decision.denying, role


@given(entry_lists, principal_sets, roles, roles, scope_sets)
def test_a_deny_does_not_refuse_roles_not_implying_it(entries: list[Entry], principals: list[AccessId],
                                                      deny_role: Role, required: Role,
                                                      scopes: list[Scope]) -> None:  # fmt: skip
    """Adding a deny of R changes no decision about a role that does not imply R."""
    if implies(required, deny_role):
        return
    deny = Entry(principals[0], deny_role, DENY, NODE_SCOPE)
    without = [e for e in entries if e.key != deny.key]
    before = decide(without, principals, required, scopes)
    after = decide([*without, deny], principals, required, scopes)
    assert after.allowed == before.allowed
    assert deny not in after.denying


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
    deny = Entry(OPERATORS, Role.OPERATOR, DENY, PAYROLL)
    decision = decide([deny, Entry(JOHN, Role.OPERATOR, ALLOW)], [JOHN, OPERATORS], Role.OPERATOR, [PAYROLL])
    assert decision.denying == (deny,)
    assert decision.reason == (
        f"{JOHN} is refused operator on authgroup:payroll: deny operator for {OPERATORS} on authgroup:payroll, "
        "and a deny wins over any grant"
    )
    # A deny of a lower role says why it refuses a higher one.
    lower = Entry(OPERATORS, Role.MONITOR, DENY, PAYROLL)
    decision = decide([lower, Entry(JOHN, Role.OPERATOR, ALLOW)], [JOHN, OPERATORS], Role.OPERATOR, [PAYROLL])
    assert decision.reason == (
        f"{JOHN} is refused operator on authgroup:payroll: deny monitor for {OPERATORS} on authgroup:payroll "
        "(operator implies monitor, and a deny of monitor refuses every role that implies it), "
        "and a deny wins over any grant"
    )
    allowed = decide([Entry(OPERATORS, Role.ADMINISTRATOR, ALLOW)], [JOHN, OPERATORS], Role.MONITOR)
    assert allowed.reason == f"{JOHN} holds monitor on node scope: allow administrator to {OPERATORS} on node scope"


def test_nearest_grant_never_points_at_a_grant_a_deny_voids() -> None:
    # Operator is granted on payroll but refused there: the hint must not send John to payroll.
    entries = [Entry(JOHN, Role.OPERATOR, ALLOW, PAYROLL), Entry(JOHN, Role.MONITOR, DENY, PAYROLL),
               Entry(JOHN, Role.MONITOR, ALLOW)]  # fmt: skip
    decision = decide(entries, [JOHN], Role.OPERATOR, [HR])
    assert not decision.allowed and decision.nearest == entries[2]
    assert decision.reason.endswith(f"nearest grant: monitor via {JOHN} on node scope")
    # A higher grant that a deny of that higher role voids still grants the lower role.
    entries = [Entry(JOHN, Role.ADMINISTRATOR, ALLOW, PAYROLL), Entry(JOHN, Role.ADMINISTRATOR, DENY, PAYROLL)]
    assert decide(entries, [JOHN], Role.OPERATOR, [PAYROLL]).allowed
    assert decide(entries, [JOHN], Role.OPERATOR, [HR]).nearest == entries[0]
    assert decide(entries, [JOHN], Role.ADMINISTRATOR, [HR]).nearest is None


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
