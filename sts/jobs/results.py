"""Results reported by agents, one or a batch per call, and late results for ``lost`` jobs.

A result moves a ``running`` job (or a ``leased`` one, for a refusal decided before start) to
``succeeded``, ``failed`` or ``refused``. Reporting the same result again is accepted (the agent
retries from its outbox); a different one is ``job.result_conflict``.

A result for a job the STS already marked ``lost`` (its lease expired after start, e.g. while
the STS was down and the agent kept the result in its outbox) is a **late result**: what happened
is recorded (exit code, output tails, account, trace, and ``late_outcome``, the reported outcome)
but the state stays ``lost``, which is terminal: the job is never leased or run again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Float,
    Integer,
    String,
    Text,
    and_,
    bindparam,
    func,
    literal,
    null,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from realms.wire.documents import ItemOutcome, Result
from realms.wire.errors import JobInvalidSpec
from sts.jobs.dispatch import LEASE, LEASED_COLUMNS, Lease, is_job_id, lease_values, leases_of, raise_refusal
from sts.jobs.errors import JobLeaseLost, JobNotFound, JobResultConflict
from sts.jobs.models import JOBS
from sts.jobs.states import RESULT_STATES, JobState, can_transition
from sts.services import Services

_RESULT_VALUES = ("exit_code", "stdout_tail", "stderr_tail", "result_code", "reason", "account", "trace")


@dataclass(frozen=True, slots=True)
class Recorded:
    """One item's outcome, and (when it was recorded now) who the job ran for, for the audit."""

    outcome: ItemOutcome
    result: Result | None = None
    subject: str | None = None
    attempt: int | None = None
    new: bool = False


def _refused(job_id: str, error: JobInvalidSpec | JobNotFound | JobLeaseLost | JobResultConflict) -> Recorded:
    return Recorded(ItemOutcome(job_id, None, error.code, error.message))


def _values(
    job_id: str, state: str, result: Result, stamp: float, late: bool, finished: float | None
) -> dict[str, Any]:
    return {
        "b_id": job_id,
        "b_state": state,
        "b_finished_at": finished if late else stamp,
        "b_updated_at": stamp,
        "b_exit_code": result.exit_code,
        "b_stdout_tail": result.stdout_tail,
        "b_stderr_tail": result.stderr_tail,
        "b_result_code": result.code,
        "b_reason": result.reason,
        "b_account": result.account,
        "b_trace": json.dumps(result.as_document()["trace"]),
        "b_result_digest": result.digest(),
        "b_late_outcome": result.outcome if late else None,
    }


RECORD = (
    update(JOBS)
    .where(JOBS.c.id == bindparam("b_id"))
    .values(
        state=bindparam("b_state"),
        finished_at=bindparam("b_finished_at"),
        updated_at=bindparam("b_updated_at"),
        lease_expires_at=None,
        # Why: the sealed remote login is needed only until the job ran; a final job keeps no
        # copy (this Core statement bypasses the ORM event that drops it elsewhere).
        sealed_credentials=None,
        result_digest=bindparam("b_result_digest"),
        late_outcome=bindparam("b_late_outcome"),
        **{name: bindparam(f"b_{name}") for name in _RESULT_VALUES},
    )
)


# The reported jobs, locked: built once (an expanding IN list binds a batch of any size).
LOCK = (
    select(
        JOBS.c.id,
        JOBS.c.state,
        JOBS.c.lease_holder,
        JOBS.c.result_digest,
        JOBS.c.finished_at,
        JOBS.c.subject,
        JOBS.c.attempts,
    )
    .where(JOBS.c.id.in_(bindparam("b_ids", expanding=True)), JOBS.c.node_id == bindparam("b_node"))
    .with_for_update()
)


