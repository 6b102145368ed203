"""Validation and normalization of what clients send: job submissions and agent results.

The normalized spec is exactly what the agent receives and hashes with
``realms.wire.digest.job_digest``, so defaults are filled in here, before the digest is taken.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from realms.identity.access_id import NODE_ID
from realms.wire.digest import canonical_json
from sts.jobs.errors import JobIdentityField, JobInvalidSpec

MAX_ARGV = 256
MAX_ARG_CHARS = 4096
MAX_ENV = 64
MAX_ENV_VALUE_CHARS = 4096
MAX_CWD_CHARS = 4096
MAX_SPEC_BYTES = 256 * 1024
DEFAULT_TIMEOUT = 3600
MAX_TIMEOUT = 30 * 86400
MAX_TAIL_CHARS = 64 * 1024
MAX_TRACE_STEPS = 32
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
JOB_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
AUTHGROUP = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
RESULT_CODE = re.compile(r"[a-z0-9_]+(?:\.[a-z0-9_]+)*")
OUTCOMES = ("succeeded", "failed", "refused")
VERDICTS = ("pass", "fail", "skip")
TRACE_STEPS = tuple("abcdefgh")

# Why: identity comes only from the caller's verified token (or credentials checked against
# a registry). A body that tries to name an owner, groups, lifetimes, a run-as account or a
# token is refused outright (mass assignment), never silently dropped and never applied.
IDENTITY_FIELDS = frozenset({
    "owner", "submitter", "access_id", "sub", "groups", "exp", "iat", "nbf", "run_as", "account",
    "user", "token", "job_token", "iss", "realm", "aud", "jti",
})
SUBMIT_FIELDS = frozenset({"node", "type", "spec", "not_before", "deadline", "credentials"})
SPEC_FIELDS = frozenset({"argv", "env", "cwd", "timeout", "authgroup"})


@dataclass(frozen=True, slots=True)
class Credentials:
    """A username and password for the node's realm. Used once; never stored or logged."""

    username: str
    password: str

    def __repr__(self) -> str:
        # Why: keep the password out of any repr that reaches a log or a traceback.
        return f"Credentials(username={self.username!r}, password=<hidden>)"


@dataclass(frozen=True, slots=True)
class Submission:
    node: str
    type: str
    spec: dict[str, Any]
    not_before: int | None
    deadline: int | None
    credentials: Credentials | None
    request_digest: str  # for Idempotency-Key comparison; excludes the password


@dataclass(frozen=True, slots=True)
class TraceStep:
    step: str
    name: str
    verdict: str
    detail: str


@dataclass(frozen=True, slots=True)
class JobResult:
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
            "outcome": self.outcome, "exit_code": self.exit_code, "stdout_tail": self.stdout_tail,
            "stderr_tail": self.stderr_tail, "code": self.code, "reason": self.reason, "account": self.account,
            "trace": [{"step": t.step, "name": t.name, "verdict": t.verdict, "detail": t.detail} for t in self.trace],
        }

    def digest(self) -> str:
        return hashlib.sha256(canonical_json(self.as_document())).hexdigest()


def _fail(message: str, field: str) -> JobInvalidSpec:
    return JobInvalidSpec(message, field=field)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(value: Any, field: str, max_chars: int, *, allow_empty: bool = True) -> str:
    if not isinstance(value, str):
        raise _fail(f"{field}: must be a string", field)
    if len(value) > max_chars:
        raise _fail(f"{field}: longer than {max_chars} characters", field)
    if not allow_empty and not value:
        raise _fail(f"{field}: must not be empty", field)
    if "\x00" in value:
        raise _fail(f"{field}: contains a NUL character", field)
    return value


def _check_identity(document: Mapping[str, Any], where: str) -> None:
    found = sorted(IDENTITY_FIELDS & set(document))
    if found:
        raise JobIdentityField(
            f"{where}: identity field {found[0]!r} is not accepted; the job runs as the caller "
            "(or as the credentials given for the node's realm)", field=found[0],
        )


