"""Rules of the whole project: the import graph (direction and no circles), and every error code documented.

The import rules read the source with :mod:`ast`; nothing is imported, so they also hold for
modules that need a server or a Debian package to import. Which imports count:

* **Direction rules** (``RULES``) count every import statement, wherever it sits: at module
  level, inside a function, or under ``if TYPE_CHECKING:``. A type-only import still makes one
  package know another, and that knowledge is what the direction forbids.
* **The circle rule** counts the imports that run: module-level and function-level ones. An
  import deferred into a function is the usual way to hide a circle, so it counts. Imports under
  ``if TYPE_CHECKING:`` never run, and they are how an annotation names a type that points back,
  so they do not count.
* Dynamic imports (``importlib.import_module(name)``) are invisible to both.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest

from realms.errors import JobstsError
from sts.console.error_docs import parse_error_docs

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("realms", "authz_tables", "sts", "agent_client")


# --- the import graph -------------------------------------------------------------------------


@dataclass(frozen=True)
class Import:
    """One project module named by an import statement of another."""

    target: str
    line: int
    type_checking: bool  # under ``if TYPE_CHECKING:``: never runs


@dataclass
class Module:
    name: str
    path: Path
    is_package: bool
    imports: list[Import] = field(default_factory=list)


def _dotted_name(path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement in ``tree`` (any depth), with whether it sits under TYPE_CHECKING."""
    stack: list[tuple[ast.AST, bool]] = [(tree, False)]
    while stack:
        node, type_checking = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, type_checking
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend((child, True) for child in node.body)
            stack.extend((child, type_checking) for child in node.orelse)
        else:
            stack.extend((child, type_checking) for child in ast.iter_child_nodes(node))


def _longest_known_prefix(dotted: str, known: Iterable[str]) -> str | None:
    names = set(known)
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in names:
            return candidate
    return None


def _targets(node: ast.Import | ast.ImportFrom, module: Module, known: set[str]) -> Iterator[str]:
    """The project modules one import statement loads, ``from pkg import module`` resolved to the module."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            found = _longest_known_prefix(alias.name, known)
            if found:
                yield found
        return
    if node.level:
        package = module.name if module.is_package else module.name.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{node.module}" if node.module else package
    else:
        base = node.module or ""
    for alias in node.names:
        if f"{base}.{alias.name}" in known:  # ``from pkg import module``
            yield f"{base}.{alias.name}"
        else:  # ``from module import name``: the name lives in ``base`` (or the package above it)
            found = _longest_known_prefix(base, known)
            if found:
                yield found


@cache
def import_graph() -> dict[str, Module]:
    """Every module of the four packages, with the project modules it imports."""
    modules: dict[str, Module] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name, is_package = _dotted_name(path)
            modules[name] = Module(name, path, is_package)
    known = set(modules)
    for module in modules.values():
        tree = ast.parse(module.path.read_text(encoding="utf-8"), filename=str(module.path))
        for node, type_checking in _import_nodes(tree):
            for target in _targets(node, module, known):
                if target != module.name:
                    module.imports.append(Import(target, node.lineno, type_checking))
    return modules


def _runtime_edges(modules: dict[str, Module]) -> dict[str, set[str]]:
    return {name: {i.target for i in m.imports if not i.type_checking} for name, m in modules.items()}


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative): the groups of modules that reach each other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                groups.append(sorted(group))
    return groups


def shortest_cycle(start: str, group: set[str], edges: dict[str, set[str]]) -> list[str]:
    """The shortest path ``start -> ... -> start`` inside one strongly connected group."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(edges[node] & group):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"{start} is in no cycle")  # unreachable for a group of two or more


def import_circles(modules: dict[str, Module]) -> list[str]:
    """One readable cycle per group of modules that import each other at run time."""
    edges = _runtime_edges(modules)
    circles = []
    for group in strongly_connected(edges):
        if len(group) > 1:
            cycle = shortest_cycle(group[0], set(group), edges)
            also = sorted(set(group) - set(cycle))
            circles.append(" -> ".join(cycle) + (f" (and {', '.join(also)} in the same circle)" if also else ""))
    return sorted(circles)


