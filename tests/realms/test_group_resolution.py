"""Nested group resolution: cycles end, the depth limit holds, one lookup per level."""

from __future__ import annotations

from realms.registries.groups import resolve_nested

PARENTS = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "x": {"x"}}


def parents_of(level: frozenset[str]) -> set[str]:
    calls.append(level)
    return {p for g in level for p in PARENTS.get(g, set())}


calls: list[frozenset[str]] = []


def test_cycle_terminates_with_the_full_closure() -> None:
    calls.clear()
    assert resolve_nested(["a"], parents_of, nested=True, max_depth=50) == {"a", "b", "c", "d"}
    assert len(calls) == 4  # a -> b -> c -> {d} -> {} : the cycle back to a is not walked again


def test_self_membership() -> None:
    assert resolve_nested(["x"], parents_of, nested=True, max_depth=50) == {"x"}


def test_depth_limit() -> None:
    calls.clear()
    assert resolve_nested(["a"], parents_of, nested=True, max_depth=1) == {"a", "b"}
    assert len(calls) == 1
    assert resolve_nested(["a"], parents_of, nested=True, max_depth=0) == {"a"}


def test_not_nested_returns_direct_groups_without_lookups() -> None:
    calls.clear()
    assert resolve_nested(["a", "d"], parents_of, nested=False, max_depth=8) == {"a", "d"}
    assert calls == []
