"""The documents the STS and the agent exchange, as typed values: job, lease, result, revocations.

``POST /api/v1/agent/lease`` answers a ``Lease``; ``POST /api/v1/agent/jobs/<id>/result`` takes
a ``Result``; ``GET /api/v1/agent/revocations`` lists revoked ``jti``s. Each is parsed once,
where it enters a process; past that point only the typed value travels.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from realms.identity.access_id import NODE_ID, REALM_NAME
from realms.sealing import MAX_SEALED_CHARS
from realms.wire import spec as schema
from realms.wire.digest import canonical_json, job_digest
from realms.wire.errors import JobInvalidSpec
from realms.wire.spec import JOB_TYPE, JobSpec, invalid, is_int, parse_spec, text
from realms.wire.trace import TraceStep, parse_trace

# Why: a job id becomes a URL path segment (``/jobs/<id>/start``); no "/", "?", "%" or "#".
JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
RESULT_CODE = re.compile(r"[a-z0-9_]+(?:\.[a-z0-9_]+)*")
OUTCOMES = ("succeeded", "failed", "refused")


@dataclass(frozen=True, slots=True)
class JobDocument:
    """The lease's ``job``: what the agent checks against the job token, and runs."""

    id: str
    node: str
    type: str
    spec: JobSpec
    submitter: str
    realm: str
    not_before: int
    deadline: int
    attempt: int

    def as_document(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "node": self.node,
            "type": self.type,
            "spec": self.spec.as_document(),
            "submitter": self.submitter,
            "realm": self.realm,
            "not_before": self.not_before,
            "deadline": self.deadline,
            "attempt": self.attempt,
        }

    def digest(self, node_id: str) -> str:
        """The job digest of this job on ``node_id``, over the parsed spec: exactly what will run."""
        return job_digest(self.id, node_id, self.type, self.spec.as_document())


@dataclass(frozen=True, slots=True)
class MalformedJob:
    """A leased job that breaks the contract. Only its id is trusted, so that it can be refused."""

    id: str
    error: JobInvalidSpec


@dataclass(frozen=True, slots=True)
class Lease:
    """One leased job, the job token minted for it, and when the lease ends (epoch seconds)."""

    job: JobDocument | MalformedJob
    job_token: str
    lease_expires_at: int | None
    sealed_credentials: str | None = None  # remote-host login given at submit, sealed to the node key


@dataclass(frozen=True, slots=True)
class Result:
    """What the agent reports for a job: its outcome, output tails, refusal code and decision trace."""

    outcome: str
    exit_code: int | None
    stdout_tail: str
    stderr_tail: str
    code: str | None
    reason: str | None
    account: str | None
    trace: tuple[TraceStep, ...]

    def as_document(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "exit_code": self.exit_code,
            "stdout_tail": self.stdout_tail,
            "stderr_tail": self.stderr_tail,
            "code": self.code,
            "reason": self.reason,
            "account": self.account,
            "trace": [step.as_document() for step in self.trace],
        }

    def digest(self) -> str:
        """SHA-256 of the canonical result: the same report twice is one report."""
        return hashlib.sha256(canonical_json(self.as_document())).hexdigest()


def tail(value: str) -> str:
    """The last ``max_tail_chars`` characters: the end of the output is what explains an exit."""
    return value[-schema.LIMITS.max_tail_chars :]


def _name(value: Any, field: str, pattern: re.Pattern[str]) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise invalid(f"job.{field}: must match {pattern.pattern}", f"job.{field}")
    return value


def _count(value: Any, field: str) -> int:
    if not is_int(value):
        raise invalid(f"job.{field}: must be an integer", f"job.{field}")
    return int(value)


def parse_job(raw: Any) -> JobDocument:
    """Validate the ``job`` of a lease; its spec goes through ``parse_spec`` with the same limits."""
    if not isinstance(raw, dict):
        raise invalid("job: must be an object", "job")
    return JobDocument(
        id=_name(raw.get("id"), "id", JOB_ID),
        node=_name(raw.get("node"), "node", NODE_ID),
        type=_name(raw.get("type"), "type", JOB_TYPE),
        spec=parse_spec(raw.get("spec")),
        submitter=text(raw.get("submitter"), "job.submitter", 1024, allow_empty=False),
        realm=_name(raw.get("realm"), "realm", REALM_NAME),
        not_before=_count(raw.get("not_before", 0), "not_before"),
        deadline=_count(raw.get("deadline", 0), "deadline"),
        attempt=_count(raw.get("attempt", 1), "attempt"),
    )


