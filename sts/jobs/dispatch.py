"""Dispatch to agents: lease (batched), claim (start, batched) and heartbeat (the reaper is
``sts.jobs.reaper``).

A job is leased to exactly one caller: ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL
(concurrent leasers skip each other's rows instead of waiting), and a ``BEGIN IMMEDIATE``
transaction on SQLite (one writer at a time). Every state change goes through
``sts.jobs.states.check_transition``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Float,
    Integer,
    Row,
    String,
    Update,
    bindparam,
    case,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.orm import Session

from realms.wire.documents import MAX_LEASE_WAIT, Claim, ItemOutcome
from sts.jobs.errors import JobInvalidSpec, JobLeaseLost, JobNotFound, JobResultConflict
from sts.jobs.models import JOBS, Job
from sts.jobs.reaper import reap
from sts.jobs.states import JobState, can_transition
from sts.services import Services

log = logging.getLogger(__name__)
Before = Callable[[Session], None]


@dataclass(frozen=True, slots=True)
class Lease:
    job: LeasedJob
    job_token: str
    lease_expires_at: int


# What a lease hands out, straight from the UPDATE's RETURNING: no second read.
LEASED_COLUMNS = (
    JOBS.c.id,
    JOBS.c.node_id,
    JOBS.c.type,
    JOBS.c.spec,
    JOBS.c.subject,
    JOBS.c.realm,
    JOBS.c.not_before,
    JOBS.c.deadline,
    JOBS.c.attempts,
    JOBS.c.created_at,
    JOBS.c.lease_expires_at,
    JOBS.c.token_ciphertext,
    JOBS.c.token_jti,
    JOBS.c.sealed_credentials,
)
# The lease statement's WHERE clause is its transition check: only queued → leased.
assert can_transition(JobState.QUEUED, JobState.LEASED) and can_transition(JobState.LEASED, JobState.RUNNING)


@dataclass(frozen=True, slots=True)
class LeasedJob:
    """A row the lease statement returned: the job document's fields and its job token."""

    id: str
    node_id: str
    type: str
    spec: str
    subject: str
    realm: str
    not_before: int
    deadline: int
    attempts: int
    token_jti: str
    sealed_credentials: str | None


def lease_statement(*, postgres: bool) -> Update:
    """ONE statement leases up to ``b_limit`` jobs: ``WITH picked AS MATERIALIZED (SELECT … FOR UPDATE
    SKIP LOCKED LIMIT n) UPDATE … FROM picked RETURNING …``. On PostgreSQL concurrent lessees skip
    each other's rows; SQLite has no lock clause and relies on the caller's ``BEGIN IMMEDIATE``
    (one writer at a time). The inner SELECT is one seek of ``ix_sts_jobs_lease`` whatever the
    queue's length. Built once, with bound parameters (``b_node``, ``b_now``, ``b_stamp``,
    ``b_limit``, ``b_until``), so each lease only binds them."""
    now = bindparam("b_now", type_=BigInteger)
    candidates = (
        select(JOBS.c.id)
        .where(
            JOBS.c.node_id == bindparam("b_node", type_=String),
            JOBS.c.state == JobState.QUEUED.value,
            JOBS.c.not_before <= now,
            JOBS.c.deadline > now,
        )
        .order_by(JOBS.c.not_before, JOBS.c.created_at)
        .limit(bindparam("b_limit", type_=Integer))
        .with_for_update(skip_locked=True)
    )
    # Why a materialized CTE and not ``id IN (subquery)``: PostgreSQL may rescan an IN subquery,
    # and with SKIP LOCKED each rescan picks other rows, so LIMIT 1 leased every queued job.
    picked = candidates.cte("picked")
    if postgres:
        picked = picked.prefix_with("MATERIALIZED")
    until = bindparam("b_until", type_=BigInteger)
    stamp = bindparam("b_stamp", type_=Float)
    return (
        update(JOBS)
        .where(JOBS.c.id == picked.c.id, JOBS.c.state == JobState.QUEUED.value)
        .values(
            state=JobState.LEASED.value,
            attempts=JOBS.c.attempts + 1,
            lease_holder=bindparam("b_node", type_=String),
            lease_expires_at=case((JOBS.c.deadline < until, JOBS.c.deadline), else_=until),
            leased_at=stamp,
            updated_at=stamp,
        )
        .returning(*LEASED_COLUMNS)
    )


