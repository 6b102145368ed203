"""History and cancel.

Who sees what: a caller with the job manager's ``monitor`` role (implied by operator,
configurator and administrator) sees every job; anyone else only the jobs they submitted.
A job the caller may not see answers ``job.not_found``, exactly like a missing one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from sts.jobs.errors import JobCancelForbidden, JobInvalidSpec, JobNotFound
from sts.jobs.models import Job
from sts.jobs.states import JobState, move
from sts.services import Services

MAX_PAGE = 500
MAX_FILTER_CHARS = 1024


@dataclass(frozen=True, slots=True)
class Viewer:
    """The caller of a history or cancel request, with what the job manager's table grants it."""

    access_id: str
    sees_all: bool  # monitor (or any role implying it)
    is_admin: bool


@dataclass(frozen=True, slots=True)
class JobFilter:
    state: str | None = None
    node: str | None = None
    submitter: str | None = None
    limit: int = 100
    before: float | None = None  # created_at cursor: jobs created strictly earlier


def _visible(job: Job | None, viewer: Viewer, job_id: str) -> Job:
    if job is None or not (viewer.sees_all or job.submitter == viewer.access_id):
        raise JobNotFound(f"no job {job_id} visible to {viewer.access_id}", job_id=job_id)
    return job


def _check_id(job_id: str) -> str:
    try:
        return str(uuid.UUID(job_id))
    except ValueError:
        raise JobNotFound(f"no job {job_id[:64]!r}", job_id=job_id[:64]) from None


def get_job(env: Services, viewer: Viewer, job_id: str) -> Job:
    job_id = _check_id(job_id)
    with env.session() as session:
        return _visible(session.get(Job, job_id), viewer, job_id)


def list_jobs(env: Services, viewer: Viewer, filters: JobFilter) -> list[Job]:
    if filters.state is not None and filters.state not in {s.value for s in JobState}:
        raise JobInvalidSpec(f"state: unknown state {filters.state[:32]!r}", field="state")
    if not 1 <= filters.limit <= MAX_PAGE:
        raise JobInvalidSpec(f"limit: must be from 1 to {MAX_PAGE}", field="limit")
    for name, value in (("node", filters.node), ("submitter", filters.submitter)):
        # Why: PostgreSQL text cannot hold NUL, so the driver raised and the request answered
        # 500 (found by tests/security/test_api.py); no node id or access ID contains one.
        if value is not None and ("\x00" in value or len(value) > MAX_FILTER_CHARS):
            raise JobInvalidSpec(f"{name}: not a node id or access ID", field=name)
    query = select(Job).order_by(Job.created_at.desc(), Job.id).limit(filters.limit)
    if not viewer.sees_all:
        query = query.where(Job.submitter == viewer.access_id)
    if filters.submitter is not None:
        query = query.where(Job.submitter == filters.submitter)
    if filters.state is not None:
        query = query.where(Job.state == filters.state)
    if filters.node is not None:
        query = query.where(Job.node_id == filters.node)
    if filters.before is not None:
        query = query.where(Job.created_at < filters.before)
    with env.session() as session:
        return list(session.scalars(query))


def _cancel(env: Services, session: Session, viewer: Viewer, job_id: str) -> Job:
    job = _visible(session.scalars(select(Job).where(Job.id == job_id).with_for_update()).first(), viewer, job_id)
    if not (viewer.is_admin or job.submitter == viewer.access_id):
        # Why: seeing a job (monitor) is not owning it; only its submitter or an admin may cancel.
        raise JobCancelForbidden(
            f"{viewer.access_id} may not cancel job {job.id}: only its submitter or an administrator may",
            job_id=job.id,
        )
    stamp = env.clock()
    move(job, JobState.CANCELLED, stamp)
    job.finished_at = stamp
    job.lease_holder = None
    job.lease_expires_at = None
    # Why: revoking the jti makes the token useless even to an agent that already leased it.
    env.revoke(session, job.token_jti, job.token_exp, f"job {job.id} cancelled by {viewer.access_id}")
    return job


def cancel_job(env: Services, viewer: Viewer, job_id: str) -> Job:
    """Cancel a queued or leased (not yet started) job and revoke its token's jti."""
    job_id = _check_id(job_id)
    with env.session(immediate=True) as session:
        return _cancel(env, session, viewer, job_id)
