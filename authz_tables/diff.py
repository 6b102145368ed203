"""What a change to a table did: ``Change`` (one entry), ``Diff`` (one transaction), ``ChangeRecord`` (audit)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from authz_tables.entries import Entry


@dataclass(frozen=True, slots=True)
class Change:
    """One difference: ``before`` None = added, ``after`` None = removed, both set = effect changed."""

    before: Entry | None
    after: Entry | None

    @property
    def action(self) -> str:
        return "added" if self.before is None else "removed" if self.after is None else "changed"

    def line(self) -> str:
        """``+ allow operator * user:...``, ``- ...`` or ``~ deny -> allow operator * user:...``."""
        if self.before is None:
            assert self.after is not None
            e = self.after
            return f"+ {e.effect} {e.role} {e.scope} {e.principal}"
        if self.after is None:
            e = self.before
            return f"- {e.effect} {e.role} {e.scope} {e.principal}"
        e = self.after
        return f"~ {self.before.effect} -> {e.effect} {e.role} {e.scope} {e.principal}"


@dataclass(frozen=True, slots=True)
class Diff:
    """What a change did (or, for a dry run, would do); ``unchanged`` counts entries left as they were."""

    changes: tuple[Change, ...]
    unchanged: int
    applied: bool

    def __bool__(self) -> bool:
        return bool(self.changes)

    def count(self, action: str) -> int:
        return sum(1 for c in self.changes if c.action == action)

    def summary(self) -> str:
        """``2 added, 1 changed, 0 removed, 5 unchanged``."""
        added, changed, removed = self.count("added"), self.count("changed"), self.count("removed")
        return f"{added} added, {changed} changed, {removed} removed, {self.unchanged} unchanged"


@dataclass(frozen=True, slots=True)
class ChangeRecord:
    """One row of the audit log."""

    changed_at: datetime
    changed_by: str
    action: str
    principal: str
    role: str
    scope: str
    effect_before: str | None
    effect_after: str | None
