"""Dispatch to agents: lease, start, heartbeat, result, and the reaper.

A job is leased to exactly one caller: ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL
(concurrent leasers skip each other's rows instead of waiting), and a ``BEGIN IMMEDIATE``
transaction on SQLite (one writer at a time). Every state change goes through
``sts.jobs.states.check_transition``.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from realms.wire.documents import Result
from sts.jobs.errors import JobLeaseLost, JobNotFound, JobResultConflict
from sts.jobs.models import Job
from sts.jobs.states import RESULT_STATES, JobState, check_transition
from sts.services import Services

log = logging.getLogger(__name__)
MAX_WAIT_SECONDS = 30
REAP_BATCH = 200


@dataclass(frozen=True, slots=True)
class Lease:
    job: Job
    job_token: str
    lease_expires_at: int


def move(job: Job, target: JobState, stamp: float) -> None:
    """Apply one transition (checked) to a loaded, locked job row."""
    check_transition(job.id, job.state, target)
    job.state = target.value
    job.updated_at = stamp


def _expire(env: Services, session: Session, job: Job, stamp: float) -> None:
    move(job, JobState.EXPIRED, stamp)
    job.finished_at = stamp
    job.lease_holder = None
    job.lease_expires_at = None
    # Why: an expired job's token must stop working at once, not merely at its exp.
    env.revoke(session, job.token_jti, job.token_exp, f"job {job.id} expired")


def reap(env: Services, session: Session, now: int, node_id: str | None = None) -> int:
    """Requeue never-started jobs whose lease expired, mark started ones ``lost``, expire jobs past
    their deadline. Returns how many jobs changed. Safe to run from any number of processes."""
    stamp = float(now)
    changed = 0
    # One indexed query for both kinds of work: leases past their expiry, queued jobs past
    # their deadline. SKIP LOCKED: a row another transaction holds is that one's to handle.
    due = (
        select(Job)
        .where(
            or_(
                and_(Job.state.in_((JobState.LEASED.value, JobState.RUNNING.value)), Job.lease_expires_at < now),
                and_(Job.state == JobState.QUEUED.value, Job.deadline <= now),
            )
        )
        .limit(REAP_BATCH)
        .with_for_update(skip_locked=True)
    )
    if node_id is not None:
        due = due.where(Job.node_id == node_id)
    for job in session.scalars(due):
        if job.state == JobState.RUNNING.value:
            # Why: it may have run; running it again could do its work twice.
            move(job, JobState.LOST, stamp)
            job.finished_at = stamp
            job.reason = f"lease of node {job.lease_holder} expired after start"
            job.lease_expires_at = None
            log.warning("job %s lost: node %s stopped heartbeating after start", job.id, job.node_id)
        elif job.deadline <= now:
            _expire(env, session, job, stamp)
        else:
            move(job, JobState.QUEUED, stamp)  # leased, never started: safe to hand out again
            job.lease_holder = None
            job.lease_expires_at = None
        changed += 1
    return changed


def reap_all(env: Services) -> int:
    """The periodic reaper: one pass over every node."""
    with env.session(immediate=True) as session:
        return reap(env, session, env.now())


def _try_lease(env: Services, node_id: str) -> Lease | None:
    with env.session(immediate=True) as session:
        now = env.now()
        reap(env, session, now, node_id)
        job = session.scalars(
            select(Job)
            .where(
                Job.node_id == node_id, Job.state == JobState.QUEUED.value, Job.not_before <= now, Job.deadline > now
            )
            .order_by(Job.not_before, Job.created_at)
            .limit(1)
            .with_for_update(skip_locked=True)
        ).first()
        if job is None:
            return None
        stamp = env.clock()
        move(job, JobState.LEASED, stamp)
        job.attempts += 1
        job.lease_holder = node_id
        job.lease_expires_at = min(now + env.lease_seconds, job.deadline)
        job.leased_at = stamp
        token = env.cipher.decrypt(job.token_ciphertext, job.id.encode("ascii")).decode("ascii")
        return Lease(job, token, job.lease_expires_at)


def lease(env: Services, node_id: str, wait: float = 0) -> Lease | None:
    """At most one job for ``node_id``; long-polls up to ``wait`` seconds (capped at 30)."""
    give_up = time.monotonic() + max(0.0, min(float(wait), MAX_WAIT_SECONDS))
    while True:
        found = _try_lease(env, node_id)
        if found is not None:
            return found
        remaining = give_up - time.monotonic()
        if remaining <= 0:
            return None
        env.wait_for_work(min(remaining, env.poll_interval))


def _held(session: Session, node_id: str, job_id: str) -> Job:
    try:
        uuid.UUID(job_id)
    except ValueError:
        # Why: job ids are UUIDs; anything else is simply not found. A NUL in the id used to
        # reach PostgreSQL, which cannot store one, and answer 500 (tests/security/test_api.py).
        raise JobNotFound(f"node {node_id} has no job {job_id[:64]!r}", job_id=job_id[:64], node=node_id) from None
    job = session.scalars(select(Job).where(Job.id == job_id).with_for_update()).first()
    # Why: another node's job answers exactly like a missing one, so ids cannot be probed.
    if job is None or job.node_id != node_id:
        raise JobNotFound(f"node {node_id} has no job {job_id}", job_id=job_id, node=node_id)
    return job


def _lease_lost(job: Job, node_id: str) -> JobLeaseLost:
    return JobLeaseLost(
        f"node {node_id} no longer holds the lease on job {job.id} (job is {job.state})", job_id=job.id, node=node_id
    )


def start(env: Services, node_id: str, job_id: str, attempt: int | None = None) -> Job:
    """Mark a leased job running. Needs an unexpired lease held by ``node_id`` (and, when the
    agent sends it, the attempt number it leased), so a job never starts twice."""
    with env.session(immediate=True) as session:
        job = _held(session, node_id, job_id)
        now = env.now()
        if (
            job.state != JobState.LEASED.value
            or job.lease_holder != node_id
            or (job.lease_expires_at or 0) <= now
            or (attempt is not None and attempt != job.attempts)
        ):
            raise _lease_lost(job, node_id)
        stamp = env.clock()
        move(job, JobState.RUNNING, stamp)
        job.started_at = stamp
        job.lease_expires_at = now + env.lease_seconds
        return job


def heartbeat(env: Services, node_id: str, job_id: str) -> int:
    """Extend the lease of a leased or running job held by ``node_id``; returns the new expiry."""
    with env.session(immediate=True) as session:
        job = _held(session, node_id, job_id)
        if job.state not in (JobState.LEASED.value, JobState.RUNNING.value) or job.lease_holder != node_id:
            raise _lease_lost(job, node_id)
        now = env.now()
        expires = now + env.lease_seconds
        if job.state == JobState.LEASED.value:
            expires = min(expires, job.deadline)
        job.lease_expires_at = expires
        job.updated_at = env.clock()
        return expires


def report(env: Services, node_id: str, job_id: str, result: Result) -> Job:
    """Record a result. Idempotent: the same report again is accepted, a different one is
    ``job.result_conflict``. A refusal may come straight from ``leased`` (decided before start)."""
    digest = result.digest()
    with env.session(immediate=True) as session:
        job = _held(session, node_id, job_id)
        if job.state in RESULT_STATES:
            if job.result_digest == digest:
                return job
            raise JobResultConflict(f"job {job.id} already has a different result ({job.state})", job_id=job.id)
        target = JobState(result.outcome)
        allowed_from = (
            (JobState.LEASED.value, JobState.RUNNING.value) if target is JobState.REFUSED else (JobState.RUNNING.value,)
        )
        if job.state not in allowed_from or job.lease_holder != node_id:
            raise _lease_lost(job, node_id)
        stamp = env.clock()
        move(job, target, stamp)
        job.finished_at = stamp
        job.lease_expires_at = None
        job.exit_code = result.exit_code
        job.stdout_tail = result.stdout_tail
        job.stderr_tail = result.stderr_tail
        job.result_code = result.code
        job.reason = result.reason
        job.account = result.account
        job.trace = json.dumps(result.as_document()["trace"])
        job.result_digest = digest
        return job
