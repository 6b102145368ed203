"""Each benchmark owns one section of ``bench/results.md``; writing it leaves every other section alone.

A section runs from ``<!-- NAME -->`` to ``<!-- end NAME -->`` (NAME is the script's path, for
example ``bench/agent_decide.py``). ``write_section`` replaces the text between a bench's own
markers, or appends the section at the end of the file the first time; the file's title and the
other benches' sections are kept byte for byte.

    from results_section import write_section          # scripts run as ``python bench/X.py``
    write_section("bench/X.py", ["## My figures", "", "| a | b |", ...])
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results.md"
TITLE = "# Benchmark results"


def markers(name: str) -> tuple[str, str]:
    """The begin and end markers of ``name``'s section."""
    return f"<!-- {name} -->", f"<!-- end {name} -->"


def replace_section(text: str, name: str, lines: Iterable[str]) -> str:
    """``text`` with ``name``'s section replaced by ``lines`` (appended when it has none)."""
    begin, end = markers(name)
    section = "\n".join([begin, *lines, end])
    start = text.find(begin)
    stop = text.find(end, start + len(begin)) if start >= 0 else -1
    if start >= 0 and stop >= 0:
        return text[:start] + section + text[stop + len(end) :]
    body = text.rstrip("\n") or TITLE
    return f"{body}\n\n{section}\n"


def write_section(name: str, lines: Iterable[str], path: Path = RESULTS) -> None:
    """Replace (or add) ``name``'s section of ``path``; nothing outside the markers changes."""
    text = path.read_text(encoding="utf-8") if path.exists() else TITLE + "\n"
    path.write_text(replace_section(text, name, lines), encoding="utf-8")
