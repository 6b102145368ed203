"""Import and export of authorization entries as CSV or JSON.

CSV: a header naming the columns ``access_id``, ``role``, ``effect`` and ``scope`` (any
order; ``effect`` defaults to ``allow`` and ``scope`` to ``*`` when the column is absent; the
audit columns ``changed_by`` and ``changed_at`` are accepted and ignored). JSON: an object
``{"entries": [{"access_id": ..., "role": ..., "effect": ..., "scope": ...}, ...]}`` or a bare
list of such objects. Exports are sorted and byte-stable, so export → import → export
round-trips exactly. Reading validates the whole file before anything is changed: the first
problem raises ``authz.bad_entry`` / ``authz.bad_file`` / ``authz.conflict`` naming the line.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from authz_tables.entries import AuditedEntry, Entry, parse_entry
from authz_tables.errors import AuthzError, BadEntry, BadFile, Conflict

Format = Literal["csv", "json"]
FORMATS: tuple[Format, ...] = ("csv", "json")
COLUMNS = ("access_id", "role", "effect", "scope")
AUDIT_COLUMNS = ("changed_by", "changed_at")
DEFAULTS = {"effect": "allow", "scope": "*"}
MAX_FILE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Located:
    """An entry read from a file, with where it was: ``line N`` (CSV) or ``entry N (line L)`` (JSON)."""

    entry: Entry
    where: str


def export_csv(entries: Iterable[Entry | AuditedEntry]) -> str:
    """CSV text (header + one sorted row per entry); audit columns when given ``AuditedEntry``."""
    items = list(entries)
    audited = bool(items) and all(isinstance(i, AuditedEntry) for i in items)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS + AUDIT_COLUMNS if audited else COLUMNS)
    for item in sorted(items, key=_sort_key):
        entry = item.entry if isinstance(item, AuditedEntry) else item
        row = [str(entry.principal), entry.role.value, entry.effect.value, str(entry.scope)]
        if isinstance(item, AuditedEntry) and audited:
            row += [item.changed_by, item.changed_at.isoformat()]
        writer.writerow(row)
    return out.getvalue()


def export_json(entries: Iterable[Entry | AuditedEntry]) -> str:
    """JSON text: ``{"entries": [...]}``, sorted, one entry per line, newline-terminated."""
    lines = []
    for item in sorted(entries, key=_sort_key):
        entry = item.entry if isinstance(item, AuditedEntry) else item
        obj: dict[str, str] = {
            "access_id": str(entry.principal),
            "role": entry.role.value,
            "effect": entry.effect.value,
            "scope": str(entry.scope),
        }
        if isinstance(item, AuditedEntry):
            obj["changed_by"] = item.changed_by
            obj["changed_at"] = item.changed_at.isoformat()
        lines.append("    " + json.dumps(obj, ensure_ascii=False))
    body = ",\n".join(lines)
    return '{"entries": [\n' + body + "\n]}\n" if lines else '{"entries": []}\n'


def export_entries(entries: Iterable[Entry | AuditedEntry], fmt: Format) -> str:
    return export_csv(entries) if fmt == "csv" else export_json(entries)


def _sort_key(item: Entry | AuditedEntry) -> tuple[str, str, str, str]:
    return (item.entry if isinstance(item, AuditedEntry) else item).sort_key()


def detect_format(name: str, text: str) -> Format:
    """By extension (``.csv`` / ``.json``), else by the first character (``{``/``[`` = JSON)."""
    lower = name.lower()
    if lower.endswith(".json"):
        return "json"
    if lower.endswith(".csv"):
        return "csv"
    return "json" if text.lstrip()[:1] in ("{", "[") else "csv"


def read_file(path: str | Path, fmt: Format | None = None) -> list[Located]:
    """Read and validate an import file entirely; raises on the first problem, naming the line."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BadFile(f"cannot read {path}: {exc.strerror or exc}", file=str(path)) from None
    return parse_text(decode(data, str(path)), fmt or detect_format(path.name, data[:64].decode("latin-1")), str(path))


def decode(data: bytes, name: str) -> str:
    if len(data) > MAX_FILE_BYTES:
        raise BadFile(f"{name}: larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB", file=name)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise BadFile(f"{name}: line {line}: not valid UTF-8", file=name, line=line) from None


def parse_text(text: str, fmt: Format, name: str = "<input>") -> list[Located]:
    """Parse CSV or JSON text into located entries; duplicates and conflicts raise ``authz.conflict``."""
    found = _parse_csv(text, name) if fmt == "csv" else _parse_json(text, name)
    seen: dict[tuple[str, str, str], Located] = {}
    for item in found:
        first = seen.get(item.entry.key)
        if first is not None:
            e = item.entry
            if first.entry.effect == e.effect:
                what = f"duplicate entry {e.effect} {e.role} on {e.scope} for {e.principal}"
            else:
                what = (
                    f"conflicting entries for {e.principal} {e.role} on {e.scope}: {first.entry.effect} and {e.effect}"
                )
            raise Conflict(f"{name}: {item.where}: {what} (first at {first.where})", file=name, line=item.where)
        seen[item.entry.key] = item
    return found


def _entry_from(fields: dict[str, Any], name: str, where: str) -> Entry:
    values: dict[str, str] = {}
    for column in COLUMNS:
        value = fields.get(column, DEFAULTS.get(column))
        if value is None:
            raise BadEntry(f"{name}: {where}: missing {column}", file=name, line=where)
        if not isinstance(value, str):
            raise BadEntry(f"{name}: {where}: {column} must be a string", file=name, line=where)
        values[column] = value
    try:
        return parse_entry(values["access_id"], values["role"], values["effect"], values["scope"])
    except AuthzError as exc:
        raise BadEntry(f"{name}: {where}: {exc.message}", file=name, line=where) from None


def _parse_csv(text: str, name: str) -> list[Located]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        while header is not None and not header:
            header = next(reader, None)
        if header is None:
            raise BadFile(f"{name}: empty file: expected a header line {','.join(COLUMNS)}", file=name)
        header = [h.strip() for h in header]
        unknown = [h for h in header if h not in COLUMNS + AUDIT_COLUMNS]
        if unknown or len(set(header)) != len(header) or "access_id" not in header or "role" not in header:
            raise BadFile(
                f"{name}: line {reader.line_num}: bad header {','.join(header)[:120]!r}: "
                f"expected columns {','.join(COLUMNS)} (effect and scope optional)",
                file=name,
                line=reader.line_num,
            )
        found = []
        for row in reader:
            where = f"line {reader.line_num}"
            if not row:
                continue
            if len(row) != len(header):
                raise BadEntry(
                    f"{name}: {where}: {len(row)} fields, expected {len(header)} ({','.join(header)})",
                    file=name,
                    line=where,
                )
            found.append(Located(_entry_from(dict(zip(header, row, strict=True)), name, where), where))
        return found
    except csv.Error as exc:
        raise BadFile(
            f"{name}: line {reader.line_num}: not valid CSV: {exc}", file=name, line=reader.line_num
        ) from None


def _parse_json(text: str, name: str) -> list[Located]:
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise BadFile(f"{name}: line {exc.lineno}: not valid JSON: {exc.msg}", file=name, line=exc.lineno) from None
    except ValueError as exc:
        raise BadFile(f"{name}: not valid JSON: {exc}", file=name) from None
    if isinstance(doc, dict):
        if set(doc) != {"entries"} or not isinstance(doc["entries"], list):
            raise BadFile(f'{name}: expected {{"entries": [...]}} or a list of entries', file=name)
        items = doc["entries"]
    elif isinstance(doc, list):
        items = doc
    else:
        raise BadFile(f'{name}: expected {{"entries": [...]}} or a list of entries', file=name)
    lines = _entry_lines(text, len(items))
    found = []
    for number, item in enumerate(items, start=1):
        where = f"entry {number} (line {lines[number - 1]})"
        if not isinstance(item, dict):
            raise BadEntry(f"{name}: {where}: an entry must be an object", file=name, line=where)
        unknown = sorted(set(item) - set(COLUMNS + AUDIT_COLUMNS))
        if unknown:
            raise BadEntry(f"{name}: {where}: unknown field {unknown[0]!r}", file=name, line=where)
        found.append(Located(_entry_from(item, name, where), where))
    return found


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            # Why: a repeated key could be read two ways by two tools; refuse it.
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _entry_lines(text: str, count: int) -> list[int]:
    """The line on which each entry of an already validated document starts."""
    decoder = json.JSONDecoder()
    ws = re.compile(r"[ \t\n\r]*")

    def skip(pos: int) -> int:
        match = ws.match(text, pos)
        return match.end() if match else pos

    pos = skip(0)
    if text.startswith("{", pos):  # {"entries": [ ... ]}: the one key, then the array
        _, pos = decoder.raw_decode(text, skip(pos + 1))
        pos = skip(skip(pos) + 1)
    pos = skip(pos + 1)  # past "["
    lines = []
    for _ in range(count):
        lines.append(text.count("\n", 0, pos) + 1)
        _, pos = decoder.raw_decode(text, pos)
        pos = skip(skip(pos) + 1)  # past ","
    return lines
