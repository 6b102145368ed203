"""Explainable decisions against an immutable, indexed, in-memory snapshot of a table.

A principal that holds role Q also holds every role Q implies. So an allow of R grants R and
every role R implies, and a deny of R refuses R and every role that *implies* R (a deny of
monitor refuses everything; a deny of administrator refuses only administrator). The rule, in
order:

1. A **deny** wins: an entry with effect deny, for the required role or any role the required
   role implies, in any covering scope, matching any of the caller's principals.
2. Otherwise an **allow** of any role that implies the required one, in a covering scope,
   for any of the principals, grants.
3. Otherwise the answer is **no** (deny by default), with a reason naming the subject,
   the missing role, the scope and the nearest grant the subject does hold.

Principals match exactly on the canonical access ID string: no wildcards, no case folding,
no prefixes. Callers add the special subjects themselves (``special:EVERYONE``, ...).
``Snapshot.decide`` never touches a database.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from authz_tables.entries import NODE_SCOPE, Effect, Entry, Scope
from authz_tables.errors import AuthzDenied
from authz_tables.roles import Role, implies, roles_implied_by, roles_implying
from realms.identity.access_id import AccessId


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict of ``decide``, with the entries that made it and a reason for a person.

    ``granting`` and ``denying`` hold every matching allow and deny; ``nearest`` is,
    on a default deny, the closest allow the caller's principals hold (another role or another
    scope), else None.
    """

    allowed: bool
    reason: str
    granting: tuple[Entry, ...]
    denying: tuple[Entry, ...]
    nearest: Entry | None
    required: Role
    subject: str
    scope: str

    def __bool__(self) -> bool:
        return self.allowed

    def raise_if_denied(self) -> None:
        """Raise ``AuthzDenied`` (``authz.denied``) with this decision's reason unless allowed."""
        if not self.allowed:
            raise AuthzDenied(self.reason, principal=self.subject, role=self.required.value, scope=self.scope)


def _key(principal: AccessId | str) -> str:
    return principal if isinstance(principal, str) else str(principal)


def _subject(keys: list[str]) -> str:
    """The principal a reason names: the first user, else the first node, else the first given."""
    for prefix in ("user:", "node:"):
        for key in keys:
            if key.startswith(prefix):
                return key
    return keys[0] if keys else "(no principal)"


# One bit per role; an entry's mask has the bit of every role it decides, so "does this entry
# speak about the required role" is one AND instead of a set lookup per entry.
_BIT: dict[Role, int] = {role: 1 << i for i, role in enumerate(Role)}
# An allow of R grants every role R implies.
_ALLOW_MASK: dict[Role, int] = {role: sum(_BIT[r] for r in roles_implied_by(role)) for role in Role}
# Why: a deny of R refuses every role that implies R. Whoever held such a role would hold R
# through it, so refusing only R (or only what R implies) would let the higher role through.
_DENY_MASK: dict[Role, int] = {role: sum(_BIT[r] for r in roles_implying(role)) for role in Role}
_NODE = str(NODE_SCOPE)
_ALLOW = Effect.ALLOW
_DENY = Effect.DENY

# (role mask, is a deny, entry), per scope string, per access ID string.
_Item = tuple[int, bool, Entry]
_ROLE_RANK = {role: i for i, role in enumerate(sorted(Role, key=lambda r: r.value))}


# Per snapshot; past this many the memo starts over (principal sets come from tokens).
MAX_REMEMBERED_DECISIONS = 4096


def _role_order(item: _Item) -> int:
    return _ROLE_RANK[item[2].role]