def test_the_graph_resolves_every_import_form() -> None:
    """The graph builder itself: relative imports, ``from pkg import module``, TYPE_CHECKING, functions."""
    source = {
        "p/__init__.py": "from p.a import thing\n",
        "p/a.py": "from . import b\nfrom .sub import c as alias\nimport p.sub.c\nthing = 1\n",
        "p/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from p import a\n",
        "p/sub/__init__.py": "",
        "p/sub/c.py": "def later():\n    from ..a import thing\n    return thing\nfrom p.sub import d\n",
        "p/sub/d.py": "import os\n",
    }
    modules: dict[str, Module] = {}
    for relative in source:
        name, is_package = _dotted_name(ROOT / relative)
        modules[name] = Module(name, ROOT / relative, is_package)
    known = set(modules)
    for relative, text in source.items():
        module = modules[_dotted_name(ROOT / relative)[0]]
        for node, type_checking in _import_nodes(ast.parse(text)):
            module.imports.extend(Import(t, node.lineno, type_checking) for t in _targets(node, module, known))
    edges = _runtime_edges(modules)
    assert edges == {
        "p": {"p.a"},
        "p.a": {"p.b", "p.sub.c"},
        "p.b": set(),
        "p.sub": set(),
        "p.sub.c": {"p.a", "p.sub.d"},
        "p.sub.d": set(),
    }
    assert [i.target for i in modules["p.b"].imports if i.type_checking] == ["p.a"]
    assert import_circles(modules) == ["p.a -> p.sub.c -> p.a"]


def test_no_import_circles() -> None:
    circles = import_circles(import_graph())
    assert not circles, "import circles:\n" + "\n".join(circles)


