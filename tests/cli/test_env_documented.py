"""Every ``JOBSTS_*`` environment variable the code reads is documented in the README's
"Environment variables" table; the list is derived from the source, not kept by hand."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("realms", "authz_tables", "sts", "agent_client")
NAME = re.compile(r"\bJOBSTS_[A-Z0-9_]+\b")


def variables_in_code() -> set[str]:
    found: set[str] = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            found |= {name for name in NAME.findall(path.read_text(encoding="utf-8")) if not name.endswith("_")}
    return found


def test_every_jobsts_variable_is_documented() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("### Environment variables") :]
    table = table[: table.index("\n### ")]
    documented = set(re.findall(r"^\| `(JOBSTS_[A-Z0-9_]+)` \|", table, re.M))
    in_code = variables_in_code()
    assert len(in_code) >= 15
    assert in_code <= documented, f"undocumented: {sorted(in_code - documented)}"
    assert documented <= in_code, f"documented but not read anywhere: {sorted(documented - in_code)}"
