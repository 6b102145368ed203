"""Job manager refusals. Each is one stable code, documented in docs/errors.md ("Jobs")."""

from __future__ import annotations

from typing import ClassVar

from realms.errors import InputError, LoginFailed
from realms.tokens.errors import RealmUntrusted
from realms.wire.errors import JobIdentityField as JobIdentityField
from realms.wire.errors import JobInvalidSpec as JobInvalidSpec


class JobError(InputError):
    """Base of the job manager's input refusals (never raised itself)."""

    code: ClassVar[str] = "job.error"


class JobNotFound(JobError):
    """No such job, or one the caller may not see (same answer, so ids cannot be probed)."""

    code: ClassVar[str] = "job.not_found"
    status: ClassVar[int] = 404


class JobLeaseLost(JobError):
    """The calling node does not hold an unexpired lease on the job."""

    code: ClassVar[str] = "job.lease_lost"
    status: ClassVar[int] = 409


class JobResultConflict(JobError):
    """A second, different result was reported for a job that already has one."""

    code: ClassVar[str] = "job.result_conflict"
    status: ClassVar[int] = 409


class JobStateError(JobError):
    """The requested transition is not allowed from the job's current state."""

    code: ClassVar[str] = "job.state"
    status: ClassVar[int] = 409


class JobCancelForbidden(JobError):
    """The caller may see the job but is neither its submitter nor an administrator."""

    code: ClassVar[str] = "job.forbidden"
    status: ClassVar[int] = 403


class JobIdempotencyConflict(JobError):
    """An ``Idempotency-Key`` was reused with a different request body."""

    code: ClassVar[str] = "job.idempotency_conflict"
    status: ClassVar[int] = 409


class SubmitRealmUntrusted(RealmUntrusted):
    """Fail-fast ``realm.untrusted`` at submission: answered 409, not 401, since nothing is wrong
    with the caller's token; the node would refuse it."""

    status: ClassVar[int] = 409


class CredentialsRejected(LoginFailed):
    """``login.failed`` for the credentials sent with a job: answered 401, like a failed login."""

    status: ClassVar[int] = 401