class Snapshot:
    """An immutable index of a table's entries at one ``version``; safe to share between threads."""

    __slots__ = ("_decisions", "_index", "_size", "version")

    def __init__(self, entries: Iterable[Entry], version: int = 0) -> None:
        self._build(((str(e.principal), str(e.scope), e) for e in entries), version)

    @classmethod
    def from_keyed(cls, items: Iterable[tuple[str, str, Entry]], version: int = 0) -> Snapshot:
        """Build from (access ID text, scope text, entry) triples whose texts are already canonical."""
        snapshot = cls.__new__(cls)
        snapshot._build(items, version)
        return snapshot

    def _build(self, items: Iterable[tuple[str, str, Entry]], version: int) -> None:
        index: dict[str, dict[str, list[_Item]]] = {}
        size = 0
        for principal, scope, entry in items:
            is_deny = entry.effect is _DENY
            item = ((_DENY_MASK if is_deny else _ALLOW_MASK)[entry.role], is_deny, entry)
            by_scope = index.get(principal)
            if by_scope is None:
                by_scope = index[principal] = {}
            found = by_scope.get(scope)
            if found is None:
                by_scope[scope] = [item]
            else:
                found.append(item)
            size += 1
        # Within one (principal, scope) the entries differ by role only: order them by role.
        self._index: Mapping[str, Mapping[str, tuple[_Item, ...]]] = {
            principal: {
                scope: (found[0],) if len(found) == 1 else tuple(sorted(found, key=_role_order))
                for scope, found in by_scope.items()
            }
            for principal, by_scope in index.items()
        }
        self._size = size
        self.version = version
        # Decisions already made on this snapshot, by (principal keys, role, scope texts).
        self._decisions: dict[tuple[tuple[str, ...], Role, tuple[str, ...]], Decision] = {}

    def __len__(self) -> int:
        return self._size

    def __repr__(self) -> str:
        return f"Snapshot(version={self.version}, entries={self._size})"

    def entries(self) -> list[Entry]:
        """All entries, sorted by (access ID, role, scope)."""
        found = [i[2] for by_scope in self._index.values() for group in by_scope.values() for i in group]
        return sorted(found, key=Entry.sort_key)

    def entries_for(self, principal: AccessId | str) -> list[Entry]:
        """The entries naming exactly ``principal``, in any scope."""
        by_scope = self._index.get(_key(principal), {})
        return sorted((i[2] for group in by_scope.values() for i in group), key=Entry.sort_key)

    def decide(
        self,
        principals: Iterable[AccessId | str],
        required: Role,
        scopes: Iterable[Scope] = (),
    ) -> Decision:
        """Decide whether ``principals`` together hold ``required`` on a resource covered by ``scopes``.

        ``principals``: the caller's access IDs (user, groups and the special subjects that
        apply), as ``AccessId`` or canonical strings (strings are faster: no formatting per
        call). ``scopes``: the authorization groups the
        resource belongs to; the node-wide scope ``*`` always covers, whether listed or not.
        ``granting`` and ``denying`` list the matching entries in the order of ``principals``,
        the resource's own authorization groups before the node scope; the reason names the first.
        """
        if type(principals) is tuple:
            # Why a memo is safe: a snapshot never changes, so the same principals, role and
            # scopes always get the same decision; a new table version is a new snapshot.
            scopes = tuple(scopes)
            memo_key = (principals, required, tuple([str(s) for s in scopes]) if scopes else ())
            found = self._decisions.get(memo_key)
            if found is None:
                found = self._decide(principals, required, scopes)
                if len(self._decisions) >= MAX_REMEMBERED_DECISIONS:
                    self._decisions.clear()
                self._decisions[memo_key] = found
            return found
        return self._decide(principals, required, scopes)

    def _decide(self, principals: Iterable[AccessId | str], required: Role, scopes: Iterable[Scope]) -> Decision:
        keys = list(dict.fromkeys([p if isinstance(p, str) else str(p) for p in principals]))
        # Why: "*" means the whole node; a node-wide deny must also refuse resources that sit in
        # an authorization group, so the node scope is always among the covering scopes.
        groups = sorted({str(s) for s in scopes if s.authgroup is not None})
        covering = [*groups, _NODE]
        bit = _BIT[required]
        granting: list[Entry] = []
        denying: list[Entry] = []
        index = self._index
        for key in keys:
            by_scope = index.get(key)
            if by_scope is None:
                continue
            for scope in covering:
                items = by_scope.get(scope)
                if items is None:
                    continue
                for mask, is_deny, entry in items:
                    if mask & bit:
                        (denying if is_deny else granting).append(entry)
        subject = _subject(keys)
        where = ", ".join(groups) if groups else NODE_SCOPE.describe()
        if denying:
            return Decision(
                False, _refusal(subject, required, where, denying[0]),
                tuple(granting), tuple(denying), None, required, subject, where,
            )  # fmt: skip
        if granting:
            return Decision(
                True,
                f"{subject} holds {required} on {where}: {granting[0].describe()}",
                tuple(granting), (), None, required, subject, where,
            )  # fmt: skip
        nearest = self._nearest(keys, required, set(covering))
        hint = f"{nearest.role} via {nearest.principal} on {nearest.scope.describe()}" if nearest else "none"
        return Decision(
            False,
            f"{subject} has no role implying {required} on {where}; nearest grant: {hint}",
            (), (), nearest, required, subject, where,
        )  # fmt: skip

    def _nearest(self, keys: list[str], required: Role, covering: set[str]) -> Entry | None:
        """The allow closest to what was asked: the right role elsewhere, then a lesser role here.

        A grant the caller's own denies void where it applies is never offered: it would point
        at something the caller cannot use.
        """
        best: tuple[int, tuple[str, str, str, str]] | None = None
        nearest: Entry | None = None
        for key in keys:
            for scope, group in self._index.get(key, {}).items():
                for _, is_deny, entry in group:
                    if is_deny:
                        continue
                    sufficient = implies(entry.role, required)
                    # What the hint promises: the required role in that scope, or this role here.
                    if self._refused(keys, required if sufficient else entry.role, scope):
                        continue
                    here = scope in covering
                    rank = 0 if sufficient else 1 if here else 2
                    candidate = (rank, entry.sort_key())
                    if best is None or candidate < best:
                        best, nearest = candidate, entry
        return nearest

    def _refused(self, keys: list[str], role: Role, scope: str) -> bool:
        """True when a deny of ``keys`` refuses ``role`` on ``scope`` (that scope or the node scope)."""
        bit = _BIT[role]
        for key in keys:
            by_scope = self._index.get(key)
            if by_scope is None:
                continue
            for where in {scope, _NODE}:
                for mask, is_deny, _ in by_scope.get(where, ()):
                    if is_deny and mask & bit:
                        return True
        return False

    def require(self, principals: Iterable[AccessId | str], required: Role, scopes: Iterable[Scope] = ()) -> Decision:
        """``decide`` and raise ``AuthzDenied`` unless allowed; returns the (allowing) decision."""
        decision = self.decide(principals, required, scopes)
        decision.raise_if_denied()
        return decision


def _refusal(subject: str, required: Role, where: str, deny: Entry) -> str:
    """The reason of a refusal by ``deny``; says why when the deny names a role below ``required``."""
    why = ""
    if deny.role is not required:
        why = f" ({required} implies {deny.role}, and a deny of {deny.role} refuses every role that implies it)"
    return f"{subject} is refused {required} on {where}: {deny.describe()}{why}, and a deny wins over any grant"


def decide(
    entries: Iterable[Entry],
    principals: Iterable[AccessId | str],
    required: Role,
    scopes: Iterable[Scope] = (),
) -> Decision:
    """One-off decision over a plain list of entries (builds a throwaway ``Snapshot``)."""
    return Snapshot(entries).decide(principals, required, scopes)
