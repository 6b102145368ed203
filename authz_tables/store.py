"""``AuthzTable``: a stored authorization table with audited changes and cached snapshots.

Writers (``grant``, ``deny``, ``revoke``, ``import_entries``) each run in one transaction that
first bumps ``authz_version``; readers keep an immutable ``Snapshot`` and check that counter
at most once per ``refresh_interval`` seconds (one single-row query), reloading the entries
only when it moved. ``Snapshot.decide`` itself never touches the database. Thread-safe.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, delete, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from authz_tables.decision import Decision, Snapshot
from authz_tables.diff import Change, ChangeRecord, Diff
from authz_tables.entries import (
    NODE_SCOPE,
    AuditedEntry,
    Effect,
    Entry,
    Scope,
    check_changed_by,
    parse_entry,
)
from authz_tables.errors import AuthzError, AuthzUnavailable, Conflict
from authz_tables.models import (
    Base,
    ChangeRow,
    EntryRow,
    VersionRow,
    make_engine,
    metadata,
    migrate,
    safe_url,
)
from authz_tables.roles import Role
from realms.identity.access_id import AccessId

_Key = tuple[str, str, str]  # (access ID, role, scope) as stored
# The STS's audit logger, by name (authz_tables imports nothing from sts).
_AUDIT = logging.getLogger("jobsts.audit")
_E = cast(Table, EntryRow.__table__)
_V = cast(Table, VersionRow.__table__)
_C = cast(Table, ChangeRow.__table__)


def _utc(value: datetime) -> datetime:
    # SQLite returns naive datetimes; every stored time is UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _entry(row: Any) -> Entry:
    try:
        return parse_entry(row.principal, row.role, row.effect, row.scope)
    except AuthzError as exc:
        # Why: a row that cannot be read might be a deny; failing closed beats skipping it.
        raise AuthzUnavailable(f"authz table row {row.id} is unreadable: {exc.message}") from None


def _keyed_entries(rows: Iterable[Any]) -> Iterator[tuple[str, str, Entry]]:
    """(access ID text, scope text, entry) per row, parsing each distinct text once."""
    principals: dict[str, AccessId] = {}
    fields: dict[tuple[str, str, str], tuple[Role, Effect, Scope]] = {}
    for row in rows:
        principal = principals.get(row.principal)
        parts = fields.get((row.role, row.effect, row.scope))
        if principal is None or parts is None:
            entry = _entry(row)
            principal = principals[row.principal] = entry.principal
            parts = fields[(row.role, row.effect, row.scope)] = (entry.role, entry.effect, entry.scope)
        yield row.principal, row.scope, Entry(principal, *parts)


class AuthzTable:
    """An authorization table in a database, opened by SQLAlchemy URL or ``Engine``.

    ``upgrade=True`` runs the migrations first (creating the schema on first use).
    ``refresh_interval`` bounds how stale ``snapshot()`` may be, in seconds (0 = check on
    every call). An engine passed in is not disposed by ``close()``; one built from a URL is.
    """

    def __init__(self, target: Engine | str, *, refresh_interval: float = 1.0, upgrade: bool = False) -> None:
        self.engine = make_engine(target) if isinstance(target, str) else target
        self._owns_engine = isinstance(target, str)
        self.refresh_interval = refresh_interval
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._checked_at = float("-inf")
        if upgrade:
            try:
                migrate(self.engine)
            except BaseException:
                self.close()
                raise

    @property
    def url(self) -> str:
        return safe_url(self.engine)

    def close(self) -> None:
        if self._owns_engine:
            self.engine.dispose()

    def __enter__(self) -> AuthzTable:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _unavailable(self, exc: SQLAlchemyError) -> AuthzUnavailable:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return AuthzUnavailable(f"authz table {self.url} cannot be used: {reason}")

    # -- reading -------------------------------------------------------------------------

    def version(self) -> int:
        """The committed version counter (one single-row query)."""
        try:
            with self._reader() as conn:
                return self._version(conn)
        except SQLAlchemyError as exc:
            raise self._unavailable(exc) from None

    def _reader(self) -> Connection:
        """A connection for single-statement reads: no BEGIN round trip on SQLite."""
        return self.engine.connect().execution_options(sqlite_begin="")

    def _version(self, conn: Connection) -> int:
        value = conn.execute(select(_V.c.version).where(_V.c.id == 1)).scalar()
        if value is None:
            raise AuthzUnavailable(f"authz table {self.url} has no version row; run its migrations")
        return int(value)

    def snapshot(self) -> Snapshot:
        """The current snapshot; checks the version at most once per ``refresh_interval``.

        Raises ``authz.unavailable`` when the check fails, rather than serve a snapshot that
        may miss a new deny.
        """
        snap = self._snapshot
        if snap is not None and time.monotonic() - self._checked_at < self.refresh_interval:
            return snap
        with self._lock:
            snap = self._snapshot
            if snap is not None and time.monotonic() - self._checked_at < self.refresh_interval:
                return snap
            return self._refresh_locked()

    def refresh(self) -> Snapshot:
        """Check the version now and reload if it moved."""
        with self._lock:
            return self._refresh_locked()

    def _refresh_locked(self) -> Snapshot:
        try:
            with self._reader() as conn:
                version = self._version(conn)
                snap = self._snapshot
                if snap is None or snap.version != version:
                    snap = self._load(conn, version)
        except SQLAlchemyError as exc:
            # Why: fail closed; a stale snapshot could still grant what was just revoked.
            raise self._unavailable(exc) from None
        self._snapshot = snap
        self._checked_at = time.monotonic()
        return snap

    def _load(self, conn: Connection, version: int) -> Snapshot:
        # Optimistic read: the version is bumped in every writing transaction, so if it is the
        # same before and after reading the entries, they are exactly that version's entries.
        for _ in range(10):
            rows = conn.execute(select(_E.c.id, _E.c.principal, _E.c.role, _E.c.effect, _E.c.scope)).all()
            conn.rollback()
            after = self._version(conn)
            if after == version:
                return Snapshot.from_keyed(_keyed_entries(rows), version)
            version = after
        raise AuthzUnavailable(f"authz table {self.url} changes too fast to take a consistent snapshot")

    def decide(self, principals: Iterable[AccessId | str], required: Role, scopes: Iterable[Scope] = ()) -> Decision:
        """``snapshot().decide(...)``: at most one version query per ``refresh_interval``."""
        return self.snapshot().decide(principals, required, scopes)

    def list_entries(self, principal: AccessId | None = None, role: Role | None = None) -> list[AuditedEntry]:
        """Entries with who changed each last and when, sorted; filtered by exact principal and role."""
        query = select(_E).order_by(_E.c.principal, _E.c.role, _E.c.scope)
        if principal is not None:
            query = query.where(_E.c.principal == str(principal))
        if role is not None:
            query = query.where(_E.c.role == role.value)
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(query).all()
        except SQLAlchemyError as exc:
            raise self._unavailable(exc) from None
        found = [AuditedEntry(_entry(row), row.changed_by, _utc(row.changed_at)) for row in rows]
        return sorted(found, key=lambda a: a.entry.sort_key())

    def export_entries(self) -> list[Entry]:
        """All entries, sorted by (access ID, role, scope): what ``transfer`` writes out."""
        return [a.entry for a in self.list_entries()]

    def history(self, principal: AccessId | None = None, limit: int = 100) -> list[ChangeRecord]:
        """The newest ``limit`` audit records (newest first), optionally for one principal."""
        query = select(_C).order_by(_C.c.id.desc()).limit(limit)
        if principal is not None:
            query = query.where(_C.c.principal == str(principal))
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(query).all()
        except SQLAlchemyError as exc:
            raise self._unavailable(exc) from None
        return [
            ChangeRecord(_utc(r.changed_at), r.changed_by, r.action, r.principal, r.role, r.scope,
                         r.effect_before, r.effect_after)
            for r in rows
        ]  # fmt: skip

    # -- changing ------------------------------------------------------------------------

    def grant(self, principal: AccessId, role: Role, scope: Scope = NODE_SCOPE, *, changed_by: str) -> Diff:
        """Allow ``role`` to ``principal`` on ``scope`` (replacing a deny of the same key)."""
        return self._put(Entry(principal, role, Effect.ALLOW, scope), changed_by)

    def deny(self, principal: AccessId, role: Role, scope: Scope = NODE_SCOPE, *, changed_by: str) -> Diff:
        """Deny ``role`` and every role that implies it (deny operator also refuses administrator) on ``scope``."""
        return self._put(Entry(principal, role, Effect.DENY, scope), changed_by)

    def _put(self, entry: Entry, changed_by: str) -> Diff:
        return self._change(changed_by, lambda existing: ([entry], [], False), keys=[entry.key])

    def revoke(self, principal: AccessId, role: Role, scope: Scope = NODE_SCOPE, *, changed_by: str) -> Diff:
        """Remove the entry for (principal, role, scope), whatever its effect; empty diff if none."""
        key = (str(principal), role.value, str(scope))
        return self._change(changed_by, lambda existing: ([], [key], False), keys=[key])

    def import_entries(
        self, entries: Iterable[Entry], *, changed_by: str, replace: bool = False, dry_run: bool = False
    ) -> Diff:
        """Make the table hold ``entries``, atomically and idempotently; returns the diff.

        Listed entries are added or get the listed effect; with ``replace=True`` every entry
        not listed is removed too, so the table becomes exactly the list. ``dry_run`` computes
        the diff and changes nothing. Two entries with one key raise ``authz.conflict``.
        """
        wanted: dict[tuple[str, str, str], Entry] = {}
        for entry in entries:
            other = wanted.get(entry.key)
            if other is not None:
                kind = "duplicate" if other == entry else "conflicting"
                raise Conflict(f"{kind} entries for {entry.principal} {entry.role} on {entry.scope}")
            wanted[entry.key] = entry

        def plan(existing: dict[tuple[str, str, str], Entry]) -> tuple[list[Entry], list[tuple[str, str, str]], bool]:
            removed = [k for k in existing if k not in wanted] if replace else []
            return list(wanted.values()), removed, dry_run

        return self._change(changed_by, plan, keys=None if replace else list(wanted))

    def _change(
        self,
        changed_by: str,
        plan: Callable[[dict[_Key, Entry]], tuple[list[Entry], list[_Key], bool]],
        *,
        keys: list[tuple[str, str, str]] | None,
    ) -> Diff:
        check_changed_by(changed_by)
        now = datetime.now(UTC)
        try:
            with self.engine.connect() as conn:
                with conn.begin() as tx:
                    # Why first: bumping the counter takes the write lock (row lock on PostgreSQL,
                    # the database lock on SQLite), so concurrent changes serialise and each diff is
                    # computed against committed state; and readers see every change.
                    if conn.execute(update(_V).where(_V.c.id == 1).values(version=_V.c.version + 1)).rowcount != 1:
                        raise AuthzUnavailable(f"authz table {self.url} has no version row; run its migrations")
                    existing, ids = self._existing(conn, keys)
                    put, remove, dry_run = plan(existing)
                    changes: list[Change] = []
                    for entry in put:
                        before = existing.get(entry.key)
                        if before != entry:
                            changes.append(Change(before, entry))
                    changes.extend(Change(existing[k], None) for k in remove if k in existing)
                    unchanged = len(put) - sum(1 for c in changes if c.after is not None)
                    if dry_run or not changes:
                        tx.rollback()
                        return Diff(tuple(changes), unchanged, applied=False)
                    self._write(conn, changes, ids, changed_by, now)
        except SQLAlchemyError as exc:
            raise self._unavailable(exc) from None
        # Our own change is visible to our next snapshot() at once, not after the interval.
        self._checked_at = float("-inf")
        _audit(changes, changed_by, now)
        return Diff(tuple(changes), unchanged, applied=True)

    def _existing(
        self, conn: Connection, keys: list[tuple[str, str, str]] | None
    ) -> tuple[dict[tuple[str, str, str], Entry], dict[tuple[str, str, str], int]]:
        query = select(_E.c.id, _E.c.principal, _E.c.role, _E.c.effect, _E.c.scope)
        if keys is not None and len(keys) <= 200:
            query = query.where(_E.c.principal.in_({k[0] for k in keys}))
        existing: dict[tuple[str, str, str], Entry] = {}
        ids: dict[tuple[str, str, str], int] = {}
        for row in conn.execute(query):
            entry = _entry(row)
            existing[entry.key] = entry
            ids[entry.key] = row.id
        return existing, ids

    @staticmethod
    def _write(
        conn: Connection, changes: list[Change], ids: dict[tuple[str, str, str], int], by: str, now: datetime
    ) -> None:
        added = [c.after for c in changes if c.before is None and c.after is not None]
        changed = [c.after for c in changes if c.before is not None and c.after is not None]
        removed = [c.before for c in changes if c.after is None and c.before is not None]
        if removed:
            conn.execute(delete(_E).where(_E.c.id.in_([ids[e.key] for e in removed])))
        for entry in changed:
            conn.execute(
                update(_E)
                .where(_E.c.id == ids[entry.key])
                .values(effect=entry.effect.value, changed_by=by, changed_at=now)
            )
        if added:
            conn.execute(insert(_E), [
                {"principal": str(e.principal), "role": e.role.value, "scope": str(e.scope),
                 "effect": e.effect.value, "changed_by": by, "changed_at": now}
                for e in added
            ])  # fmt: skip
        log = []
        for change in changes:
            subject = change.after or change.before
            assert subject is not None
            log.append({
                "changed_at": now, "changed_by": by, "action": change.action, "principal": str(subject.principal),
                "role": subject.role.value, "scope": str(subject.scope),
                "effect_before": change.before.effect.value if change.before else None,
                "effect_after": change.after.effect.value if change.after else None,
            })  # fmt: skip
        conn.execute(insert(_C), log)

    def entries(self) -> Iterator[Entry]:
        """The entries of the current snapshot (no query if it is fresh)."""
        return iter(self.snapshot().entries())

    list = list_entries


__all__ = [
    "AuthzTable",
    "Base",
    "Change",
    "ChangeRecord",
    "ChangeRow",
    "Diff",
    "EntryRow",
    "VersionRow",
    "make_engine",
    "metadata",
    "migrate",
]


def _audit(changes: list[Change], changed_by: str, now: datetime) -> None:
    """One ``authz.changed`` line per change on the service's JSON audit log (``jobsts.audit``)."""
    if not _AUDIT.isEnabledFor(logging.INFO):
        return
    for change in changes:
        subject = change.after or change.before
        assert subject is not None
        _AUDIT.info("%s", json.dumps({
            "time": now.isoformat(timespec="milliseconds"), "event": "authz.changed", "actor": changed_by[:256],
            "realm": None, "node": None, "job": None, "outcome": change.action, "code": None, "client": None,
            "principal": str(subject.principal), "role": subject.role.value, "scope": str(subject.scope),
            "effect_before": change.before.effect.value if change.before else None,
            "effect_after": change.after.effect.value if change.after else None,
        }, separators=(",", ":")))  # fmt: skip
