"""Steps (a) to (c) of design Flow 4: is this job token valid for this leased job, here?

``realms.tokens.verify`` does issuer trust first, the pinned signature, ``typ``, required
claims, exact audience and the time window. This module adds what only the agent knows:
the job it leased (``job_id``, recomputed ``job_digest``, node), the revocation list and
its own durable record of started jobs.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Container, Mapping
from dataclasses import dataclass
from typing import Any

from agent_client.errors import JobInvalid
from agent_client.journal import StartedJournal
from realms.job_digest import job_digest
from realms.tokens.errors import TokenJobMismatch, TokenReplayed, TokenRevoked
from realms.tokens.profiles import JOB_TOKEN
from realms.tokens.verify import TrustResolver, VerifiedToken, verify

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
MAX_ARGV = 4096
MAX_ARG_BYTES = 128 * 1024
REMOTE_FIELDS = ("remote_host", "credential", "sudo_user")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
SUDO_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")


@dataclass(frozen=True, slots=True)
class JobSpec:
    """The contract's ``spec``: what to run, with which additions to the environment, where, how long."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: str | None
    timeout: int
    authgroup: str | None
    remote_host: str | None = None  # a [remote_hosts.<name>] of the agent: run there over SSH
    credential: str | None = None  # a key of the agent's credential store (never the secret)
    sudo_user: str | None = None  # on a remote host: sudo to this user after login


@dataclass(frozen=True, slots=True)
class LeasedJob:
    """A job as the lease returned it. ``raw_spec`` is kept verbatim for the digest."""

    id: str
    node: str
    type: str
    spec: JobSpec
    raw_spec: dict[str, Any]
    submitter: str
    realm: str
    not_before: int
    deadline: int
    attempt: int


def _string(value: Any, what: str, *, allow_none: bool = False) -> Any:
    if value is None and allow_none:
        return None
    if not isinstance(value, str) or not value or "\x00" in value:
        raise JobInvalid(f"job {what} must be a non-empty string without NUL", field=what)
    return value


def _integer(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise JobInvalid(f"job {what} must be an integer", field=what)
    return value


def parse_spec(spec: Any) -> JobSpec:
    """Validate the ``spec`` object of the contract; any deviation is ``agent.job_invalid``."""
    if not isinstance(spec, dict):
        raise JobInvalid("job spec must be an object", field="spec")
    unknown = set(spec) - {"argv", "env", "cwd", "timeout", "authgroup", *REMOTE_FIELDS}
    if unknown:
        raise JobInvalid(f"job spec has unknown member {sorted(unknown)[0][:40]!r}", field="spec")
    argv = spec.get("argv")
    if not isinstance(argv, list) or not argv or len(argv) > MAX_ARGV:
        raise JobInvalid("job spec.argv must be a non-empty list of strings", field="argv")
    for arg in argv:
        if not isinstance(arg, str) or "\x00" in arg:
            raise JobInvalid("job spec.argv must hold strings without NUL", field="argv")
    if sum(len(a.encode("utf-8", "surrogatepass")) for a in argv) > MAX_ARG_BYTES:
        raise JobInvalid(f"job spec.argv is longer than {MAX_ARG_BYTES} bytes", field="argv")
    # Why: the sudo executor runs `env -i NAME=VALUE... ARGV`; a program name containing "="
    # would be read by env(1) as one more assignment instead of the command.
    if not argv[0] or "=" in argv[0]:
        raise JobInvalid("job spec.argv[0] must be a program name without '='", field="argv")
    env = spec.get("env") or {}
    if not isinstance(env, dict):
        raise JobInvalid("job spec.env must be an object of strings", field="env")
    for name, value in env.items():
        if ENV_NAME.fullmatch(name) is None or not isinstance(value, str) or "\x00" in value:
            raise JobInvalid(f"job spec.env has a bad variable {str(name)[:40]!r}", field="env")
    cwd = _string(spec.get("cwd"), "spec.cwd", allow_none=True)
    if cwd is not None and not cwd.startswith("/"):
        raise JobInvalid("job spec.cwd must be an absolute path", field="cwd")
    timeout = _integer(spec.get("timeout"), "spec.timeout")
    if timeout <= 0:
        raise JobInvalid("job spec.timeout must be a positive number of seconds", field="timeout")
    authgroup = _string(spec.get("authgroup"), "spec.authgroup", allow_none=True)
    remote = {name: _name(spec.get(name), f"spec.{name}") for name in REMOTE_FIELDS}
    if remote["sudo_user"] is not None and remote["remote_host"] is None:
        raise JobInvalid("job spec.sudo_user needs spec.remote_host", field="sudo_user")
    return JobSpec(tuple(argv), dict(env), cwd, timeout, authgroup, **remote)


def _name(value: Any, what: str) -> str | None:
    """An optional name of the remote-job fields: a host, credential key or user, never an option."""
    if value is None:
        return None
    pattern = SUDO_USER if what == "spec.sudo_user" else NAME
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise JobInvalid(f"job {what} must match {pattern.pattern}", field=what.removeprefix("spec."))
    return value


def parse_job(job: Any) -> LeasedJob:
    """Validate the ``job`` object of a lease response (the STS<->agent contract)."""
    if not isinstance(job, dict):
        raise JobInvalid("leased job must be an object", field="job")
    raw_spec = job.get("spec")
    spec = parse_spec(raw_spec)
    assert isinstance(raw_spec, dict)
    return LeasedJob(
        id=_string(job.get("id"), "id"),
        node=_string(job.get("node"), "node"),
        type=_string(job.get("type"), "type"),
        spec=spec,
        raw_spec=raw_spec,
        submitter=_string(job.get("submitter"), "submitter"),
        realm=_string(job.get("realm"), "realm"),
        not_before=_integer(job.get("not_before", 0), "not_before"),
        deadline=_integer(job.get("deadline", 0), "deadline"),
        attempt=_integer(job.get("attempt", 1), "attempt"),
    )


def check_binding(verified: VerifiedToken, job: LeasedJob, node_id: str) -> str:
    """The token is for exactly this job on this node; returns the recomputed digest."""
    claims = verified.claims
    # Why: a valid token moved onto another job (or another node's job) must not authorize it.
    if claims["job_id"] != job.id:
        raise TokenJobMismatch(
            f"job token is for job {str(claims['job_id'])[:64]!r}, not job {job.id}", job=job.id, claim="job_id"
        )
    if job.node != node_id:
        raise TokenJobMismatch(f"job {job.id} is for node {job.node!r}, not {node_id}", job=job.id, claim="node")
    # Why: the digest is recomputed from what we will run, with our own node id, so a spec
    # edited after submission (argv, env, cwd, authgroup...) never matches its token.
    digest = job_digest(job.id, node_id, job.type, job.raw_spec)
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


def validate_job_token(
    token: str,
    job: LeasedJob,
    *,
    node_id: str,
    resolver: TrustResolver,
    leeway: int,
    revoked: Container[str] = frozenset(),
    journal: StartedJournal | None = None,
    now: float | None = None,
) -> VerifiedToken:
    """Steps (a)-(b) in one call: raise the first refusal (a ``TokenError``), else the verified token."""
    verified = verify(token, JOB_TOKEN, resolver, audience=node_id, leeway=leeway, now=now)
    check_binding(verified, job, node_id)
    check_jti(verified, revoked, journal)
    return verified