LEASE = {True: lease_statement(postgres=True), False: lease_statement(postgres=False)}


def lease_values(env: Services, node_id: str, limit: int) -> dict[str, Any]:
    """The values ``LEASE`` binds for ``node_id`` now."""
    now = env.now()
    return {
        "b_node": node_id,
        "b_now": now,
        "b_stamp": env.clock(),
        "b_limit": limit,
        "b_until": now + env.lease_seconds,
    }


def _try_lease(
    env: Services, node_id: str, limit: int, before: Before | None = None, reap_due: bool = True
) -> list[Lease]:
    if before is None and not reap_due:
        # Nothing to record and nothing to reap: the lease is its one statement, which on
        # PostgreSQL commits on its own (no BEGIN/COMMIT round trips; atomic all the same).
        with env.statements() as conn:
            rows = conn.execute(LEASE[not env.db.is_sqlite], lease_values(env, node_id, limit)).all()
    else:
        with env.session(immediate=True) as session:
            if before is not None:
                before(session)
            if reap_due:
                reap(env, session, env.now(), node_id)
            rows = session.execute(LEASE[not env.db.is_sqlite], lease_values(env, node_id, limit)).all()
    return leases_of(env, rows)


def leases_of(env: Services, rows: Sequence[Row[Any]]) -> list[Lease]:
    """The leases of rows with ``LEASED_COLUMNS``, in queue order (RETURNING has none), tokens decrypted."""
    leases = []
    for row in sorted(rows, key=lambda r: (r.not_before, r.created_at)):
        token = env.cipher.decrypt(row.token_ciphertext, row.id.encode("ascii")).decode("ascii")
        job = LeasedJob(
            row.id, row.node_id, row.type, row.spec, row.subject, row.realm, row.not_before, row.deadline,
            row.attempts, row.token_jti, row.sealed_credentials,
        )  # fmt: skip
        leases.append(Lease(job, token, row.lease_expires_at))
    return leases


def lease_many(
    env: Services,
    node_id: str,
    limit: int = 1,
    wait: float = 0,
    before: Before | None = None,
    reap_due: bool = True,
) -> list[Lease]:
    """Up to ``limit`` jobs for ``node_id``; long-polls up to ``wait`` seconds (capped at 30).
    ``before`` runs first in the first attempt's transaction (results carried by the lease call).
    ``reap_due=False``: the caller just read ``REAP_DUE`` false, so the first attempt skips the reap."""
    give_up = time.monotonic() + max(0.0, min(float(wait), MAX_LEASE_WAIT))
    while True:
        found = _try_lease(env, node_id, limit, before, reap_due)
        before, reap_due = None, True
        if found:
            return found
        remaining = give_up - time.monotonic()
        if remaining <= 0:
            return []
        env.wait_for_work(min(remaining, env.poll_interval))


def lease(env: Services, node_id: str, wait: float = 0) -> Lease | None:
    """At most one job for ``node_id``; long-polls up to ``wait`` seconds (capped at 30)."""
    found = lease_many(env, node_id, 1, wait)
    return found[0] if found else None


def _not_found(node_id: str, job_id: str) -> JobNotFound:
    return JobNotFound(f"node {node_id} has no job {job_id[:64]!r}", job_id=job_id[:64], node=node_id)


def _held(session: Session, node_id: str, job_id: str) -> Job:
    # Why: job ids are UUIDs; anything else is simply not found. A NUL in the id used to
    # reach PostgreSQL, which cannot store one, and answer 500 (tests/security/test_api.py).
    if not is_job_id(job_id):
        raise _not_found(node_id, job_id)
    job = session.scalars(select(Job).where(Job.id == job_id).with_for_update()).first()
    # Why: another node's job answers exactly like a missing one, so ids cannot be probed.
    if job is None or job.node_id != node_id:
        raise _not_found(node_id, job_id)
    return job


def _lease_lost_of(job_id: str, state: str, node_id: str) -> JobLeaseLost:
    return JobLeaseLost(
        f"node {node_id} no longer holds the lease on job {job_id} (job is {state})", job_id=job_id, node=node_id
    )


def _lease_lost(job: Job, node_id: str) -> JobLeaseLost:
    return _lease_lost_of(job.id, job.state, node_id)


def is_job_id(job_id: str) -> bool:
    try:
        uuid.UUID(job_id)
    except ValueError:
        return False
    return True


