"""Entries of an authorization table: (principal, role, effect, scope), plus who changed it and when.

A table holds at most one entry per key ``(principal, role, scope)``: granting what was
denied replaces the deny (and is reported as a change). Principals are matched exactly on
their canonical access ID string; scopes are ``*`` (the whole node or cell),
``authgroup:<name>`` (a fine-grained authorization group, as in the WebSphere seed),
``remote:<name>`` (one remote host an agent reaches over SSH) or ``credential:<key>`` (one
secret of the agent's credential store).
"""

from __future__ import annotations

import enum
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from authz_tables.errors import AuthzError, BadEntry, BadScope
from authz_tables.roles import Role, parse_role
from realms.errors import AccessIdInvalid
from realms.identity.access_id import AccessId

AUTHGROUP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
# The kinds of named scope; "authgroup" is the default so ``Scope("payroll")`` keeps its meaning.
SCOPE_KINDS = ("authgroup", "remote", "credential")
_KIND_WORDS = {"authgroup": "authorization group", "remote": "remote host", "credential": "credential key"}
MAX_CHANGED_BY_LENGTH = 1200


class Effect(enum.Enum):
    ALLOW = "allow"
    DENY = "deny"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class Scope:
    """``Scope()`` is node/cell-wide (``*``); ``Scope("payroll")`` is ``authgroup:payroll``;
    ``Scope("web1", "remote")`` is ``remote:web1``; ``Scope("deploy", "credential")`` is
    ``credential:deploy``.

    The node-wide scope covers every resource of the node, so ``decide`` always counts it
    as covering; a named scope covers only the resources placed in it.
    """

    authgroup: str | None = None
    kind: str = "authgroup"

    def __post_init__(self) -> None:
        if self.kind not in SCOPE_KINDS:
            raise BadScope(f"bad scope kind {self.kind[:20]!r}: expected one of {', '.join(SCOPE_KINDS)}")
        if self.authgroup is not None and AUTHGROUP_NAME.fullmatch(self.authgroup) is None:
            raise BadScope(
                f"bad {_KIND_WORDS[self.kind]} name {self.authgroup[:70]!r}: "
                "expected [A-Za-z0-9][A-Za-z0-9._-]{0,62}",
                scope=self.authgroup[:70],
            )

    @classmethod
    def authorization_group(cls, name: str) -> Scope:
        return cls(name)

    @property
    def is_node_wide(self) -> bool:
        return self.authgroup is None

    def __str__(self) -> str:
        return "*" if self.authgroup is None else f"{self.kind}:{self.authgroup}"

    def describe(self) -> str:
        """Words for reasons: ``node scope`` or ``authgroup:payroll``."""
        return "node scope" if self.authgroup is None else str(self)


NODE_SCOPE = Scope()


def parse_scope(text: str) -> Scope:
    """Parse ``*`` or ``<kind>:<name>`` exactly (kind authgroup, remote or credential); anything
    else raises ``authz.bad_scope``."""
    if text == "*":
        return NODE_SCOPE
    if isinstance(text, str):
        kind, colon, name = text.partition(":")
        if colon and kind in SCOPE_KINDS:
            return Scope(name, kind)
    shown = text[:70] if isinstance(text, str) else type(text).__name__
    raise BadScope(
        f"bad scope {shown!r}: expected '*', 'authgroup:<name>', 'remote:<host>' or 'credential:<key>'", scope=shown
    )


def parse_effect(text: str) -> Effect:
    """``allow`` or ``deny`` exactly; anything else raises ``authz.bad_entry``."""
    try:
        return Effect(text)
    except ValueError:
        shown = text[:20] if isinstance(text, str) else type(text).__name__
        raise BadEntry(f"bad effect {shown!r}: expected 'allow' or 'deny'") from None


@dataclass(frozen=True, slots=True)
class Entry:
    """One rule on ``scope``: an allow grants ``principal`` ``role`` and every role it implies; a deny
    refuses ``role`` and every role that implies it."""

    principal: AccessId
    role: Role
    effect: Effect
    scope: Scope = NODE_SCOPE

    @property
    def key(self) -> tuple[str, str, str]:
        """The table's unique key: (access ID, role, scope) as strings."""
        return (str(self.principal), self.role.value, str(self.scope))

    def sort_key(self) -> tuple[str, str, str, str]:
        return (str(self.principal), self.role.value, str(self.scope), self.effect.value)

    def describe(self) -> str:
        """``allow operator to group:jobmgr/cn=ops,... on node scope``."""
        verb = "to" if self.effect is Effect.ALLOW else "for"
        return f"{self.effect} {self.role} {verb} {self.principal} on {self.scope.describe()}"


@dataclass(frozen=True, slots=True)
class AuditedEntry:
    """An entry as stored: who made the last change to it (an access ID or ``local:<os user>``) and when."""

    entry: Entry
    changed_by: str
    changed_at: datetime


def parse_entry(principal: str, role: str, effect: str = "allow", scope: str = "*") -> Entry:
    """Build an ``Entry`` from its four text fields; any bad field raises ``authz.bad_entry`` naming it."""
    try:
        access_id = AccessId.parse(principal)
    except AccessIdInvalid as exc:
        raise BadEntry(f"bad access ID: {exc.message}") from None
    try:
        return Entry(access_id, parse_role(role), parse_effect(effect), parse_scope(scope))
    except AuthzError as exc:  # bad role, effect or scope: one code for a bad entry
        raise BadEntry(exc.message) from None


def check_changed_by(changed_by: str) -> str:
    """Validate an audit actor: non-empty, one line, no control or format characters."""
    # Why: the audit trail is read by people; a newline or bidi override could forge a line.
    if not isinstance(changed_by, str) or not changed_by or len(changed_by) > MAX_CHANGED_BY_LENGTH:
        raise BadEntry("changed_by must be a non-empty string of at most 1200 characters")
    for ch in changed_by:
        if unicodedata.category(ch)[0] == "C" or unicodedata.category(ch) in ("Zl", "Zp"):
            raise BadEntry(f"control or format character U+{ord(ch):04X} in changed_by")
    return changed_by