# --- the direction of imports -----------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """What the modules under ``scope`` (a module, or a package and everything below it) may import.

    ``may_import``: the only project modules they may import (prefixes; the scope itself is always
    allowed), or ``None`` for no allow-list. ``must_not_import``: prefixes they never import.
    A rule whose scope does not exist yet holds vacuously, and starts to bite once it exists.
    """

    scope: str
    why: str
    may_import: tuple[str, ...] | None = None
    must_not_import: tuple[str, ...] = ()

    def covers(self, module: str) -> bool:
        return _under(module, self.scope)

    def broken_by(self, module: str, target: str) -> bool:
        """Whether ``module`` (covered by this rule) breaks it by importing ``target``.

        A forbidden package may import itself (``sts.commands`` modules import each other).
        """
        if any(_under(target, p) and not _under(module, p) for p in self.must_not_import):
            return True
        allowed = (self.scope, *self.may_import) if self.may_import is not None else None
        return allowed is not None and not any(_under(target, p) for p in allowed)


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


RULES = (
    # The four packages (docs/architecture.md, "Package map").
    Rule("realms", "the shared base imports nothing else of the project", may_import=("realms",)),
    Rule("authz_tables", "authorization tables build on realms only", may_import=("realms",)),
    Rule("sts", "the server builds on realms and authz_tables", may_import=("realms", "authz_tables")),
    Rule("agent_client", "the agent and the client CLI never import the server", may_import=("realms", "authz_tables")),
    # Inside realms.
    Rule(
        "realms.wire",
        "the STS<->agent wire contract is imported by the agent: no directory, CLI or console behind it",
        must_not_import=("realms.registries", "realms.console", "realms.cli"),
    ),
    Rule(
        "realms.tokens",
        "token verification works without any registry backend",
        must_not_import=("realms.registries", "realms.console", "realms.cli"),
    ),
    Rule(
        "realms.identity",
        "the access-ID vocabulary is below tokens and registries",
        must_not_import=(
            "realms.tokens",
            "realms.registries",
            "realms.wire",
            "realms.console",
            "realms.cli",
        ),
    ),
    Rule(
        "realms.registries.ldap",
        "registry backends are independent, Dex-connector style",
        must_not_import=("realms.registries.ldif",),
    ),
    Rule(
        "realms.registries.ldif",
        "registry backends are independent, Dex-connector style",
        must_not_import=("realms.registries.ldap",),
    ),
    # Inside sts.
    Rule(
        "sts.observability.audit",
        "audit is a leaf: everything may log to it, it knows nothing above it",
        may_import=("realms",),
    ),
    Rule(
        "sts.http",
        "the error boundary renders errors; it never reaches into the jobs domain",
        must_not_import=("sts.jobs", "sts.commands"),
    ),
    Rule(
        "sts", "the server's CLI commands are leaves: no library module imports them", must_not_import=("sts.commands",)
    ),
    # Inside agent_client.
    Rule(
        "agent_client.api",
        "the one HTTP client of the STS API sits below every command and the agent runtime",
        may_import=("realms", "authz_tables", "agent_client.errors"),
    ),
    Rule(
        "agent_client.executors",
        "executors run one decided job; they never talk to the STS nor decide",
        must_not_import=("agent_client.api", "agent_client.commands", "agent_client.loop", "agent_client.decision"),
    ),
    Rule(
        "agent_client",
        "the agent's and submitter's CLI commands are leaves: no library module imports them",
        must_not_import=("agent_client.commands",),
    ),
)


def direction_offences(rules: Iterable[Rule], modules: dict[str, Module]) -> list[str]:
    offences = []
    for rule in rules:
        for module in modules.values():
            if not rule.covers(module.name):
                continue
            for imp in module.imports:
                if rule.broken_by(module.name, imp.target):
                    where = f"{module.path.relative_to(ROOT)}:{imp.line}"
                    offences.append(f"{where} imports {imp.target}: {rule.why}")
    return sorted(set(offences))


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.scope)
def test_imports_point_one_way(rule: Rule) -> None:
    offences = direction_offences([rule], import_graph())
    assert not offences, "\n".join(offences)


def _fake(name: str, *targets: str) -> Module:
    path = ROOT / (name.replace(".", "/") + ".py")
    return Module(name, path, False, [Import(t, n, type_checking=True) for n, t in enumerate(targets, 1)])


def test_a_rule_bites_on_a_module_that_breaks_it() -> None:
    """A broken rule is reported with file, line and reason, type-only imports included."""
    modules = {m.name: m for m in [_fake("realms.wire.spec", "realms.errors", "sts.app")]}
    rules = [Rule("realms", "the base", may_import=("realms",))]
    assert direction_offences(rules, modules) == ["realms/wire/spec.py:2 imports sts.app: the base"]


def test_a_forbidden_package_may_import_itself_and_nobody_else_may() -> None:
    modules = {
        m.name: m
        for m in [
            _fake("sts.commands.serve", "sts.commands.common", "sts.app"),
            _fake("sts.app", "sts.commands.serve"),
        ]
    }
    rules = [Rule("sts", "commands are leaves", must_not_import=("sts.commands",))]
    assert direction_offences(rules, modules) == ["sts/app.py:1 imports sts.commands.serve: commands are leaves"]


def test_a_rule_for_a_folder_that_does_not_exist_yet_holds_vacuously() -> None:
    modules = {m.name: m for m in [_fake("sts.app", "agent_client.loop")]}
    assert direction_offences([Rule("sts.not_here", "absent", may_import=())], modules) == []


def test_every_package_has_a_direction_rule() -> None:
    assert {r.scope for r in RULES} >= set(PACKAGES)


# --- test markers ---------------------------------------------------------------------------


def test_every_path_that_marks_tests_exists() -> None:
    """A renamed test file would silently bring its slow or server tests back into `make check`."""
    from tests.conftest import MARKS_BY_PATH

    missing = []
    for entry in MARKS_BY_PATH:
        path, _, test = entry.partition("::")
        found = (ROOT / path).exists() and (not test or f"def {test}(" in (ROOT / path).read_text())
        if not found:
            missing.append(entry)
    assert missing == []


# --- error codes ------------------------------------------------------------------------------


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
    documented = set(parse_error_docs((ROOT / "docs/errors.md").read_text()))
    codes = {cls.code for cls in _all_error_classes()}
    assert codes - documented == set()


def test_documented_codes_have_message_cause_and_fix() -> None:
    # The console renders cause and fix with this same parser (sts/console/error_docs.py).
    docs = parse_error_docs((ROOT / "docs/errors.md").read_text())
    incomplete = [code for code, doc in docs.items() if not (doc.message and doc.cause and doc.fix)]
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
            for key, item in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "code" and (text := _string(item)):
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
    documented = set(parse_error_docs((ROOT / "docs/errors.md").read_text()))
    emitted: dict[str, str] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for code in _emitted_literal_codes(ast.parse(path.read_text(encoding="utf-8"))):
                emitted.setdefault(code, str(path.relative_to(ROOT)))
    assert {"request.too_large", "internal.error", "http.error"} <= set(emitted)  # the scan sees the boundary
    missing = sorted(f"{code} ({where})" for code, where in emitted.items() if code not in documented)
    assert missing == []


_CLOCKS = {"monotonic", "perf_counter", "time", "monotonic_ns", "perf_counter_ns"}
_DURATION_NAMES = {"elapsed", "duration", "took", "spent"}


def _is_clock_call(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in _CLOCKS
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "time"
    )


def timed_assertions(source: str) -> list[int]:
    """Lines whose ``assert`` measures a duration: a clock reading minus something, or a name such
    as ``elapsed``. ``assert time.monotonic() < deadline`` (a guard against a hang) is allowed."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Assert):
            continue
        for part in ast.walk(node.test):
            measured = isinstance(part, ast.BinOp) and isinstance(part.op, ast.Sub) and _is_clock_call(part.left)
            named = isinstance(part, ast.Name) and part.id in _DURATION_NAMES
            if measured or named:
                found.append(node.lineno)
                break
    return found


