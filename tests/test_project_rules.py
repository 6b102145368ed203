"""Rules of the whole project: dependency direction, and every error code documented."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

from realms.errors import JobstsError

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("realms", "authz_tables", "sts", "agent_client")
# What each package may import from the project (design.md, "Packages").
ALLOWED = {
    "realms": {"realms"},
    "authz_tables": {"authz_tables", "realms"},
    "sts": {"sts", "realms", "authz_tables"},
    "agent_client": {"agent_client", "realms", "authz_tables"},
}


def _imported_top_levels(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", PACKAGES)
def test_dependencies_point_one_way(package: str) -> None:
    offenders = []
    for path in (ROOT / package).rglob("*.py"):
        bad = (_imported_top_levels(path) & set(PACKAGES)) - ALLOWED[package]
        if bad:
            offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert offenders == []


def _all_error_classes() -> set[type[JobstsError]]:
    for package in PACKAGES:
        module = importlib.import_module(package)
        for info in pkgutil.walk_packages(module.__path__, prefix=f"{package}."):
            if ".migrations" in info.name or info.name.endswith(("wsgi", "gunicorn_conf")):
                continue
            importlib.import_module(info.name)
    seen: set[type[JobstsError]] = set()
    stack: list[type[JobstsError]] = [JobstsError]
    while stack:
        cls = stack.pop()
        if cls not in seen:
            seen.add(cls)
            stack.extend(cls.__subclasses__())
    return seen


def test_every_error_code_is_documented() -> None:
    documented = set(re.findall(r"^### `([a-z_]+(?:\.[a-z_]+)+)`", (ROOT / "docs/errors.md").read_text(), re.M))
    codes = {cls.code for cls in _all_error_classes()}
    assert codes - documented == set()


def test_documented_codes_have_message_cause_and_fix() -> None:
    text = (ROOT / "docs/errors.md").read_text()
    sections = re.split(r"^### ", text, flags=re.M)[1:]
    incomplete = [s.splitlines()[0] for s in sections if not all(w in s for w in ("Message", "Cause", "Fix"))]
    assert incomplete == []
