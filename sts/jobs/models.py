"""Job tables (``sts_jobs``, ``sts_job_idempotency``), on the STS's declarative ``Base``.

Times are epoch seconds: integers where the HTTP contract speaks in whole seconds
(``not_before``, ``deadline``, ``lease_expires_at``, token ``exp``), floats for audit stamps.
The schema is created by the Alembic revisions ``0002_jobs``, ``0004_sealed_credentials`` and
``0006_late_results``; keep them in step.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, LargeBinary, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from sts.db import Base

ACCESS_ID_LENGTH = 1200


class Job(Base):
    """One submitted job, its encrypted job token, its lease and its result."""

    __tablename__ = "sts_jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # Who called POST /api/v1/jobs (history and cancel are keyed on this).
    submitter: Mapped[str] = mapped_column(String(ACCESS_ID_LENGTH))
    submitter_realm: Mapped[str] = mapped_column(String(63))
    # Whom the job token vouches for, and which realm signed it (differs from the submitter
    # when credentials for the node's realm were given).
    subject: Mapped[str] = mapped_column(String(ACCESS_ID_LENGTH))
    realm: Mapped[str] = mapped_column(String(63))
    node_id: Mapped[str] = mapped_column(String(63))
    type: Mapped[str] = mapped_column(String(64))
    spec: Mapped[str] = mapped_column(Text)  # canonical JSON of the normalized spec
    job_digest: Mapped[str] = mapped_column(String(64))
    not_before: Mapped[int] = mapped_column(BigInteger)
    deadline: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_holder: Mapped[str | None] = mapped_column(String(63), nullable=True)
    lease_expires_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    leased_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    stdout_tail: Mapped[str | None] = mapped_column(Text, nullable=True)
    stderr_tail: Mapped[str | None] = mapped_column(Text, nullable=True)
    result_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    account: Mapped[str | None] = mapped_column(String(256), nullable=True)
    trace: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON list of decision steps
    result_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # A result that arrived after the job was marked ``lost``: its outcome (the state stays ``lost``).
    late_outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # Why: the job token is a bearer credential for the node; it is stored only as AES-GCM
    # ciphertext under the master key, bound to the job id as AAD so it cannot be moved.
    token_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    token_jti: Mapped[str] = mapped_column(String(36), unique=True)
    token_exp: Mapped[int] = mapped_column(BigInteger)
    # Why: a password given at submit for a remote host is kept only sealed to the target
    # node's key (realms.sealing), and set to NULL when the job reaches a final state.
    sealed_credentials: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (
        # Leasing: equality on node and state, range on not_before: one index seek, no scan.
        Index("ix_sts_jobs_lease", "node_id", "state", "not_before", "created_at"),
        # The reaper: queued jobs past their deadline; leases past their expiry.
        Index("ix_sts_jobs_deadline", "state", "deadline"),
        Index("ix_sts_jobs_lease_expiry", "state", "lease_expires_at"),
        Index("ix_sts_jobs_submitter", "submitter", "created_at"),
        Index("ix_sts_jobs_created", "created_at"),
    )


class JobIdempotency(Base):
    """An ``Idempotency-Key`` seen from one submitter, the digest of its body, and its job."""

    __tablename__ = "sts_job_idempotency"

    submitter: Mapped[str] = mapped_column(String(ACCESS_ID_LENGTH), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_digest: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[str] = mapped_column(String(36), ForeignKey("sts_jobs.id", ondelete="CASCADE"))
    created_at: Mapped[float] = mapped_column(Float)


# The console's job list (sts/jobs/listing.py, Alembic revision 0008): a page filtered by state or
# by node is one range read in created_at order, not a sort of every matching job.
Index("ix_sts_jobs_state_created", Job.state, Job.created_at)
Index("ix_sts_jobs_node_created", Job.node_id, Job.created_at)

# The jobs table for SQLAlchemy Core statements (the hot paths: lease, claim, results, reaper).
JOBS: Table = cast(Table, Job.__table__)