# The claim, built once: expanding IN lists bind a batch of any size and mix ((id, attempt)
# pairs, or bare ids from the single-job /start), so each call only binds its values.
CLAIM = (
    update(JOBS)
    .where(
        or_(
            tuple_(JOBS.c.id, JOBS.c.attempts).in_(bindparam("c_pairs", expanding=True)),
            JOBS.c.id.in_(bindparam("c_bare", expanding=True)),
        ),
        JOBS.c.node_id == bindparam("c_node", type_=String),
        JOBS.c.state == JobState.LEASED.value,
        JOBS.c.lease_holder == bindparam("c_node", type_=String),
        JOBS.c.lease_expires_at > bindparam("c_now", type_=BigInteger),
    )
    .values(
        state=JobState.RUNNING.value,
        started_at=bindparam("c_stamp", type_=Float),
        updated_at=bindparam("c_stamp", type_=Float),
        lease_expires_at=bindparam("c_until", type_=BigInteger),
    )
    .returning(JOBS.c.id, JOBS.c.attempts)
)
CLAIM_STATES = select(JOBS.c.id, JOBS.c.state).where(
    JOBS.c.id.in_(bindparam("c_ids", expanding=True)), JOBS.c.node_id == bindparam("c_node", type_=String)
)


def claim_many(env: Services, node_id: str, claims: list[Claim]) -> list[ItemOutcome]:
    """Start (``leased`` → ``running``) the jobs the agent recorded in its journal, in one UPDATE.
    Each needs an unexpired lease held by ``node_id`` (and the attempt it leased, when sent), so a
    job never starts twice; the others are answered ``job.lease_lost`` or ``job.not_found``."""
    wanted = [claim for claim in claims if is_job_id(claim.job_id)]
    started: dict[str, int] = {}
    states: dict[str, str] = {}
    # One UPDATE starts them all: on PostgreSQL it commits on its own, durable before the answer
    # (and so before the agent runs anything).
    with env.statements() as conn:
        now, stamp = env.now(), env.clock()
        until = now + env.lease_seconds
        if wanted:
            values = {
                "c_pairs": [(claim.job_id, claim.attempt) for claim in wanted if claim.attempt is not None],
                "c_bare": [claim.job_id for claim in wanted if claim.attempt is None],
                "c_node": node_id,
                "c_now": now,
                "c_stamp": stamp,
                "c_until": until,
            }
            started = {row.id: row.attempts for row in conn.execute(CLAIM, values)}
        missing = [claim.job_id for claim in wanted if claim.job_id not in started]
        if missing:
            states = {row.id: row.state for row in conn.execute(CLAIM_STATES, {"c_ids": missing, "c_node": node_id})}
    outcomes = []
    for claim in claims:
        if claim.job_id in started:
            outcomes.append(ItemOutcome(claim.job_id, JobState.RUNNING.value, lease_expires_at=until))
        elif claim.job_id in states:
            error = _lease_lost_of(claim.job_id, states[claim.job_id], node_id)
            outcomes.append(ItemOutcome(claim.job_id, states[claim.job_id], error.code, error.message))
        else:
            # Why: another node's job answers exactly like a missing one, so ids cannot be probed.
            missing_job = _not_found(node_id, claim.job_id)
            outcomes.append(ItemOutcome(claim.job_id, None, missing_job.code, missing_job.message))
    return outcomes


def start(env: Services, node_id: str, job_id: str, attempt: int | None = None) -> ItemOutcome:
    """Mark one leased job running (``claim_many`` of one); raises the refusal of that job."""
    (outcome,) = claim_many(env, node_id, [Claim(job_id, attempt)])
    raise_refusal(outcome, node_id)
    return outcome


def raise_refusal(outcome: ItemOutcome, node_id: str) -> None:
    """Raise the error behind a refused batch item (for the single-job endpoints)."""
    if outcome.code == JobNotFound.code:
        raise _not_found(node_id, outcome.job_id)
    if outcome.code == JobLeaseLost.code:
        raise _lease_lost_of(outcome.job_id, outcome.state or "unknown", node_id)
    if outcome.code == JobResultConflict.code:
        raise JobResultConflict(outcome.message or "conflicting result", job_id=outcome.job_id)
    if outcome.code is not None:
        raise JobInvalidSpec(outcome.message or "invalid result", field="result")


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
