"""The JSON shapes of a table served over HTTP: entries, audited entries, diffs, change records.

The STS's table endpoints write them; the CLI's remote table reads them back into the same
types, so ``jobsts authz --url`` prints exactly what ``jobsts authz --table`` prints.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from authz_tables.diff import Change, ChangeRecord, Diff
from authz_tables.entries import AuditedEntry, Entry, parse_entry
from authz_tables.errors import BadEntry


def entry_json(entry: Entry) -> dict[str, str]:
    return {"access_id": str(entry.principal), "role": entry.role.value, "effect": entry.effect.value,
            "scope": str(entry.scope)}  # fmt: skip


def audited_json(audited: AuditedEntry) -> dict[str, Any]:
    return {**entry_json(audited.entry), "changed_by": audited.changed_by,
            "changed_at": audited.changed_at.isoformat(timespec="milliseconds")}  # fmt: skip


def diff_json(diff: Diff) -> dict[str, Any]:
    changes = [{"before": entry_json(c.before) if c.before else None, "after": entry_json(c.after) if c.after else None}
               for c in diff.changes]  # fmt: skip
    return {"changes": changes, "unchanged": diff.unchanged, "applied": diff.applied, "summary": diff.summary()}


def record_json(record: ChangeRecord) -> dict[str, Any]:
    return {"changed_at": record.changed_at.isoformat(timespec="milliseconds"), "changed_by": record.changed_by,
            "action": record.action, "access_id": record.principal, "role": record.role, "scope": record.scope,
            "effect_before": record.effect_before, "effect_after": record.effect_after}  # fmt: skip


def _text(data: Any, name: str) -> str:
    value = data.get(name) if isinstance(data, dict) else None
    if not isinstance(value, str):
        raise BadEntry(f"{name} is missing or not a string")
    return value


def entry_from(data: Any) -> Entry:
    """An entry from its JSON object (``authz.bad_entry`` naming the bad field)."""
    return parse_entry(_text(data, "access_id"), _text(data, "role"), _text(data, "effect"), _text(data, "scope"))


def _time(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise BadEntry(f"{text[:40]!r} is not an ISO 8601 time") from None


def audited_from(data: Any) -> AuditedEntry:
    return AuditedEntry(entry_from(data), _text(data, "changed_by"), _time(_text(data, "changed_at")))


def diff_from(data: Any) -> Diff:
    if not isinstance(data, dict) or not isinstance(data.get("changes"), list):
        raise BadEntry("a diff must be an object with a list of changes")
    changes = []
    for change in data["changes"]:
        before, after = (change.get(side) if isinstance(change, dict) else None for side in ("before", "after"))
        changes.append(Change(entry_from(before) if before else None, entry_from(after) if after else None))
    unchanged = data.get("unchanged")
    return Diff(tuple(changes), unchanged if isinstance(unchanged, int) else 0, bool(data.get("applied")))


def record_from(data: Any) -> ChangeRecord:
    effects = [data.get(name) if isinstance(data, dict) else None for name in ("effect_before", "effect_after")]
    return ChangeRecord(_time(_text(data, "changed_at")), _text(data, "changed_by"), _text(data, "action"),
                        _text(data, "access_id"), _text(data, "role"), _text(data, "scope"),
                        *(e if isinstance(e, str) else None for e in effects))  # fmt: skip
