"""The job state machine: the one place where transitions are allowed or refused.

::

    queued ──lease──▶ leased ──start──▶ running ──result──▶ succeeded | failed | refused(code)
      │  ▲              │  │                 └──lease expired──▶ lost
      │  └─lease expired┘  ├──result "refused" (the agent decides before starting)──▶ refused
      │   (never started)  └──cancel──▶ cancelled
      ├──deadline passed──▶ expired
      └──cancel──▶ cancelled

A lease that expires before ``start`` puts the job back in ``queued`` (it never ran). A lease
that expires after ``start`` makes the job ``lost``: it may have run, so it is never run again.
Terminal states never change. A result that arrives for a ``lost`` job (from the agent's outbox,
after an STS outage) is a late result: it is recorded beside the job (exit code, output, trace,
``late_outcome``) but is not a transition: the job stays ``lost``.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from sts.jobs.errors import JobStateError

if TYPE_CHECKING:
    from sts.jobs.models import Job


class JobState(enum.StrEnum):
    QUEUED = "queued"
    LEASED = "leased"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REFUSED = "refused"
    LOST = "lost"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.LEASED, JobState.EXPIRED, JobState.CANCELLED}),
    JobState.LEASED: frozenset(
        {JobState.RUNNING, JobState.REFUSED, JobState.QUEUED, JobState.EXPIRED, JobState.CANCELLED}
    ),
    JobState.RUNNING: frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.REFUSED, JobState.LOST}),
}
TERMINAL: frozenset[JobState] = frozenset(set(JobState) - set(TRANSITIONS))
RESULT_STATES: frozenset[JobState] = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.REFUSED})


def can_transition(current: JobState | str, target: JobState) -> bool:
    return target in TRANSITIONS.get(JobState(current), frozenset())


def check_transition(job_id: str, current: JobState | str, target: JobState) -> None:
    """Raise ``JobStateError`` (409 ``job.state``) unless ``current → target`` is allowed."""
    if not can_transition(current, target):
        raise JobStateError(
            f"job {job_id} is {JobState(current).value}; it cannot become {target.value}",
            job_id=job_id,
            state=str(current),
        )


def move(job: Job, target: JobState, stamp: float) -> None:
    """Apply one transition (checked) to a loaded, locked job row."""
    check_transition(job.id, job.state, target)
    job.state = target.value
    job.updated_at = stamp
