"""docs/errors.md, parsed: every code's message, cause and fix.

The one parser of that file: the console shows a refusal's cause and fix from it, and the
project rules test (tests/test_project_rules.py) checks with it that every code is documented,
so what the console says and what the documentation says cannot differ.
"""

from __future__ import annotations

import functools
import re
import sys
from dataclasses import dataclass
from pathlib import Path

# A source checkout or an editable install reads the file where it is written; a wheel ships it
# as data (pyproject.toml's data-files) under <prefix>/share/jobsts/docs.
_SOURCE_ERRORS_MD = Path(__file__).resolve().parents[2] / "docs" / "errors.md"
_INSTALLED_ERRORS_MD = Path(sys.prefix) / "share" / "jobsts" / "docs" / "errors.md"
ERRORS_MD = _SOURCE_ERRORS_MD if _SOURCE_ERRORS_MD.is_file() else _INSTALLED_ERRORS_MD
_HEADING = re.compile(r"^### `([a-z_]+(?:\.[a-z_]+)*)`", re.M)
_FIELD = re.compile(r"^- \*\*(Message|Cause|Fix):\*\* ?(.*)$")


@dataclass(frozen=True, slots=True)
class ErrorDoc:
    """One documented code: its message, cause and fix (Markdown text, shown escaped)."""

    code: str
    message: str
    cause: str
    fix: str


def parse_error_docs(text: str) -> dict[str, ErrorDoc]:
    """Every ``### `code``` section of ``text`` with its Message, Cause and Fix bullets."""
    docs: dict[str, ErrorDoc] = {}
    for section in re.split(r"^(?=### )", text, flags=re.M):
        heading = _HEADING.match(section)
        if heading is None:
            continue
        fields: dict[str, list[str]] = {}
        current: list[str] | None = None
        for line in section.splitlines()[1:]:
            found = _FIELD.match(line)
            if found:
                current = fields.setdefault(found.group(1), [])
                current.append(found.group(2).strip())
            elif current is not None and line.startswith("  ") and line.strip():
                current.append(line.strip())  # a bullet continued on the next line
            else:
                current = None
        docs[heading.group(1)] = ErrorDoc(
            heading.group(1), *(" ".join(fields.get(name, [])) for name in ("Message", "Cause", "Fix"))
        )
    return docs


@functools.cache
def error_docs(path: Path = ERRORS_MD) -> dict[str, ErrorDoc]:
    """docs/errors.md of this installation, parsed once; empty when the file is not shipped."""
    try:
        return parse_error_docs(path.read_text(encoding="utf-8"))
    except OSError:
        return {}


def spans(text: str) -> list[tuple[bool, str]]:
    """``text`` cut at its Markdown code spans: ``(is_code, part)`` pairs for the template, which
    escapes every part (the documentation is text, never markup)."""
    return [(index % 2 == 1, part) for index, part in enumerate(text.split("`")) if part]


def plain(text: str) -> str:
    """What a reader sees of ``text``: its code spans without their backticks."""
    return "".join(part for _, part in spans(text))


def explain(code: str | None) -> ErrorDoc | None:
    return None if code is None else error_docs().get(code)
