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


CODE_PATTERN = re.compile(r"[a-z_]+(?:\.[a-z_]+)*")
# Helpers whose positional argument at this index is an error code.
CODE_ARGUMENT = {"problem": 1, "oauth_error": 2}


def _string(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and CODE_PATTERN.fullmatch(node.value):
        return node.value
    return None


def _emitted_literal_codes(tree: ast.AST) -> set[str]:
    """Codes the code emits as literals: ``code="..."`` arguments and assignments, the code argument
    of ``problem()``/``oauth_error()``, and the values (and ``.get`` defaults) of ``*_CODES`` tables."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                if keyword.arg in ("code", "error_code") and (value := _string(keyword.value)):
                    found.add(value)
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            index = CODE_ARGUMENT.get(name)
            if index is not None and len(node.args) > index and (value := _string(node.args[index])):
                found.add(value)
            receiver = node.func.value if isinstance(node.func, ast.Attribute) else None
            if name == "get" and isinstance(receiver, ast.Name) and receiver.id.endswith("_CODES"):
                found.update(v for a in node.args[1:] if (v := _string(a)))
        elif isinstance(node, ast.Dict):
            # {"code": "..."}: result documents and problem bodies built by hand.
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "code" and (text := _string(value)):
                    found.add(text)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = {t.id if isinstance(t, ast.Name) else getattr(t, "attr", "") for t in targets}
            if "code" in names and (value := _string(node.value)):
                found.add(value)
            if any(n.endswith("_CODES") for n in names) and isinstance(node.value, ast.Dict):
                found.update(v for v in map(_string, node.value.values) if v)
    return found


def test_every_emitted_literal_code_is_documented() -> None:
    """Not only error classes: every code the error boundary, the problem helpers and the agent
    emit as a string literal must be in docs/errors.md."""
    documented = set(re.findall(r"^### `([a-z_]+(?:\.[a-z_]+)*)`", (ROOT / "docs/errors.md").read_text(), re.M))
    emitted: dict[str, str] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for code in _emitted_literal_codes(ast.parse(path.read_text(encoding="utf-8"))):
                emitted.setdefault(code, str(path.relative_to(ROOT)))
    assert {"request.too_large", "internal.error", "http.error"} <= set(emitted)  # the scan sees the boundary
    missing = sorted(f"{code} ({where})" for code, where in emitted.items() if code not in documented)
    assert missing == []
