"""The state machine is enforced in one place (sts.jobs.states)."""

from __future__ import annotations

import pytest

from sts.jobs.errors import JobStateError
from sts.jobs.states import TERMINAL, TRANSITIONS, JobState, can_transition, check_transition

ALLOWED = {
    ("queued", "leased"),
    ("queued", "expired"),
    ("queued", "cancelled"),
    ("leased", "running"),
    ("leased", "refused"),
    ("leased", "queued"),
    ("leased", "expired"),
    ("leased", "cancelled"),
    ("running", "succeeded"),
    ("running", "failed"),
    ("running", "refused"),
    ("running", "lost"),
}


@pytest.mark.parametrize("current", list(JobState))
@pytest.mark.parametrize("target", list(JobState))
def test_exactly_the_documented_transitions_are_allowed(current: JobState, target: JobState) -> None:
    expected = (current.value, target.value) in ALLOWED
    assert can_transition(current, target) is expected
    if expected:
        check_transition("j", current, target)
    else:
        with pytest.raises(JobStateError) as info:
            check_transition("j", current, target)
        assert info.value.code == "job.state"
        assert current.value in info.value.message and target.value in info.value.message


def test_terminal_states_never_change() -> None:
    assert {s.value for s in TERMINAL} == {"succeeded", "failed", "refused", "lost", "expired", "cancelled"}
    assert not set(TRANSITIONS) & TERMINAL


def test_a_started_job_can_never_go_back_to_the_queue() -> None:
    # The rule that keeps a job from running twice: running never leads to queued or leased.
    assert not can_transition(JobState.RUNNING, JobState.QUEUED)
    assert not can_transition(JobState.RUNNING, JobState.LEASED)
    assert not can_transition(JobState.LOST, JobState.QUEUED)