def epoch_seconds(value: Any, field: str) -> int:
    """An epoch integer, or an RFC 3339 date-time with a zone offset."""
    if _is_int(value):
        if not 0 <= value <= 253402300799:
            raise _fail(f"{field}: out of range", field)
        return int(value)
    if isinstance(value, str) and len(value) <= 64:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None:
            return int(moment.timestamp())
    raise _fail(f"{field}: must be epoch seconds or an RFC 3339 date-time with a zone", field)


def normalize_spec(raw: Any, node_authgroups: frozenset[str] | None = None) -> dict[str, Any]:
    """The spec with every default filled in: argv, env, cwd, timeout, authgroup."""
    if not isinstance(raw, dict):
        raise _fail("spec: must be an object", "spec")
    _check_identity(raw, "spec")
    unknown = sorted(set(raw) - SPEC_FIELDS)
    if unknown:
        raise _fail(f"spec.{unknown[0]}: unknown field", f"spec.{unknown[0]}")
    argv = raw.get("argv")
    if not isinstance(argv, list) or not argv:
        raise _fail("spec.argv: must be a non-empty list of strings", "spec.argv")
    if len(argv) > MAX_ARGV:
        raise _fail(f"spec.argv: more than {MAX_ARGV} items", "spec.argv")
    argv = [_text(item, f"spec.argv[{i}]", MAX_ARG_CHARS) for i, item in enumerate(argv)]
    if not argv[0]:
        raise _fail("spec.argv[0]: must name a program", "spec.argv")
    env = raw.get("env", {})
    if not isinstance(env, dict):
        raise _fail("spec.env: must be an object of strings", "spec.env")
    if len(env) > MAX_ENV:
        raise _fail(f"spec.env: more than {MAX_ENV} variables", "spec.env")
    for name, value in env.items():
        if not ENV_NAME.fullmatch(name) or len(name) > 255:
            raise _fail(f"spec.env: bad variable name {name[:64]!r}", "spec.env")
        _text(value, f"spec.env.{name}", MAX_ENV_VALUE_CHARS)
    cwd = raw.get("cwd")
    if cwd is not None:
        _text(cwd, "spec.cwd", MAX_CWD_CHARS, allow_empty=False)
        if not cwd.startswith("/"):
            raise _fail("spec.cwd: must be an absolute path", "spec.cwd")
    timeout = raw.get("timeout", DEFAULT_TIMEOUT)
    if not _is_int(timeout) or not 1 <= timeout <= MAX_TIMEOUT:
        raise _fail(f"spec.timeout: must be whole seconds from 1 to {MAX_TIMEOUT}", "spec.timeout")
    authgroup = raw.get("authgroup")
    if authgroup is not None:
        if not isinstance(authgroup, str) or not AUTHGROUP.fullmatch(authgroup):
            raise _fail("spec.authgroup: must be an authorization group name", "spec.authgroup")
        if node_authgroups is not None and authgroup not in node_authgroups:
            raise _fail(f"spec.authgroup: {authgroup!r} is not an authorization group of the node",
                        "spec.authgroup")
    spec = {"argv": argv, "env": dict(sorted(env.items())), "cwd": cwd, "timeout": timeout, "authgroup": authgroup}
    if len(canonical_json(spec)) > MAX_SPEC_BYTES:
        raise _fail(f"spec: larger than {MAX_SPEC_BYTES} bytes", "spec")
    return spec


