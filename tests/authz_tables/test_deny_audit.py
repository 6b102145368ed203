"""``deny_changes`` and ``jobsts authz audit``: the decisions that changed with the deny rule."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from authz_tables.cli import authz
from authz_tables.decision import decide
from authz_tables.deny_audit import deny_changes, refused_before, refused_now
from authz_tables.entries import NODE_SCOPE, Effect, Entry, Scope
from authz_tables.roles import Role, implies
from realms.identity.access_id import AccessId
from tests.authz_tables.conftest import HR, JOHN, OPERATORS, PAYROLL, entry_lists, principal_sets, roles

ALLOW, DENY = Effect.ALLOW, Effect.DENY


def _old_rule(entries: list[Entry], principals: list[AccessId], required: Role, scope: Scope) -> bool:
    """The rule before the fix: a deny of R refused the roles R implies."""
    matching = [e for e in entries if e.principal in principals and (e.scope.is_node_wide or e.scope == scope)]
    if any(e.effect is DENY and implies(e.role, required) for e in matching):
        return False
    return any(e.effect is ALLOW and implies(e.role, required) for e in matching)


def _new_rule(entries: list[Entry], principals: list[AccessId], required: Role, scope: Scope) -> bool:
    return decide(entries, principals, required, [scope] if scope.authgroup else []).allowed


def test_refused_sets_of_each_rule() -> None:
    assert refused_now(Role.MONITOR) == frozenset(Role) and refused_before(Role.MONITOR) == {Role.MONITOR}
    assert refused_now(Role.ADMINISTRATOR) == {Role.ADMINISTRATOR}
    assert refused_before(Role.ADMINISTRATOR) == frozenset(Role)


def test_the_two_cases_that_motivated_the_fix() -> None:
    entries = [Entry(OPERATORS, Role.OPERATOR, ALLOW), Entry(JOHN, Role.MONITOR, DENY),
               Entry(JOHN, Role.OPERATOR, ALLOW, PAYROLL), Entry(JOHN, Role.ADMINISTRATOR, DENY, PAYROLL)]  # fmt: skip
    lines = [c.line() for c in deny_changes(entries)]
    assert (
        f"refused now, allowed before: operator on * for {JOHN} + {OPERATORS} "
        f"(deny monitor for {JOHN} on node scope; allow operator to {OPERATORS} on node scope)"
    ) in lines
    # deny administrator on payroll no longer strips John's operator grant there; but his node-wide
    # deny of monitor refuses it anyway, so that decision did not change and is not listed.
    assert not any("allowed now" in line for line in lines)
    entries = [e for e in entries if e.role is not Role.MONITOR]
    found = {(c.principals, c.role, str(c.scope), c.before, c.after) for c in deny_changes(entries)}
    j, g = str(JOHN), str(OPERATORS)
    assert found == {
        ((j,), Role.OPERATOR, "authgroup:payroll", "refused", "allowed"),
        ((j,), Role.MONITOR, "authgroup:payroll", "refused", "allowed"),
        ((j, g), Role.OPERATOR, "authgroup:payroll", "refused", "allowed"),
        ((j, g), Role.MONITOR, "authgroup:payroll", "refused", "allowed"),
    }


def test_no_denies_or_no_grants_change_nothing() -> None:
    assert deny_changes([Entry(JOHN, Role.OPERATOR, ALLOW)]) == []
    assert deny_changes([Entry(JOHN, Role.MONITOR, DENY)]) == []
    # Disjoint authorization groups never meet.
    assert deny_changes([Entry(JOHN, Role.MONITOR, DENY, HR), Entry(JOHN, Role.OPERATOR, ALLOW, PAYROLL)]) == []


scope_choice = st.sampled_from([NODE_SCOPE, PAYROLL, HR])


@given(entry_lists, principal_sets, roles, scope_choice)
def test_every_changed_decision_is_listed_and_every_listed_one_changed(
    entries: list[Entry], principals: list[AccessId], required: Role, scope: Scope
) -> None:
    changes = deny_changes(entries)
    for change in changes:
        held = [AccessId.parse(p) for p in change.principals]
        assert _old_rule(entries, held, change.role, change.scope) == (change.before == "allowed")
        assert _new_rule(entries, held, change.role, change.scope) == (change.after == "allowed")
        assert change.before != change.after
    before, after = _old_rule(entries, principals, required, scope), _new_rule(entries, principals, required, scope)
    if before != after:
        holding = {str(p) for p in principals}
        assert any(
            set(c.principals) <= holding
            and c.role is required
            and c.scope in (scope, NODE_SCOPE)
            and c.after == ("allowed" if after else "refused")
            for c in changes
        ), (before, after)


def _run(url: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(authz, ["--table", url, *args])
    return result.exit_code, result.output


@pytest.mark.db
def test_audit_command_text_and_json(database_url: str) -> None:
    j, g = str(JOHN), str(OPERATORS)
    assert _run(database_url, "audit") == (
        0,
        "0 decisions changed (0 refused now, 0 allowed now) by 0 deny entries of 0 entries\n",
    )
    _run(database_url, "grant", g, "operator")
    _run(database_url, "deny", j, "monitor")
    code, output = _run(database_url, "audit")
    assert code == 1
    lines = output.splitlines()
    assert lines[-1] == "1 decisions changed (1 refused now, 0 allowed now) by 1 deny entries of 2 entries"
    assert lines[0].startswith(f"refused now, allowed before: operator on * for {j} + {g}")
    code, output = _run(database_url, "audit", "--json")
    assert code == 1
    document = json.loads(output)
    assert (document["entries"], document["denies"]) == (2, 1)
    (change,) = document["changes"]
    assert change["principals"] == [j, g] and change["role"] == "operator" and change["scope"] == "*"
    assert (change["before"], change["after"]) == ("allowed", "refused")
    assert change["deny"] == {"access_id": j, "role": "monitor", "effect": "deny", "scope": "*"}
    assert "a deny of monitor refuses every role that implies it" in change["reason"]
