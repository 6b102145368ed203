"""The decision trace: one step per check the agent made, reported with every result.

Steps (a) to (f) are the agent's decision, (g) the execution; the STS stores the trace as the
agent sent it and shows it in the job's history.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from realms.wire import spec as schema
from realms.wire.errors import JobInvalidSpec

STEP_NAMES = {
    "a": "issuer trust",
    "b": "token and job binding",
    "c": "principals",
    "d": "required role",
    "e": "authorization",
    "f": "account mapping",
    "g": "execution",
}
TRACE_STEPS = frozenset("abcdefgh")
VERDICTS = frozenset({"pass", "fail", "skip"})


class TraceStep:
    """One step of the decision: its letter, its name, ``pass`` | ``fail`` | ``skip`` and why.

    ``detail`` may be given as a function that builds the text: it is called once, the first
    time the detail is read (the agent decides on every job, and most texts are read only when
    the result is reported). Equal steps compare equal however their detail was given.
    """

    __slots__ = ("_detail", "name", "step", "verdict")

    def __init__(self, step: str, name: str, verdict: str, detail: str | Callable[[], str]) -> None:
        self.step, self.name, self.verdict = step, name, verdict
        self._detail = detail

    @property
    def detail(self) -> str:
        detail = self._detail
        if not isinstance(detail, str):
            detail = self._detail = detail()
        return detail

    def _key(self) -> tuple[str, str, str, str]:
        return (self.step, self.name, self.verdict, self.detail)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TraceStep) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"TraceStep(step={self.step!r}, name={self.name!r}, verdict={self.verdict!r}, detail={self.detail!r})"

    def as_document(self) -> dict[str, str]:
        return {"step": self.step, "name": self.name, "verdict": self.verdict, "detail": self.detail}


def _clip(value: Any, field: str, max_chars: int) -> str:
    """Free text from the agent, cut to ``max_chars``: a long explanation must not lose the result."""
    if not isinstance(value, str):
        raise JobInvalidSpec(f"{field}: must be a string", field=field)
    return value[:max_chars]


def parse_trace(raw: Any) -> tuple[TraceStep, ...]:
    """Validate a reported trace: at most ``max_trace_steps`` steps, letters a..h, known verdicts."""
    limits = schema.LIMITS
    if not isinstance(raw, list) or len(raw) > limits.max_trace_steps:
        raise JobInvalidSpec(f"trace: must be a list of at most {limits.max_trace_steps} steps", field="trace")
    steps = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or item.get("step") not in TRACE_STEPS or item.get("verdict") not in VERDICTS:
            raise JobInvalidSpec(f"trace[{i}]: needs step a..h and verdict pass|fail|skip", field="trace")
        name = _clip(item.get("name", ""), f"trace[{i}].name", limits.max_trace_name_chars)
        detail = _clip(item.get("detail", ""), f"trace[{i}].detail", limits.max_trace_detail_chars)
        steps.append(TraceStep(item["step"], name, item["verdict"], detail))
    return tuple(steps)
