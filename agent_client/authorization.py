"""Decision steps (c) to (e): who is asking, which role the job needs, and the table's verdict.

The principal set is {sub} + the groups the issuing realm vouched for + the special
subjects that apply. The required role comes only from the node's ``[job_types]`` table.
The local authorization table (``authz_tables``) decides, with the job's authorization
group as a scope next to the node-wide ``*``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from agent_client.errors import JobUnknownAuthgroup, JobUnknownType
from authz_tables.decision import Decision
from authz_tables.entries import Scope
from authz_tables.roles import Role
from realms.errors import AccessIdInvalid
from realms.identity.access_id import (
    ALL_AUTHENTICATED,
    ALL_AUTHENTICATED_IN_TRUSTED_REALMS,
    EVERYONE,
    AccessId,
    AccessIdKind,
)
from realms.tokens.verify import VerifiedToken


class Decider(Protocol):
    """What the agent needs from an authorization table: ``authz_tables.decision.Snapshot``."""

    def decide(
        self, principals: Iterable[AccessId | str], required: Role, scopes: Iterable[Scope] = ()
    ) -> Decision: ...


@dataclass(frozen=True, slots=True)
class Principals:
    """Step (c): the caller as the table sees it, and what was dropped on the way."""

    subject: AccessId
    realm: str
    access_ids: frozenset[AccessId]
    dropped_groups: int
    keys: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        # The canonical strings the table matches on, computed once per decision.
        if not self.keys:
            object.__setattr__(self, "keys", tuple(sorted(str(a) for a in self.access_ids)))

    def describe(self) -> str:
        dropped = f"; dropped {self.dropped_groups} group(s) not vouched by realm {self.realm}"
        return f"{len(self.access_ids)} access IDs for {self.subject}" + (dropped if self.dropped_groups else "")


_EVERYONE, _ALL_AUTHENTICATED, _ALL_IN_TRUSTED = (
    str(EVERYONE),
    str(ALL_AUTHENTICATED),
    str(ALL_AUTHENTICATED_IN_TRUSTED_REALMS),
)


@functools.lru_cache(maxsize=8192)
def _parse_canonical(text: str) -> tuple[AccessId, str] | None:
    """``AccessId.parse`` and its canonical spelling, memoised (immutable values); ``None`` when invalid."""
    try:
        parsed = AccessId.parse(text)
    except AccessIdInvalid:
        return None
    # Why: the table matches on the canonical string; keying on the token's own spelling could
    # let a differently spelled access ID slip past a deny.
    return parsed, str(parsed)


def _vouched_groups(claimed: tuple[str, ...], realm: str) -> dict[str, AccessId]:
    """Same rule as ``VerifiedToken.vouched_groups`` (groups of the issuing realm only), memoised
    parsing; keyed by the canonical text."""
    kept: dict[str, AccessId] = {}
    for text in claimed:
        found = _parse_canonical(text) if isinstance(text, str) else None
        if found is not None and found[0].kind is AccessIdKind.GROUP and found[0].realm == realm:
            kept[found[1]] = found[0]
    return kept


@functools.lru_cache(maxsize=4096)
def _principals(
    subject_text: str, realm: str, claimed: tuple[str, ...], own_realm: str, trusted_realms: frozenset[str]
) -> Principals:
    """``principals_of`` over everything it reads, memoised: the result is an immutable value."""
    found = _parse_canonical(subject_text)
    if found is None:  # verify() already refused such a token; never trust an unparsable subject
        raise AccessIdInvalid(f"subject {subject_text[:80]!r} is not an access ID")
    subject, subject_key = found
    # Why: a realm may vouch only for its own principals; groups of other realms are dropped.
    groups = _vouched_groups(claimed, realm)
    ids: dict[str, AccessId] = {subject_key: subject, **groups, _EVERYONE: EVERYONE}
    # Why: ALL_AUTHENTICATED means "authenticated by this node's own registry"; a user of a
    # trusted foreign realm is only ALL_AUTHENTICATED_IN_TRUSTED_REALMS.
    if realm == own_realm:
        ids[_ALL_AUTHENTICATED] = ALL_AUTHENTICATED
    if realm == own_realm or realm in trusted_realms:
        ids[_ALL_IN_TRUSTED] = ALL_AUTHENTICATED_IN_TRUSTED_REALMS
    dropped = len(set(claimed)) - len(groups)
    return Principals(subject, realm, frozenset(ids.values()), max(dropped, 0), tuple(sorted(ids)))


def principals_of(verified: VerifiedToken, own_realm: str, trusted_realms: frozenset[str]) -> Principals:
    """{sub} + vouched groups + special subjects (docs/architecture.md, "The trust model")."""
    claimed = verified.claims.get("groups", [])
    # verify() has checked that groups is a list of strings; anything else vouches for nothing
    # (and _vouched_groups skips any item that is not a string).
    groups = tuple(claimed) if isinstance(claimed, list) else ()
    return _principals(verified.subject, verified.realm, groups, own_realm, trusted_realms)


def required_role(job_type: str, job_types: Mapping[str, Role], node_id: str) -> Role:
    """Step (d): the role the node requires for ``job_type``; unknown types are refused, never defaulted."""
    role = job_types.get(job_type)
    if role is None:
        raise JobUnknownType(f"node {node_id} has no job type {job_type[:64]!r} in [job_types]", job_type=job_type[:64])
    return role


def scopes_for(authgroup: str | None, authgroups: frozenset[str], node_id: str) -> tuple[Scope, ...]:
    """The scopes covering the job: node-wide ``*`` (always) plus its authorization group, if any."""
    if authgroup is None:
        return ()
    # Why: an authorization group the node does not have would make the job's scope
    # something no table entry can cover, or, worse, one an admin never meant to define.
    if authgroup not in authgroups:
        raise JobUnknownAuthgroup(
            f"node {node_id} has no authorization group {authgroup[:64]!r}", authgroup=authgroup[:64]
        )
    return (Scope(authgroup),)


def authorize(table: Decider, principals: Principals, role: Role, scopes: tuple[Scope, ...]) -> Decision:
    """Step (e): the table's explainable decision (a matching deny wins; otherwise any implying allow)."""
    return table.decide(principals.keys, role, scopes)
