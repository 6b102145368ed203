"""One page of the job list for the web console: filters and a keyset (cursor) pagination.

Keyset pagination: a page ends with the ``(created_at, id)`` of its last job, and the next page
asks for jobs strictly before that key. Each page is one index range read on ``created_at``
(``ix_sts_jobs_created``) or, for a submitter, ``ix_sts_jobs_submitter``: its cost does not grow
with the page number as ``OFFSET`` does. Visibility is the API's (``sts.jobs.history``): a
viewer without ``monitor`` sees only the jobs it submitted.
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass

from sqlalchemy import Integer, Select, and_, cast, func, or_, select
from sqlalchemy.orm import Session

from sts.jobs.errors import JobInvalidSpec
from sts.jobs.history import MAX_FILTER_CHARS, Viewer
from sts.jobs.models import Job
from sts.jobs.states import JobState

PAGE_SIZE = 50
MAX_CURSOR_CHARS = 128


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a page ends: the sort key of its last job (newest first, then id descending)."""

    created_at: float
    job_id: str

    def encode(self) -> str:
        """An opaque, URL-safe token (it carries no secret: a time stamp and a job id)."""
        raw = f"{self.created_at!r}|{self.job_id}".encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            if len(text) > MAX_CURSOR_CHARS:
                raise ValueError
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            stamp, job_id = raw.split("|", 1)
            if len(job_id) > 36:
                raise ValueError
            moment = float(stamp)
            if not math.isfinite(moment):
                raise ValueError
            return cls(moment, job_id)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise JobInvalidSpec("cursor: not a cursor of this list", field="cursor") from None


@dataclass(frozen=True, slots=True)
class ListingFilter:
    """The console's filters; ``None`` means "any"."""

    state: str | None = None
    node: str | None = None
    submitter: str | None = None
    type: str | None = None
    since: float | None = None  # created at or after
    until: float | None = None  # created before
    cursor: Cursor | None = None
    limit: int = PAGE_SIZE


@dataclass(frozen=True, slots=True)
class JobSummary:
    """What a row of the list shows: the list reads only these columns, never specs or output."""

    id: str
    state: str
    node_id: str
    type: str
    submitter: str
    created_at: float
    result_code: str | None


SUMMARY_COLUMNS = (Job.id, Job.state, Job.node_id, Job.type, Job.submitter, Job.created_at, Job.result_code)


SummarySelect = Select[str, str, str, str, str, float, str | None]


@dataclass(frozen=True, slots=True)
class Page:
    jobs: list[JobSummary]
    next_cursor: Cursor | None


def _check(filters: ListingFilter) -> None:
    if filters.state is not None and filters.state not in {s.value for s in JobState}:
        raise JobInvalidSpec(f"state: unknown state {filters.state[:32]!r}", field="state")
    for name in ("node", "submitter", "type"):
        value = getattr(filters, name)
        # Why: PostgreSQL text cannot hold NUL (the driver raises); no stored value contains one.
        if value is not None and ("\x00" in value or len(value) > MAX_FILTER_CHARS):
            raise JobInvalidSpec(f"{name}: not a valid filter value", field=name)


def page_query(viewer: Viewer, filters: ListingFilter) -> SummarySelect:
    """The statement of one page (``limit + 1`` rows: the extra row says a next page exists)."""
    _check(filters)
    query = select(*SUMMARY_COLUMNS).order_by(Job.created_at.desc(), Job.id.desc()).limit(filters.limit + 1)
    if not viewer.sees_all:
        # Why: the API's rule (sts.jobs.history): without monitor, only one's own jobs.
        query = query.where(Job.submitter == viewer.access_id)
    for column, value in (
        (Job.state, filters.state),
        (Job.node_id, filters.node),
        (Job.submitter, filters.submitter),
        (Job.type, filters.type),
    ):
        if value is not None:
            query = query.where(column == value)
    if filters.since is not None:
        query = query.where(Job.created_at >= filters.since)
    if filters.until is not None:
        query = query.where(Job.created_at < filters.until)
    if filters.cursor is not None:
        key = filters.cursor
        query = query.where(
            or_(Job.created_at < key.created_at, and_(Job.created_at == key.created_at, Job.id < key.job_id))
        )
    return query


def list_page(session: Session, viewer: Viewer, filters: ListingFilter) -> Page:
    """One page of jobs visible to ``viewer``, newest first, and the cursor of the next page."""
    rows = [JobSummary(**row._mapping) for row in session.execute(page_query(viewer, filters))]
    if len(rows) <= filters.limit:
        return Page(rows, None)
    last = rows[filters.limit - 1]
    return Page(rows[: filters.limit], Cursor(last.created_at, last.id))


@dataclass(frozen=True, slots=True)
class Activity:
    """Jobs created in a window, per hour and state, and refusals per code."""

    since: float
    hours: int
    per_hour: dict[tuple[int, str], int]
    refusals: dict[str, int]


def activity(session: Session, viewer: Viewer, now: float, hours: int = 24) -> Activity:
    """Counts for the console's chart, grouped in SQL over the ``created_at`` index range."""
    since = now - hours * 3600
    bucket = cast((Job.created_at - since) / 3600, Integer).label("bucket")
    per_hour = select(bucket, Job.state, func.count()).where(Job.created_at >= since).group_by(bucket, Job.state)
    refusals = (
        select(Job.result_code, func.count())
        .where(Job.created_at >= since, Job.state == JobState.REFUSED.value)
        .group_by(Job.result_code)
    )
    if not viewer.sees_all:
        per_hour = per_hour.where(Job.submitter == viewer.access_id)
        refusals = refusals.where(Job.submitter == viewer.access_id)
    counts: dict[tuple[int, str], int] = {}
    for raw_bucket, state, count in session.execute(per_hour):
        key = (min(max(int(raw_bucket), 0), hours - 1), str(state))
        counts[key] = counts.get(key, 0) + int(count)
    codes = {str(code or "unknown"): int(n) for code, n in session.execute(refusals)}
    return Activity(since, hours, counts, codes)