def parse_submission(body: Any) -> Submission:
    """Validate a ``POST /api/v1/jobs`` body. Identity fields give ``job.identity_field`` first."""
    if not isinstance(body, dict):
        raise _fail("body: must be a JSON object", "body")
    _check_identity(body, "body")
    unknown = sorted(set(body) - SUBMIT_FIELDS)
    if unknown:
        raise _fail(f"{unknown[0]}: unknown field", unknown[0])
    node = body.get("node")
    if not isinstance(node, str) or not NODE_ID.fullmatch(node):
        raise _fail("node: must be a node id", "node")
    job_type = body.get("type")
    if not isinstance(job_type, str) or not JOB_TYPE.fullmatch(job_type):
        raise _fail("type: must match [A-Za-z0-9][A-Za-z0-9._-]{0,63}", "type")
    spec = normalize_spec(body.get("spec"))
    not_before = None if body.get("not_before") is None else epoch_seconds(body["not_before"], "not_before")
    deadline = None if body.get("deadline") is None else epoch_seconds(body["deadline"], "deadline")
    credentials = None
    raw_credentials = body.get("credentials")
    if raw_credentials is not None:
        if not isinstance(raw_credentials, dict) or set(raw_credentials) != {"username", "password"}:
            raise _fail("credentials: must be {username, password}", "credentials")
        credentials = Credentials(
            _text(raw_credentials["username"], "credentials.username", 256, allow_empty=False),
            _text(raw_credentials["password"], "credentials.password", 1024, allow_empty=False),
        )
    # Why: the idempotency digest is stored; hashing the password into it would keep an
    # unsalted, guessable hash of the password in the database. Only the username counts.
    digest_source = {"node": node, "type": job_type, "spec": spec, "not_before": not_before, "deadline": deadline,
                     "credentials_username": credentials.username if credentials else None}
    return Submission(node, job_type, spec, not_before, deadline, credentials,
                      hashlib.sha256(canonical_json(digest_source)).hexdigest())


def _optional_text(body: Mapping[str, Any], name: str, max_chars: int) -> str | None:
    value = body.get(name)
    return None if value is None else _text(value, name, max_chars)


def _clip(value: Any, name: str, max_chars: int) -> str:
    """Free text from the agent, cut to ``max_chars``: a long explanation must not lose the result."""
    if not isinstance(value, str):
        raise _fail(f"{name}: must be a string", name)
    return value[:max_chars]


def _tail(value: Any, name: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _fail(f"{name}: must be a string", name)
    # Capped at the last 64 KiB characters: the end of the output is what explains an exit.
    return value[-MAX_TAIL_CHARS:]


def parse_result(body: Any) -> JobResult:
    """Validate a ``POST /api/v1/agent/jobs/<id>/result`` body (the contract in docs)."""
    if not isinstance(body, dict):
        raise _fail("body: must be a JSON object", "body")
    outcome = body.get("outcome")
    if outcome not in OUTCOMES:
        raise _fail("outcome: must be succeeded, failed or refused", "outcome")
    exit_code = body.get("exit_code")
    if exit_code is not None and (not _is_int(exit_code) or not -(2**31) <= exit_code < 2**31):
        raise _fail("exit_code: must be an integer or null", "exit_code")
    code = body.get("code")
    if code is not None and (not isinstance(code, str) or len(code) > 64 or not RESULT_CODE.fullmatch(code)):
        raise _fail("code: must be a dotted lowercase code", "code")
    if outcome == "refused" and code is None:
        raise _fail("code: a refusal must carry its code", "code")
    trace_raw = body.get("trace") or []
    if not isinstance(trace_raw, list) or len(trace_raw) > MAX_TRACE_STEPS:
        raise _fail(f"trace: must be a list of at most {MAX_TRACE_STEPS} steps", "trace")
    trace = []
    for i, item in enumerate(trace_raw):
        if not isinstance(item, dict) or item.get("step") not in TRACE_STEPS or item.get("verdict") not in VERDICTS:
            raise _fail(f"trace[{i}]: needs step a..h and verdict pass|fail|skip", "trace")
        trace.append(TraceStep(item["step"], _clip(item.get("name", ""), f"trace[{i}].name", 128),
                               item["verdict"], _clip(item.get("detail", ""), f"trace[{i}].detail", 4096)))
    return JobResult(
        outcome=outcome, exit_code=exit_code, stdout_tail=_tail(body.get("stdout_tail"), "stdout_tail"),
        stderr_tail=_tail(body.get("stderr_tail"), "stderr_tail"), code=code,
        reason=_clip(body.get("reason"), "reason", 4096) if body.get("reason") is not None else None,
        account=_optional_text(body, "account", 256),
        trace=tuple(trace),
    )
