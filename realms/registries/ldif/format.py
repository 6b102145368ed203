"""A small, strict reader of LDIF content records (RFC 2849).

Only what a directory export holds: an optional ``version: 1``, comments, folded lines,
``attr: value`` and ``attr:: base64``. Change records, controls and ``attr:< URL`` values
are refused, so a file can never make the reader fetch anything or mean two things.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from realms.errors import ConfigError

# RFC 2849 AttributeDescription: a descriptor or OID, then ;options.
_ATTR = re.compile(r"[A-Za-z][A-Za-z0-9-]*(;[A-Za-z0-9-]+)*|[0-9]+(\.[0-9]+)+(;[A-Za-z0-9-]+)*")


@dataclass(slots=True)
class LdifEntry:
    """One content record: its DN and attribute values keyed by lower-cased attribute name.

    ``names`` keeps each attribute's spelling from the file (for writing it back to a server).
    """

    dn: str
    line: int
    attrs: dict[str, list[str]] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> list[str]:
        return self.attrs.get(name.lower(), [])

    def first(self, name: str) -> str | None:
        values = self.get(name)
        return values[0] if values else None

    def add(self, name: str, value: str) -> None:
        key = name.lower()
        self.names.setdefault(key, name)
        self.attrs.setdefault(key, []).append(value)

    @property
    def object_classes(self) -> frozenset[str]:
        return frozenset(v.lower() for v in self.get("objectClass"))


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Unfold continuation lines (RFC 2849: a line starting with one space continues the last)."""
    current: str | None = None
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if raw.startswith(" ") and current is not None:
            current += raw[1:]
            continue
        if current is not None:
            yield start, current
        current, start = raw, number
    if current is not None:
        yield start, current


def _decode(source: str, number: int, value: str, encoded: bool) -> str:
    if not encoded:
        return value.lstrip(" ")
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{source}:{number}: bad base64 value", field="ldif") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        # Binary values (photos, certificates) are kept byte-for-byte; jobsts never reads them.
        return raw.decode("utf-8", "surrogateescape")


def parse_ldif(text: str, source: str = "<ldif>") -> list[LdifEntry]:
    """Parse LDIF content records; any deviation raises ``ConfigError`` naming ``source:line``."""
    entries: list[LdifEntry] = []
    entry: LdifEntry | None = None
    seen_dns: set[str] = set()
    first_record = True
    for number, line in _logical_lines(text):
        if line.startswith("#"):
            continue
        if not line.strip():
            entry = None
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ConfigError(f"{source}:{number}: expected 'attribute: value'", field="ldif")
        encoded = value.startswith(":")
        if value.startswith("<"):
            raise ConfigError(f"{source}:{number}: URL values (attr:<) are not accepted", field="ldif")
        if encoded:
            value = value[1:]
        if entry is None:
            if first_record and name.lower() == "version":
                if value.strip() != "1":
                    raise ConfigError(f"{source}:{number}: only LDIF version 1 is supported", field="ldif")
                first_record = False
                continue
            if name.lower() != "dn":
                raise ConfigError(f"{source}:{number}: a record must start with 'dn:'", field="ldif")
            dn = _decode(source, number, value, encoded).strip()
            if not dn:
                raise ConfigError(f"{source}:{number}: empty dn", field="ldif")
            key = dn.lower()
            if key in seen_dns:
                raise ConfigError(f"{source}:{number}: dn {dn!r} appears twice", field="ldif")
            seen_dns.add(key)
            entry = LdifEntry(dn=dn, line=number)
            entries.append(entry)
            first_record = False
            continue
        lowered = name.lower()
        if lowered in ("changetype", "control"):
            raise ConfigError(f"{source}:{number}: change records are not accepted, only entries", field="ldif")
        if _ATTR.fullmatch(name) is None:
            raise ConfigError(f"{source}:{number}: bad attribute name {name[:40]!r}", field="ldif")
        entry.add(name, _decode(source, number, value, encoded))
    return entries


def read_ldif(path: Path) -> list[LdifEntry]:
    """Read and parse an LDIF file (UTF-8)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read LDIF: {exc}", field="path") from None
    return parse_ldif(text, str(path))