def parse_lease(raw: Any) -> Lease:
    """Validate a lease. A broken envelope is refused; a broken job inside a sound envelope becomes
    a ``MalformedJob``, so that the agent refuses it by id instead of seeing it leased again and again."""
    if not isinstance(raw, dict) or not isinstance(raw.get("job"), dict):
        raise invalid("lease: must be an object with a job object", "lease")
    token, expires = raw.get("job_token"), raw.get("lease_expires_at")
    if not isinstance(token, str) or not token:
        raise invalid("lease.job_token: must be a non-empty string", "lease.job_token")
    if expires is not None and not is_int(expires):
        raise invalid("lease.lease_expires_at: must be epoch seconds", "lease.lease_expires_at")
    job_id = raw["job"].get("id")
    if not isinstance(job_id, str) or not JOB_ID.fullmatch(job_id):
        raise invalid("lease.job.id: must be a job id", "lease.job.id")
    job: JobDocument | MalformedJob
    try:
        job = parse_job(raw["job"])
    except JobInvalidSpec as exc:
        job = MalformedJob(job_id, exc)
    sealed = raw.get("sealed_credentials")
    if sealed is not None and (not isinstance(sealed, str) or len(sealed) > MAX_SEALED_CHARS):
        raise invalid("lease.sealed_credentials: must be a sealed string", "lease.sealed_credentials")
    return Lease(job, token, expires, sealed)


def _clip(value: Any, field: str, max_chars: int) -> str:
    if not isinstance(value, str):
        raise invalid(f"{field}: must be a string", field)
    return value[:max_chars]


def _tail(value: Any, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise invalid(f"{field}: must be a string", field)
    return tail(value)


def parse_result(raw: Any) -> Result:
    """Validate a reported result. Output tails and free text are cut to the limits, never refused."""
    limits = schema.LIMITS
    if not isinstance(raw, dict):
        raise invalid("body: must be a JSON object", "body")
    outcome = raw.get("outcome")
    if outcome not in OUTCOMES:
        raise invalid("outcome: must be succeeded, failed or refused", "outcome")
    exit_code = raw.get("exit_code")
    if exit_code is not None and (not is_int(exit_code) or not -(2**31) <= exit_code < 2**31):
        raise invalid("exit_code: must be an integer or null", "exit_code")
    code = raw.get("code")
    if code is not None and (
        not isinstance(code, str) or len(code) > limits.max_code_chars or not RESULT_CODE.fullmatch(code)
    ):
        raise invalid("code: must be a dotted lowercase code", "code")
    if outcome == "refused" and code is None:
        raise invalid("code: a refusal must carry its code", "code")
    reason = raw.get("reason")
    account = raw.get("account")
    return Result(
        outcome=str(outcome),
        exit_code=exit_code,
        stdout_tail=_tail(raw.get("stdout_tail"), "stdout_tail"),
        stderr_tail=_tail(raw.get("stderr_tail"), "stderr_tail"),
        code=code,
        reason=None if reason is None else _clip(reason, "reason", limits.max_reason_chars),
        account=None if account is None else text(account, "account", limits.max_account_chars),
        trace=parse_trace(raw.get("trace") or []),
    )


def parse_revocations(raw: Any) -> dict[str, int]:
    """``{"revoked": [{"jti", "exp"}, ...]}`` as jti -> exp; malformed entries are skipped."""
    revoked: dict[str, int] = {}
    items = raw.get("revoked") if isinstance(raw, dict) else None
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and isinstance(item.get("jti"), str):
            exp = item.get("exp")
            revoked[item["jti"]] = exp if isinstance(exp, int) and not isinstance(exp, bool) else 0
    return revoked
