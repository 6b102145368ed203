"""Which decisions of a table changed when a deny came to refuse the roles *implying* its role.

Before, a deny of R refused R and every role R implies, and missed the roles that imply R:
``deny john monitor`` left John's operator grants working (it failed open), and ``deny john
administrator`` also stripped his monitor and operator grants. Now a deny of R refuses R and
every role that implies R (``authz_tables.decision``). ``deny_changes`` lists, for the entries
of one table, every decision the two rules answer differently.

The table does not know who is in which group, so a decision is stated for a caller holding a
*pair* of access IDs: the one a deny names and the one an allow names (the same one when a
principal holds both). That is complete: a decision changes only when a grant applies and
exactly one rule refuses, so any caller whose decision changes holds such a pair. Other access
IDs a caller holds can only add denies, which may cancel a listed change, never add one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from authz_tables.decision import Snapshot
from authz_tables.entries import Effect, Entry, Scope
from authz_tables.roles import Role, implies, roles_implied_by, roles_implying


@dataclass(frozen=True, slots=True)
class DenyChange:
    """One decision the old and new rules answer differently.

    ``principals``: the access IDs the caller holds (the deny's, then the grant's); ``scope``:
    where the resource sits (``*`` for a resource in no authorization group). ``before`` and
    ``after`` are ``"allowed"`` or ``"refused"``; ``deny`` is the entry whose meaning changed and
    ``grant`` the allow that applies; ``reason`` is today's reason.
    """

    principals: tuple[str, ...]
    role: Role
    scope: Scope
    before: str
    after: str
    deny: Entry
    grant: Entry
    reason: str

    @property
    def newly_refused(self) -> bool:
        return self.after == "refused"

    def line(self) -> str:
        """``refused now, allowed before: operator on * for user:... + group:... (deny monitor ...)``."""
        who = " + ".join(self.principals)
        head = "refused now, allowed before" if self.newly_refused else "allowed now, refused before"
        return f"{head}: {self.role} on {self.scope} for {who} ({self.deny.describe()}; {self.grant.describe()})"

    def to_json(self) -> dict[str, Any]:
        return {
            "principals": list(self.principals), "role": self.role.value, "scope": str(self.scope),
            "before": self.before, "after": self.after, "deny": _entry_json(self.deny),
            "grant": _entry_json(self.grant), "reason": self.reason,
        }  # fmt: skip


def _entry_json(entry: Entry) -> dict[str, str]:
    return {"access_id": str(entry.principal), "role": entry.role.value, "effect": entry.effect.value,
            "scope": str(entry.scope)}  # fmt: skip


def refused_before(deny_role: Role) -> frozenset[Role]:
    """The roles a deny of ``deny_role`` refused under the old rule: those it implies."""
    return roles_implied_by(deny_role)


def refused_now(deny_role: Role) -> frozenset[Role]:
    """The roles a deny of ``deny_role`` refuses: those that imply it."""
    return roles_implying(deny_role)


def _covers(entry: Entry, scope: Scope) -> bool:
    return entry.scope.is_node_wide or entry.scope == scope


def _allowed_before(entries: list[Entry], principals: set[str], required: Role, scope: Scope) -> bool:
    """The old rule, written plainly: a deny of any role implying ``required`` wins, then any allow."""
    matching = [e for e in entries if str(e.principal) in principals and _covers(e, scope)]
    if any(e.effect is Effect.DENY and implies(e.role, required) for e in matching):
        return False
    return any(e.effect is Effect.ALLOW and implies(e.role, required) for e in matching)


def _meet(a: Scope, b: Scope) -> Scope | None:
    """The scope a resource must sit in for both entries to cover it; None when none can."""
    if a.is_node_wide:
        return b
    if b.is_node_wide or a == b:
        return a
    return None


def deny_changes(entries: Iterable[Entry]) -> list[DenyChange]:
    """Every decision the old and new deny rules answer differently, for callers holding a pair
    of access IDs named in ``entries`` (module docstring); sorted, one per (principals, role, scope)."""
    table = list(entries)
    snapshot = Snapshot(table)
    denies = [e for e in table if e.effect is Effect.DENY]
    allows = [e for e in table if e.effect is Effect.ALLOW]
    found: dict[tuple[tuple[str, ...], Role, Scope], DenyChange] = {}
    for deny in sorted(denies, key=Entry.sort_key):
        moved = refused_before(deny.role) ^ refused_now(deny.role)
        for grant in sorted(allows, key=Entry.sort_key):
            scope = _meet(deny.scope, grant.scope)
            if scope is None:
                continue
            principals = tuple(dict.fromkeys([str(deny.principal), str(grant.principal)]))
            for role in sorted(moved & roles_implied_by(grant.role), key=lambda r: r.value):
                key = (tuple(sorted(principals)), role, scope)
                if key in found:
                    continue
                before = _allowed_before(table, set(principals), role, scope)
                now = snapshot.decide(principals, role, [scope] if scope.authgroup else [])
                if before != now.allowed:
                    found[key] = DenyChange(
                        principals, role, scope, "allowed" if before else "refused",
                        "allowed" if now.allowed else "refused", deny, grant, now.reason,
                    )  # fmt: skip
    return [found[k] for k in sorted(found, key=lambda k: (k[0], k[1].value, str(k[2])))]


__all__ = ["DenyChange", "deny_changes", "refused_before", "refused_now"]
