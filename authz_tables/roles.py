"""The role lattice: administrator ⊇ configurator ⊇ monitor and administrator ⊇ operator ⊇ monitor.

The lattice is data, not code: ``DIRECTLY_IMPLIES`` lists, for each role, the roles it
directly implies, and ``RoleLattice`` derives the reflexive-transitive closure once. To add
a role later, add a ``Role`` member and its row; callers only ever ask ``implies(a, b)`` or
``roles_implying(r)`` and need no change. The closure is checked to be a partial order
(acyclic) when the module loads, so a bad table fails at import, never at decision time.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable, Mapping
from typing import Generic, TypeVar

from authz_tables.errors import BadRole


class Role(enum.Enum):
    """A role of the job manager security model (WebSphere seed). The value is its one spelling."""

    ADMINISTRATOR = "administrator"
    CONFIGURATOR = "configurator"
    OPERATOR = "operator"
    MONITOR = "monitor"

    def __str__(self) -> str:
        return self.value


DIRECTLY_IMPLIES: Mapping[Role, frozenset[Role]] = {
    Role.ADMINISTRATOR: frozenset({Role.CONFIGURATOR, Role.OPERATOR}),
    Role.CONFIGURATOR: frozenset({Role.MONITOR}),
    Role.OPERATOR: frozenset({Role.MONITOR}),
    Role.MONITOR: frozenset(),
}

R = TypeVar("R", bound=Hashable)


class RoleLattice(Generic[R]):
    """A partial order given by a table of direct implications; ``implies`` is its closure."""

    def __init__(self, direct: Mapping[R, frozenset[R]]) -> None:
        roles = set(direct)
        for role, below in direct.items():
            unknown = below - roles
            if unknown:
                raise ValueError(f"role {role} implies roles missing from the table: {sorted(map(str, unknown))}")
        implied: dict[R, frozenset[R]] = {}
        for role in direct:
            seen: set[R] = {role}
            stack = list(direct[role])
            while stack:
                other = stack.pop()
                if other not in seen:
                    seen.add(other)
                    stack.extend(direct[other])
            implied[role] = frozenset(seen)
        for role, below in implied.items():
            for other in below - {role}:
                if role in implied[other]:
                    raise ValueError(f"role table has a cycle through {role} and {other}")
        self._implied = implied
        self._implying: dict[R, frozenset[R]] = {
            role: frozenset(r for r, below in implied.items() if role in below) for role in direct
        }

    @property
    def roles(self) -> frozenset[R]:
        return frozenset(self._implied)

    def implies(self, a: R, b: R) -> bool:
        """True when holding ``a`` grants everything ``b`` grants (reflexive and transitive)."""
        return b in self._implied[a]

    def implied_by(self, role: R) -> frozenset[R]:
        """All roles that ``role`` implies, itself included."""
        return self._implied[role]

    def implying(self, role: R) -> frozenset[R]:
        """All roles that imply ``role``, itself included: the roles whose allow grants it."""
        return self._implying[role]


LATTICE: RoleLattice[Role] = RoleLattice(DIRECTLY_IMPLIES)


def implies(a: Role, b: Role) -> bool:
    """True when role ``a`` implies role ``b`` (``implies(ADMINISTRATOR, MONITOR)`` is True)."""
    return LATTICE.implies(a, b)


def roles_implying(role: Role) -> frozenset[Role]:
    """The roles that imply ``role`` (itself included): those whose allow grants ``role``, and
    those a deny of ``role`` refuses (a holder of any of them would hold ``role`` through it)."""
    return LATTICE.implying(role)


def roles_implied_by(role: Role) -> frozenset[Role]:
    """The roles that ``role`` implies (itself included): those an allow of ``role`` grants, and
    those whose deny refuses ``role``."""
    return LATTICE.implied_by(role)


def parse_role(text: str) -> Role:
    """The role named exactly ``text`` (lowercase, as printed); else ``authz.bad_role``."""
    # Why: exact spelling only, like access IDs, so a table never holds two spellings of one role.
    try:
        return Role(text)
    except ValueError:
        names = ", ".join(r.value for r in Role)
        shown = text[:40] if isinstance(text, str) else type(text).__name__
        raise BadRole(f"unknown role {shown!r}: expected one of {names}", role=shown) from None
