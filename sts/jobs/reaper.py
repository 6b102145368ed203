"""The reaper: leases past their expiry and queued jobs past their deadline.

A lease that expires before ``start`` puts the job back in ``queued`` (it never ran); one that
expires after ``start`` makes it ``lost`` (it may have run, so it never runs again); a queued job
past its deadline becomes ``expired``. Every process may reap: rows another transaction holds
are skipped (``SKIP LOCKED``), never waited for.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import BigInteger, String, and_, bindparam, exists, or_, select
from sqlalchemy.orm import Session

from sts.jobs.models import JOBS, Job
from sts.jobs.states import JobState, move
from sts.services import Services

log = logging.getLogger(__name__)
REAP_BATCH = 200


def _expire(env: Services, session: Session, job: Job, stamp: float) -> None:
    move(job, JobState.EXPIRED, stamp)
    job.finished_at = stamp
    job.lease_holder = None
    job.lease_expires_at = None
    # Why: an expired job's token must stop working at once, not merely at its exp.
    env.revoke(session, job.token_jti, job.token_exp, f"job {job.id} expired")


def _due(now: Any) -> Any:
    """What ``reap`` takes: leases past their expiry, queued jobs past their deadline."""
    return or_(
        and_(JOBS.c.state.in_((JobState.LEASED.value, JobState.RUNNING.value)), JOBS.c.lease_expires_at < now),
        and_(JOBS.c.state == JobState.QUEUED.value, JOBS.c.deadline <= now),
    )


# ``EXISTS`` a job ``reap`` would change for a node, built once: the lease call reads it in the
# statement that authenticates the agent (``sts.nodes.auth_cache``), so a lease with nothing to
# reap (nearly every one) spends no round trip on it. Bound by ``reap_due_params``.
REAP_DUE = exists().where(
    JOBS.c.node_id == bindparam("reap_node", type_=String), _due(bindparam("reap_now", type_=BigInteger))
)


def reap_due_params(env: Services, node_id: str) -> dict[str, Any]:
    """The values of ``REAP_DUE`` for ``node_id`` now."""
    return {"reap_node": node_id, "reap_now": env.now()}


def reap(env: Services, session: Session, now: int, node_id: str | None = None) -> int:
    """Requeue never-started jobs whose lease expired, mark started ones ``lost``, expire jobs past
    their deadline. Returns how many jobs changed. Safe to run from any number of processes."""
    stamp = float(now)
    changed = 0
    # One indexed query for both kinds of work: leases past their expiry, queued jobs past
    # their deadline. SKIP LOCKED: a row another transaction holds is that one's to handle.
    due = select(Job).where(_due(now)).limit(REAP_BATCH).with_for_update(skip_locked=True)
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
