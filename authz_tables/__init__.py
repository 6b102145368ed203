"""Authorization tables: a role lattice, allow/deny entries, scopes, explainable decisions.

One library serves two owners: the job manager's own table (kept by the STS) and each
node's local table (kept by the agent). It imports only ``realms``.

Public API (stable names; import them from here or from the submodule named):

``authz_tables.roles``
    ``Role`` (ADMINISTRATOR, CONFIGURATOR, OPERATOR, MONITOR); the lattice is the table
    ``DIRECTLY_IMPLIES`` (role -> directly implied roles), so a role can be added without
    changing callers. ``implies(a, b)``, ``roles_implying(r)``, ``roles_implied_by(r)``,
    ``parse_role(text)`` (``authz.bad_role``).
``authz_tables.entries``
    ``Effect`` (ALLOW, DENY), ``Scope`` (``Scope()`` = ``*`` node/cell-wide, ``NODE_SCOPE``;
    ``Scope("payroll")`` = ``authgroup:payroll``), ``Entry(principal: AccessId, role, effect,
    scope)`` (frozen; ``.key`` = the table's unique (access ID, role, scope)), ``AuditedEntry
    (entry, changed_by, changed_at)``, ``parse_entry``, ``parse_scope`` (``authz.bad_scope``),
    ``parse_effect``.
``authz_tables.decision``
    ``Snapshot(entries, version).decide(principals, required, scopes=()) -> Decision``:
    deny wins (a deny of the required role or of any role it implies, in any covering scope,
    for any principal: a deny of R refuses R and every role implying R), then an allow of any
    role implying the required one grants, else no. The node-wide
    scope ``*`` always covers. Matching is exact on canonical access ID strings; callers add
    the special subjects (``special:EVERYONE``, ...) to ``principals`` themselves.
    ``Decision(allowed, reason, granting, denying, nearest, required, subject, scope)``;
    ``decision.raise_if_denied()`` / ``snapshot.require(...)`` raise ``AuthzDenied``.
``authz_tables.store``
    ``AuthzTable(url_or_engine, refresh_interval=1.0, upgrade=False)``: ``grant`` / ``deny`` /
    ``revoke`` (keyword ``changed_by``, e.g. the admin's access ID) return a ``Diff``;
    ``list_entries(principal=None, role=None)``, ``export_entries()``, ``import_entries(entries,
    changed_by=..., replace=False, dry_run=False)``, ``history()``, ``snapshot()`` (cached;
    one version query at most every ``refresh_interval`` s; fails closed with
    ``authz.unavailable``), ``refresh()``, ``decide(...)``, ``close()``.
    ``migrate(engine_or_url)`` upgrades the schema (Alembic, history table
    ``alembic_version_authz``); the SQLAlchemy models share ``store.metadata``.
``authz_tables.transfer``
    ``export_csv`` / ``export_json`` / ``export_entries(entries, fmt)``, ``read_file(path)``,
    ``parse_text(text, fmt, name)`` -> ``[Located(entry, where)]`` (validates everything first).
``authz_tables.deny_audit``
    ``deny_changes(entries) -> [DenyChange]``: the decisions a table's denies decide differently
    now that a deny refuses the roles implying it instead of the roles it implies.
``authz_tables.cli``
    The ``jobsts authz`` click group; ``table_url_from_config(path)`` and
    ``resolve_table_url(value, base_dir)`` read the ``[authz] table`` key the agent shares.
``authz_tables.errors``
    ``AuthzDenied`` (``authz.denied``, with ``.principal``, ``.role``, ``.scope``: the refusal the
    STS and agent report), ``BadRole``, ``BadScope``, ``BadEntry``, ``BadFile``, ``Conflict``,
    ``AuthzConfigError`` (``authz.bad_config``), ``AuthzUnavailable`` (``authz.unavailable``).

Example::

    from authz_tables import AuthzTable, Role, Scope
    from realms.identity.access_id import EVERYONE

    with AuthzTable("sqlite:///authz.db", upgrade=True) as table:
        table.grant(operators_group, Role.OPERATOR, changed_by=str(admin_access_id))
        decision = table.snapshot().decide([principal.access_id, *principal.groups, EVERYONE],
                                           Role.OPERATOR, [Scope("payroll")])
        decision.raise_if_denied()   # authz.denied, naming who lacks what where
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from authz_tables.decision import Decision, Snapshot, decide
from authz_tables.entries import (
    NODE_SCOPE,
    AuditedEntry,
    Effect,
    Entry,
    Scope,
    parse_effect,
    parse_entry,
    parse_scope,
)
from authz_tables.errors import (
    AuthzConfigError,
    AuthzDenied,
    AuthzError,
    AuthzUnavailable,
    BadEntry,
    BadFile,
    BadRole,
    BadScope,
    Conflict,
)
from authz_tables.roles import Role, implies, parse_role, roles_implied_by, roles_implying

if TYPE_CHECKING:
    from authz_tables.store import AuthzTable, Diff, migrate

_LAZY = {"AuthzTable": "authz_tables.store", "Diff": "authz_tables.store", "migrate": "authz_tables.store"}


def __getattr__(name: str) -> Any:
    # The store pulls in SQLAlchemy; import it only when asked for.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'authz_tables' has no attribute {name!r}")


__all__ = [
    "NODE_SCOPE",
    "AuditedEntry",
    "AuthzConfigError",
    "AuthzDenied",
    "AuthzError",
    "AuthzTable",
    "AuthzUnavailable",
    "BadEntry",
    "BadFile",
    "BadRole",
    "BadScope",
    "Conflict",
    "Decision",
    "Diff",
    "Effect",
    "Entry",
    "Role",
    "Scope",
    "Snapshot",
    "decide",
    "implies",
    "migrate",
    "parse_effect",
    "parse_entry",
    "parse_role",
    "parse_scope",
    "roles_implied_by",
    "roles_implying",
]
