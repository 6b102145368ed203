"""Steps (a) to (c) of the decision: is this job token valid for this leased job, here?

``realms.tokens.verify`` does issuer trust first, the pinned signature, ``typ``, required
claims, exact audience and the time window. This module adds what only the agent knows:
the job it leased (``job_id``, recomputed ``job_digest``, node), the revocation list and
its own durable record of started jobs. The job itself is read with the wire contract's
parser and limits, the very ones the STS applied at submission.
"""

from __future__ import annotations

import hmac
from collections.abc import Container
from typing import Any

from agent_client.errors import JobInvalid
from agent_client.journal import StartedJournal
from realms.tokens.errors import TokenJobMismatch, TokenReplayed, TokenRevoked
from realms.tokens.verify import VerifiedToken
from realms.wire import documents, spec
from realms.wire.documents import JobDocument, MalformedJob
from realms.wire.errors import JobInvalidSpec
from realms.wire.spec import JobSpec


def _job_invalid(error: JobInvalidSpec) -> JobInvalid:
    field = error.data.get("field")
    return JobInvalid(f"leased job: {error.message}", field=field if isinstance(field, str) else "job")


def parse_spec(raw: Any) -> JobSpec:
    """The wire contract's ``parse_spec``; a spec it refuses is ``agent.job_invalid`` here."""
    try:
        return spec.parse_spec(raw)
    except JobInvalidSpec as exc:
        raise _job_invalid(exc) from None


def leased_job(job: JobDocument | MalformedJob | Any) -> JobDocument:
    """The typed job; a malformed one (or a raw document the contract refuses) is ``agent.job_invalid``."""
    if isinstance(job, JobDocument):
        return job
    if isinstance(job, MalformedJob):
        raise _job_invalid(job.error)
    try:
        return documents.parse_job(job)
    except JobInvalidSpec as exc:
        raise _job_invalid(exc) from None


def check_binding(verified: VerifiedToken, job: JobDocument, node_id: str) -> str:
    """The token is for exactly this job on this node; returns the recomputed digest."""
    claims = verified.claims
    # Why: a valid token moved onto another job (or another node's job) must not authorize it.
    if claims["job_id"] != job.id:
        raise TokenJobMismatch(
            f"job token is for job {str(claims['job_id'])[:64]!r}, not job {job.id}", job=job.id, claim="job_id"
        )
    if job.node != node_id:
        raise TokenJobMismatch(f"job {job.id} is for node {job.node!r}, not {node_id}", job=job.id, claim="node")
    # Why: the digest is recomputed from the parsed spec, exactly what will run, with our own
    # node id, so a spec edited after submission (argv, env, cwd, authgroup...) never matches.
    digest = job.spec.digest(job.id, node_id, job.type)
    if not hmac.compare_digest(str(claims["job_digest"]), digest):
        raise TokenJobMismatch(
            f"job token does not match job {job.id}: job_digest differs (spec changed?)", job=job.id, claim="job_digest"
        )
    if job.realm != verified.realm:
        raise TokenJobMismatch(
            f"job {job.id} says realm {job.realm!r} but its token is from realm {verified.realm}",
            job=job.id,
            claim="realm",
        )
    return digest


def check_jti(verified: VerifiedToken, revoked: Container[str], journal: StartedJournal | None) -> str:
    """Revocation list and the durable started record; returns the jti."""
    jti = str(verified.claims["jti"])
    if jti in revoked:
        raise TokenRevoked(f"job token {jti[:64]} was revoked", jti=jti[:64], realm=verified.realm)
    if journal is not None and journal.seen(jti):
        raise TokenReplayed(f"job token {jti[:64]} was already used to start a job", jti=jti[:64])
    return jti
