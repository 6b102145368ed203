"""The role lattice: a partial order with the shape of the WebSphere job manager roles."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authz_tables.errors import BadRole
from authz_tables.roles import (
    DIRECTLY_IMPLIES,
    LATTICE,
    Role,
    RoleLattice,
    implies,
    parse_role,
    roles_implied_by,
    roles_implying,
)
from tests.authz_tables.conftest import roles


@given(roles)
def test_reflexive(a: Role) -> None:
    assert implies(a, a)


@given(roles, roles, roles)
def test_transitive(a: Role, b: Role, c: Role) -> None:
    if implies(a, b) and implies(b, c):
        assert implies(a, c)


@given(roles, roles)
def test_antisymmetric(a: Role, b: Role) -> None:
    if implies(a, b) and implies(b, a):
        assert a == b


@given(roles, roles)
def test_roles_implying_is_the_inverse_of_implies(a: Role, b: Role) -> None:
    assert (a in roles_implying(b)) == implies(a, b) == (b in roles_implied_by(a))


def test_the_job_manager_lattice() -> None:
    assert implies(Role.ADMINISTRATOR, Role.CONFIGURATOR)
    assert implies(Role.ADMINISTRATOR, Role.OPERATOR)
    assert implies(Role.ADMINISTRATOR, Role.MONITOR)
    assert implies(Role.OPERATOR, Role.MONITOR) and implies(Role.CONFIGURATOR, Role.MONITOR)
    # configurator and operator are incomparable
    assert not implies(Role.CONFIGURATOR, Role.OPERATOR)
    assert not implies(Role.OPERATOR, Role.CONFIGURATOR)
    assert not implies(Role.MONITOR, Role.OPERATOR)
    assert roles_implying(Role.MONITOR) == frozenset(Role)
    assert roles_implying(Role.ADMINISTRATOR) == {Role.ADMINISTRATOR}
    assert LATTICE.roles == frozenset(DIRECTLY_IMPLIES) == frozenset(Role)


# Random tables of direct implications over integer "roles": edges only from lower to higher
# numbers, so every generated table is acyclic, as a future role table must be.
dags = st.integers(min_value=1, max_value=7).flatmap(
    lambda n: st.fixed_dictionaries(
        {
            i: st.frozensets(st.integers(min_value=i + 1, max_value=n - 1)) if i < n - 1 else st.just(frozenset())
            for i in range(n)
        }
    )
)


@given(dags, st.data())
def test_any_acyclic_table_gives_a_partial_order(direct: dict[int, frozenset[int]], data: st.DataObject) -> None:
    lattice = RoleLattice(direct)
    nodes = st.sampled_from(sorted(direct))
    a, b, c = data.draw(nodes), data.draw(nodes), data.draw(nodes)
    assert lattice.implies(a, a)
    if lattice.implies(a, b) and lattice.implies(b, c):
        assert lattice.implies(a, c)
    if lattice.implies(a, b) and lattice.implies(b, a):
        assert a == b
    for d in direct[a]:
        assert lattice.implies(a, d)


def test_adding_a_role_needs_only_a_table_row() -> None:
    direct = {name.value: frozenset(r.value for r in below) for name, below in DIRECTLY_IMPLIES.items()}
    direct["auditor"] = frozenset({"monitor"})
    direct["administrator"] = direct["administrator"] | {"auditor"}
    lattice = RoleLattice(direct)
    assert lattice.implies("administrator", "auditor") and lattice.implies("auditor", "monitor")
    assert not lattice.implies("auditor", "operator")
    assert lattice.implying("monitor") == {"administrator", "configurator", "operator", "monitor", "auditor"}


def test_a_cycle_is_refused() -> None:
    with pytest.raises(ValueError, match="cycle"):
        RoleLattice({"a": frozenset({"b"}), "b": frozenset({"a"})})
    with pytest.raises(ValueError, match="missing"):
        RoleLattice({"a": frozenset({"zz"})})


@pytest.mark.parametrize("role", list(Role))
def test_parse_role_round_trips(role: Role) -> None:
    assert parse_role(str(role)) is role


@pytest.mark.parametrize("text", ["Operator", "OPERATOR", " operator", "operator ", "admin", "", "oper"])
def test_parse_role_is_exact(text: str) -> None:
    with pytest.raises(BadRole) as caught:
        parse_role(text)
    assert caught.value.code == "authz.bad_role"
    assert "expected one of administrator, configurator, operator, monitor" in caught.value.message
