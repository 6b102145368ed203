"""Directory attribute values as text: strict UTF-8 (RFC 4511 §4.1.2 LDAPString), no controls.

A value that is not valid UTF-8, or that holds a control character (C0, C1, DEL), cannot be a
name in an access ID, a log line or a token claim. Such values are never repaired (no
replacement characters, which would make two different names equal): an entry's bad values are
set aside and named, so the registry can refuse the user's own entry with
``ldap.value_invalid``, or drop a group and log why.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

Attributes = dict[str, list[str]]


def control_problem(value: str) -> str | None:
    """The first control character of ``value`` (or an unpaired surrogate), or ``None``."""
    # Why ASCII first: nearly every value is ASCII, and one C-level scan settles it.
    if value.isascii() and value.isprintable():
        return None
    for index, ch in enumerate(value):
        if unicodedata.category(ch) in ("Cc", "Cs"):
            return f"control character U+{ord(ch):04X} at {index}"
    return None


def text_problem(raw: bytes) -> str | None:
    """Why ``raw`` is not usable directory text, or ``None`` if it is."""
    try:
        value = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not valid UTF-8 (byte {exc.start})"
    return control_problem(value)


Problem = tuple[str, str]  # (lower-case attribute name, or "dn"; what is wrong)


@dataclass(slots=True)
class DecodedEntry:
    """One search result entry: its DN and attributes as text, and the values that were not."""

    dn: str
    attrs: Attributes
    problems: list[Problem] = field(default_factory=list)

    def problem(self, ignore: tuple[str, ...] = ()) -> str | None:
        """The problems outside the ``ignore``d attributes, as one line (``None`` if none)."""
        found = [f"{name}: {what}" for name, what in self.problems if name not in ignore]
        return "; ".join(found) if found else None


def decode_entry(dn: str, raw: dict[str, list[bytes]]) -> DecodedEntry:
    """Decode a searchResEntry; bad values are left out of ``attrs`` and listed in ``problems``."""
    problems: list[Problem] = []
    dn_problem = control_problem(dn)
    if dn_problem:
        problems.append(("dn", dn_problem))
    attrs: Attributes = {}
    for name, values in raw.items():
        key = name.lower()
        kept = []
        for value in values:
            problem = text_problem(value)
            if problem:
                problems.append((key, problem))
            else:
                kept.append(value.decode("utf-8"))
        attrs[key] = kept
    return DecodedEntry(dn, attrs, problems)