# PostgreSQL: the batch in ONE statement that both checks and records. Each reported job is
# updated only if this node holds it and the result is a transition it may make (running →
# succeeded/failed/refused, or leased → refused: a refusal decided before start) with no result
# yet; RETURNING names the ones recorded. Anything else (a retry from the outbox, a conflict, a
# late result for a lost job, another node's or an unknown id) is left to the locking path below.
_FROM_RUNNING = sorted(state.value for state in RESULT_STATES if can_transition(JobState.RUNNING, state))
assert can_transition(JobState.LEASED, JobState.REFUSED)
_TEXT_VALUES = ("state", "stdout_tail", "stderr_tail", "result_code", "reason", "account", "trace", "result_digest")
_REPORTED = select(
    *(func.unnest(bindparam(f"f_{name}", type_=ARRAY(Text))).label(name) for name in ("id", *_TEXT_VALUES)),
    func.unnest(bindparam("f_exit_code", type_=ARRAY(Integer))).label("exit_code"),
).subquery("reported")
RECORD_CHECKED = (
    update(JOBS)
    .where(
        JOBS.c.id == _REPORTED.c.id,
        # Why: only the node holding the lease records a result, once, by an allowed transition.
        JOBS.c.node_id == bindparam("f_node", type_=String),
        JOBS.c.lease_holder == bindparam("f_node", type_=String),
        JOBS.c.result_digest.is_(None),
        or_(
            and_(JOBS.c.state == JobState.RUNNING.value, or_(*(_REPORTED.c.state == state for state in _FROM_RUNNING))),
            and_(JOBS.c.state == JobState.LEASED.value, _REPORTED.c.state == JobState.REFUSED.value),
        ),
    )
    .values(
        finished_at=bindparam("f_stamp", type_=Float),
        updated_at=bindparam("f_stamp", type_=Float),
        lease_expires_at=None,
        # Why: as in RECORD, a final job keeps no copy of the sealed remote login.
        sealed_credentials=None,
        late_outcome=None,
        exit_code=_REPORTED.c.exit_code,
        **{name: _REPORTED.c[name] for name in _TEXT_VALUES},
    )
    .returning(JOBS.c.id, JOBS.c.subject, JOBS.c.attempts)
)


def _checked_values(
    node_id: str, items: Sequence[tuple[str, Result | JobInvalidSpec]], stamp: float
) -> tuple[dict[str, Any], dict[str, Result]] | None:
    """What ``RECORD_CHECKED`` binds for the well-formed items, and those items by id; ``None``
    when there is none, or an id comes twice (the locking path answers each of those)."""
    results = [(job_id, result) for job_id, result in items if isinstance(result, Result) and is_job_id(job_id)]
    by_id = dict(results)
    if not results or len(by_id) != len(results):
        return None
    values: dict[str, Any] = {"f_node": node_id, "f_stamp": stamp, "f_id": list(by_id)}
    rows = [_values(job_id, result.outcome, result, stamp, False, None) for job_id, result in results]
    for name in (*_TEXT_VALUES, "exit_code"):
        values[f"f_{name}"] = [row[f"b_{name}"] for row in rows]
    return values, by_id


def _recorded(job_id: str, result: Result, subject: str, attempt: int) -> Recorded:
    return Recorded(ItemOutcome(job_id, result.outcome), result, subject, attempt, new=True)


def _record_checked(
    session: Session, node_id: str, items: list[tuple[str, Result | JobInvalidSpec]], stamp: float
) -> dict[str, Recorded]:
    """``RECORD_CHECKED`` over the well-formed items: job id -> recorded."""
    checked = _checked_values(node_id, items, stamp)
    if checked is None:
        return {}
    values, by_id = checked
    rows = session.execute(RECORD_CHECKED, values)
    return {row.id: _recorded(row.id, by_id[row.id], row.subject, row.attempts) for row in rows}


# PostgreSQL: ``RECORD_CHECKED`` and the lease (``sts.jobs.dispatch.LEASE``) in ONE statement,
# which commits on its own: two data-modifying CTEs over disjoint rows (the reported jobs are
# leased or running, the leased ones were queued), their rows told apart by ``kind``.
_RECORDED = RECORD_CHECKED.cte("recorded")
_LEASED = LEASE[True].cte("leased")
_PADDING = [column for column in LEASED_COLUMNS if column.name not in ("id", "subject", "attempts")]
RECORD_AND_LEASE = union_all(
    select(
        literal("recorded").label("kind"),
        _RECORDED.c.id,
        _RECORDED.c.subject,
        _RECORDED.c.attempts,
        *(null().cast(column.type).label(column.name) for column in _PADDING),
    ),
    select(
        literal("leased").label("kind"),
        _LEASED.c.id,
        _LEASED.c.subject,
        _LEASED.c.attempts,
        *(_LEASED.c[column.name] for column in _PADDING),
    ),
)