def test_no_test_asserts_on_wall_clock_time() -> None:
    """Timing belongs in bench/: on a loaded CI machine a duration bound fails honest code."""
    offenders = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in sorted((ROOT / "tests").rglob("*.py"))
        for line in timed_assertions(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_the_timing_rule_bites() -> None:
    assert timed_assertions("import time\nstarted = time.monotonic()\nassert time.monotonic() - started < 5\n") == [3]
    assert timed_assertions("elapsed = 1.0\nassert elapsed < 10\n") == [2]
    assert timed_assertions("import time\ndeadline = 1.0\nassert time.monotonic() < deadline\n") == []


def collection_time_clocks(source: str) -> list[int]:
    """Lines that read the clock when a test module is imported (a decorator's arguments or a
    module-level statement): a date fixed at collection goes stale in a long run."""
    tree = ast.parse(source)
    found = []
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            continue
        parts = (
            node.decorator_list if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) else [node]
        )
        found += [
            call.lineno
            for part in parts
            for call in ast.walk(part)
            if isinstance(call, ast.Call) and _is_clock_call(call)
        ]
    return found


def test_no_test_reads_the_clock_at_collection() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in sorted((ROOT / "tests").rglob("*.py"))
        for line in collection_time_clocks(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_the_collection_clock_rule_bites() -> None:
    source = "import time\nimport pytest\n@pytest.mark.parametrize('x', [time.time()])\ndef test_x(x):\n    pass\n"
    assert collection_time_clocks(source) == [3]
    assert collection_time_clocks("import time\nNOW = time.time()\n") == [2]
    assert collection_time_clocks("import time\ndef f():\n    return time.time()\n") == []


# --- whole numbers from text ------------------------------------------------------------------


def isdigit_calls(source: str) -> list[int]:
    """Lines calling ``.isdigit()``: it accepts "²" and "①", which ``int()`` then refuses."""
    return sorted(
        node.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "isdigit"
    )


def test_whole_numbers_are_read_through_is_ascii_number() -> None:
    # realms/text.py:is_ascii_number is the one place that may call it (after isascii()).
    offences = [
        f"{path.relative_to(ROOT)}:{line}"
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if path != ROOT / "realms" / "text.py"
        for line in isdigit_calls(path.read_text(encoding="utf-8"))
    ]
    assert offences == []


def test_the_isdigit_rule_bites() -> None:
    assert isdigit_calls("limit = int(raw) if raw.isdigit() else 0\n") == [1]
    assert isdigit_calls("limit = int(raw) if is_ascii_number(raw) else 0\n") == []
