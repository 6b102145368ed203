"""The canonical job digest: one digest per job, and any edit changes it."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from realms.wire.digest import canonical_json, job_digest

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20) | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
specs = st.dictionaries(st.text(max_size=10), json_values, max_size=6)


@given(specs)
def test_digest_ignores_key_order(spec: dict[str, Any]) -> None:
    reordered = json.loads(json.dumps(dict(reversed(list(spec.items())))))
    assert job_digest("j", "n", "t", spec) == job_digest("j", "n", "t", reordered)


@given(specs, st.text(min_size=1, max_size=10), json_values)
def test_any_edit_changes_the_digest(spec: dict[str, Any], key: str, value: Any) -> None:
    edited = dict(spec)
    edited[key] = value
    if canonical_json(edited) != canonical_json(spec):
        assert job_digest("j", "n", "t", edited) != job_digest("j", "n", "t", spec)


def test_job_identity_is_bound() -> None:
    spec = {"argv": ["true"]}
    base = job_digest("job-1", "node1", "run", spec)
    assert base != job_digest("job-2", "node1", "run", spec)
    assert base != job_digest("job-1", "node2", "run", spec)
    assert base != job_digest("job-1", "node1", "deploy", spec)


def test_non_finite_numbers_are_refused() -> None:
    with pytest.raises(ValueError):
        canonical_json({"timeout": math.inf})
