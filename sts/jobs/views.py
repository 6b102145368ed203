"""How a job is shown: the history view (never the token) and the agent's lease document."""

from __future__ import annotations

import json
from typing import Any

from sts.jobs.models import Job


def spec_of(job: Job) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(job.spec)
    return spec


def job_document(job: Job) -> dict[str, Any]:
    """The contract's ``job`` object, exactly what the agent hashes and checks."""
    return {
        "id": job.id, "node": job.node_id, "type": job.type, "spec": spec_of(job),
        "submitter": job.subject, "realm": job.realm, "not_before": job.not_before,
        "deadline": job.deadline, "attempt": job.attempts,
    }


def history_view(job: Job) -> dict[str, Any]:
    """A job for ``GET /api/v1/jobs``. Why no token: the job token is a bearer credential for the
    node; only the node it was minted for receives it, through a lease."""
    result = None
    if job.result_digest is not None:
        result = {
            "exit_code": job.exit_code, "stdout_tail": job.stdout_tail, "stderr_tail": job.stderr_tail,
            "code": job.result_code, "reason": job.reason, "account": job.account,
            "trace": json.loads(job.trace) if job.trace else [],
        }
    return {
        "id": job.id, "node": job.node_id, "type": job.type, "spec": spec_of(job), "state": job.state,
        "submitter": job.submitter, "submitter_realm": job.submitter_realm, "subject": job.subject,
        "realm": job.realm, "job_digest": job.job_digest, "not_before": job.not_before, "deadline": job.deadline,
        "attempts": job.attempts, "lease_expires_at": job.lease_expires_at, "created_at": job.created_at,
        "updated_at": job.updated_at, "leased_at": job.leased_at, "started_at": job.started_at,
        "finished_at": job.finished_at, "code": job.result_code, "result": result,
    }