def record_and_lease(
    env: Services, node_id: str, limit: int, items: list[tuple[str, Result | JobInvalidSpec]]
) -> tuple[list[Lease], list[Recorded]] | None:
    """PostgreSQL: record the carried results that need no lock-and-look (``RECORD_CHECKED``) and
    lease up to ``limit`` jobs, in one statement; the other results go through ``report_many``.
    ``None`` on SQLite, or when no result can take the one-statement path."""
    stamp = env.clock()
    checked = None if env.db.is_sqlite else _checked_values(node_id, items, stamp)
    if checked is None:
        return None
    values, by_id = checked
    with env.statements() as conn:
        rows = conn.execute(RECORD_AND_LEASE, {**values, **lease_values(env, node_id, limit)}).all()
    recorded = {
        row.id: _recorded(row.id, by_id[row.id], row.subject, row.attempts) for row in rows if row.kind == "recorded"
    }
    done = [isinstance(result, Result) and job_id in recorded for job_id, result in items]
    rest = [item for item, was in zip(items, done, strict=True) if not was]
    later = iter(report_many(env, node_id, rest) if rest else [])
    answers = [recorded[job_id] if was else next(later) for (job_id, _), was in zip(items, done, strict=True)]
    return leases_of(env, [row for row in rows if row.kind == "leased"]), answers


def report_many(env: Services, node_id: str, items: list[tuple[str, Result | JobInvalidSpec]]) -> list[Recorded]:
    """Record a batch of results in one transaction: one locking SELECT, one executemany UPDATE.
    Each item is answered on its own; a refused item does not refuse the others."""
    with env.session(immediate=True) as session:
        return record_results(env, session, node_id, items)


def record_results(
    env: Services, session: Session, node_id: str, items: list[tuple[str, Result | JobInvalidSpec]]
) -> list[Recorded]:
    """``report_many`` inside the caller's transaction (a lease call that carries results)."""
    stamp = env.clock()
    checked = {} if env.db.is_sqlite else _record_checked(session, node_id, items, stamp)
    wanted = [job_id for job_id, _ in items if is_job_id(job_id) and job_id not in checked]
    recorded: list[Recorded] = []
    rows = {}
    if wanted:
        rows = {row.id: row for row in session.execute(LOCK, {"b_ids": wanted, "b_node": node_id})}
    changes: list[dict[str, Any]] = []
    for job_id, result in items:
        if job_id in checked:
            recorded.append(checked[job_id])
            continue
        row = rows.get(job_id)
        if isinstance(result, JobInvalidSpec):
            recorded.append(_refused(job_id, result))
            continue
        if row is None:
            # Why: another node's job answers exactly like a missing one, so ids cannot be probed.
            missing = JobNotFound(f"node {node_id} has no job {job_id[:64]!r}", job_id=job_id[:64], node=node_id)
            recorded.append(_refused(job_id, missing))
            continue
        late = row.state == JobState.LOST.value
        if row.result_digest is not None and (row.state in RESULT_STATES or late):
            if row.result_digest == result.digest():  # the same report again (an outbox retry)
                recorded.append(Recorded(ItemOutcome(job_id, row.state, late=late)))
            else:
                conflict = JobResultConflict(
                    f"job {job_id} already has a different result ({row.state})", job_id=job_id
                )
                recorded.append(_refused(job_id, conflict))
            continue
        target = JobState(result.outcome)
        allowed = (row.state == JobState.LEASED.value and target is JobState.REFUSED) or (
            row.state == JobState.RUNNING.value and can_transition(row.state, target)
        )
        if not (allowed or late) or row.lease_holder != node_id:
            lost = JobLeaseLost(
                f"node {node_id} no longer holds the lease on job {job_id} (job is {row.state})",
                job_id=job_id,
                node=node_id,
            )
            recorded.append(_refused(job_id, lost))
            continue
        state = JobState.LOST.value if late else target.value
        changes.append(_values(job_id, state, result, stamp, late, row.finished_at))
        outcome = ItemOutcome(job_id, state, late=late)
        recorded.append(Recorded(outcome, result, row.subject, row.attempts, new=True))
    if changes:
        session.execute(RECORD, changes)
    return recorded


def report(env: Services, node_id: str, job_id: str, result: Result) -> Recorded:
    """Record one result (``report_many`` of one); raises the refusal of that job."""
    (recorded,) = report_many(env, node_id, [(job_id, result)])
    raise_refusal(recorded.outcome, node_id)
    return recorded
