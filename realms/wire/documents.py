"""The documents the STS and the agent exchange, as typed values: job, lease, result, revocations.

``POST /api/v1/agent/lease`` answers a ``Lease``; ``POST /api/v1/agent/jobs/<id>/result`` takes
a ``Result``; ``GET /api/v1/agent/revocations`` lists revoked ``jti``s. The batch calls carry the
same documents: ``/leases`` answers up to ``max_jobs`` leases, ``/claims`` starts recorded jobs,
``/results`` reports several results, each answered by one ``ItemOutcome`` per job; ``/leases`` may
carry the results of finished jobs too (one call fewer per batch). Each is parsed
once, where it enters a process; past that point only the typed value travels.
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
from realms.wire.spec import JOB_TYPE, JobSpec, invalid, is_int, is_text, parse_spec, text
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
    get = raw.get
    job_id, node, job_type = (
        _name(get("id"), "id", JOB_ID),
        _name(get("node"), "node", NODE_ID),
        _name(get("type"), "type", JOB_TYPE),
    )
    spec = parse_spec(get("spec"))
    submitter: Any = get("submitter")  # a str once the check below passed
    if not (is_text(submitter, 1024) and submitter):
        text(submitter, "job.submitter", 1024, allow_empty=False)  # raises, with the reason
    realm = _name(get("realm"), "realm", REALM_NAME)
    not_before, deadline, attempt = get("not_before", 0), get("deadline", 0), get("attempt", 1)
    if not (type(not_before) is type(deadline) is type(attempt) is int):  # else checked one by one
        not_before, deadline = _count(not_before, "not_before"), _count(deadline, "deadline")
        attempt = _count(attempt, "attempt")
    return JobDocument(job_id, node, job_type, spec, submitter, realm, not_before, deadline, attempt)


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


# -- batches: ``POST /api/v1/agent/leases``, ``/claims``, ``/results`` ---------------------------

# Why a bound: one request must not lock or write an unbounded number of rows.
MAX_BATCH = 64
# The longest a lease request may long-poll (``wait``), in seconds; agents waiting longer wait
# on ``GET /api/v1/agent/wait`` instead, which holds no thread at the STS.
MAX_LEASE_WAIT = 30


ReportedItem = tuple[str, Result | JobInvalidSpec]


@dataclass(frozen=True, slots=True)
class LeaseRequest:
    """``POST /api/v1/agent/leases``: up to ``max_jobs`` jobs (the agent's free slots), long-polled
    up to ``wait`` seconds when none is queued. ``results``: finished jobs' results carried along
    (as ``/results`` would take them), recorded before the lease; the answer then always has an
    ``outcomes`` list, one per result, and is never 204."""

    max_jobs: int
    wait: float
    results: tuple[ReportedItem, ...] = ()

    def as_document(self) -> dict[str, Any]:
        document: dict[str, Any] = {"max_jobs": self.max_jobs, "wait": self.wait}
        if self.results:
            sent = [(job_id, result) for job_id, result in self.results if isinstance(result, Result)]
            document["results"] = results_document(sent)["results"]
        return document


@dataclass(frozen=True, slots=True)
class Claim:
    """One leased job the agent recorded in its journal and now starts (``leased`` → ``running``)."""

    job_id: str
    attempt: int | None = None

    def as_document(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "attempt": self.attempt}


@dataclass(frozen=True, slots=True)
class ItemOutcome:
    """The STS's answer for one item of a batch: the job's state now, or the refusal of that item
    (``code`` and ``message``, as the single-job endpoint would answer). ``late`` marks a result
    recorded for a job that was already ``lost``."""

    job_id: str
    state: str | None
    code: str | None = None
    message: str | None = None
    lease_expires_at: int | None = None
    late: bool = False

    def as_document(self) -> dict[str, Any]:
        document: dict[str, Any] = {"job_id": self.job_id, "state": self.state}
        if self.code is not None:
            document["code"], document["message"] = self.code, self.message
        if self.lease_expires_at is not None:
            document["lease_expires_at"] = self.lease_expires_at
        if self.late:
            document["late"] = True
        return document


def _items(raw: Any, member: str) -> list[Any]:
    items = raw.get(member) if isinstance(raw, dict) else None
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH:
        raise invalid(f"{member}: must be a list of 1 to {MAX_BATCH} items", member)
    return items


def _job_id(value: Any, field: str) -> str:
    if not isinstance(value, str) or not JOB_ID.fullmatch(value):
        raise invalid(f"{field}: must be a job id", field)
    return value


def parse_lease_request(raw: Any, max_wait: float) -> LeaseRequest:
    """Validate a batch lease request; ``max_jobs`` defaults to 1, ``wait`` to 0, ``results`` to none
    (when present, parsed as ``parse_results`` does)."""
    if not isinstance(raw, dict):
        raise invalid("body: must be a JSON object", "body")
    count, wait = raw.get("max_jobs", 1), raw.get("wait", 0)
    if not is_int(count) or not 1 <= count <= MAX_BATCH:
        raise invalid(f"max_jobs: must be 1 to {MAX_BATCH}", "max_jobs")
    if isinstance(wait, bool) or not isinstance(wait, int | float) or not 0 <= wait <= max_wait:
        raise invalid(f"wait: must be 0 to {max_wait:g} seconds", "wait")
    results = tuple(parse_results(raw)) if "results" in raw else ()
    return LeaseRequest(int(count), float(wait), results)


def parse_leases(raw: Any) -> list[Lease]:
    """``{"leases": [lease, ...]}``: each lease parsed as ``parse_lease`` does."""
    items = raw.get("leases") if isinstance(raw, dict) else None
    if not isinstance(items, list) or len(items) > MAX_BATCH:
        raise invalid(f"leases: must be a list of at most {MAX_BATCH} leases", "leases")
    return [parse_lease(item) for item in items]


def parse_claims(raw: Any) -> list[Claim]:
    """``{"claims": [{"job_id", "attempt"}, ...]}``; a job id may appear once."""
    claims: list[Claim] = []
    for item in _items(raw, "claims"):
        if not isinstance(item, dict):
            raise invalid("claims: each claim must be an object", "claims")
        attempt = item.get("attempt")
        if attempt is not None and not is_int(attempt):
            raise invalid("claims.attempt: must be an integer", "claims.attempt")
        claims.append(Claim(_job_id(item.get("job_id"), "claims.job_id"), attempt))
    if len({claim.job_id for claim in claims}) != len(claims):
        raise invalid("claims: a job may be claimed once per call", "claims")
    return claims


def results_document(results: list[tuple[str, Result]]) -> dict[str, Any]:
    """The body of ``POST /api/v1/agent/results``."""
    return {"results": [{"job_id": job_id, "result": result.as_document()} for job_id, result in results]}


def parse_results(raw: Any) -> list[ReportedItem]:
    """``{"results": [{"job_id", "result"}, ...]}``. A malformed result is kept as its error, so that
    it is refused alone (its item outcome) while the others of the batch are recorded."""
    parsed: list[ReportedItem] = []
    for item in _items(raw, "results"):
        if not isinstance(item, dict):
            raise invalid("results: each item must be an object", "results")
        job_id = _job_id(item.get("job_id"), "results.job_id")
        try:
            parsed.append((job_id, parse_result(item.get("result"))))
        except JobInvalidSpec as exc:
            parsed.append((job_id, exc))
    if len({job_id for job_id, _ in parsed}) != len(parsed):
        raise invalid("results: a job may be reported once per call", "results")
    return parsed


def parse_lease_answer(raw: Any) -> tuple[list[Lease], list[ItemOutcome] | None]:
    """The answer to ``/leases`` that carried results: its leases, and the results' outcomes
    (``None`` when the answer has none: an STS that does not take results with a lease)."""
    leases = parse_leases(raw)
    return leases, parse_outcomes(raw) if "outcomes" in raw else None


def parse_outcomes(raw: Any) -> list[ItemOutcome]:
    """The STS's answer to ``/claims`` or ``/results``: ``{"outcomes": [...]}``."""
    items = raw.get("outcomes") if isinstance(raw, dict) else None
    if not isinstance(items, list):
        raise invalid("outcomes: must be a list", "outcomes")
    outcomes: list[ItemOutcome] = []
    for item in items:
        if not isinstance(item, dict):
            raise invalid("outcomes: each item must be an object", "outcomes")
        state, code, message, expires = (
            item.get("state"),
            item.get("code"),
            item.get("message"),
            item.get("lease_expires_at"),
        )
        outcomes.append(
            ItemOutcome(
                job_id=_job_id(item.get("job_id"), "outcomes.job_id"),
                state=state if isinstance(state, str) else None,
                code=code if isinstance(code, str) else None,
                message=message if isinstance(message, str) else None,
                lease_expires_at=expires if isinstance(expires, int) and not isinstance(expires, bool) else None,
                late=item.get("late") is True,
            )
        )
    return outcomes
