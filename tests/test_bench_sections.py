"""bench/results.md: each benchmark rewrites only its own section (bench/results_section.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _helper() -> ModuleType:
    spec = importlib.util.spec_from_file_location("results_section", BENCH / "results_section.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_bench_replaces_its_own_section_and_nothing_else(tmp_path: Path) -> None:
    helper = _helper()
    results = tmp_path / "results.md"
    results.write_text("# Benchmark results\n\n<!-- bench/a.py -->\nold a\n<!-- end bench/a.py -->\n\nhand note\n")
    helper.write_section("bench/b.py", ["b, first"], results)
    helper.write_section("bench/a.py", ["a, new", "two lines"], results)
    helper.write_section("bench/b.py", ["b, second"], results)
    assert results.read_text() == (
        "# Benchmark results\n\n<!-- bench/a.py -->\na, new\ntwo lines\n<!-- end bench/a.py -->\n\nhand note\n"
        "\n<!-- bench/b.py -->\nb, second\n<!-- end bench/b.py -->\n"
    )


def test_the_committed_results_keep_one_section_per_bench() -> None:
    text = (BENCH / "results.md").read_text(encoding="utf-8")
    for name in ("bench/run.py", "bench/agent_decide.py"):
        begin, end = _helper().markers(name)
        assert text.count(begin) == 1 and text.count(end) == 1 and text.index(begin) < text.index(end)
