"""The job spec: its schema, its limits (one table) and the one parser both sides run.

The STS parses a submitted spec with ``parse_spec`` and stores ``JobSpec.as_document()``; the
agent parses the spec of a leased job with the same function and the same ``LIMITS``, and
hashes ``as_document()`` into the job digest. A spec one side accepts and the other refuses
cannot exist, and the digest covers exactly what the executor runs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from realms.text import check_text, is_utf8_text
from realms.wire.digest import canonical_json, document_digest
from realms.wire.errors import JobIdentityField, JobInvalidSpec


@dataclass(frozen=True, slots=True)
class SpecLimits:
    """Every size and range of the wire contract. Both sides read ``LIMITS`` at each parse."""

    max_argv: int = 256
    max_arg_chars: int = 4096
    # Why: the sudo executor passes argv on one command line; the kernel's limit is near 128 KiB.
    max_argv_bytes: int = 128 * 1024
    max_env: int = 64
    max_env_name_chars: int = 128
    max_env_value_chars: int = 4096
    max_cwd_chars: int = 4096
    default_timeout: int = 3600
    max_timeout: int = 30 * 86400
    max_spec_bytes: int = 256 * 1024
    max_tail_chars: int = 64 * 1024
    max_trace_steps: int = 32
    max_trace_name_chars: int = 128
    max_trace_detail_chars: int = 4096
    max_reason_chars: int = 4096
    max_account_chars: int = 256
    max_code_chars: int = 64


LIMITS = SpecLimits()

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
JOB_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
AUTHGROUP = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
# The remote-job fields: a [remote_hosts.<name>] of the agent, a key of its credential store
# (never the secret) and, on a remote host only, a user to sudo to after login.
REMOTE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
SUDO_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
REMOTE_FIELDS = ("remote_host", "credential", "sudo_user")
REMOTE_FIELD_SET = frozenset(REMOTE_FIELDS)
SPEC_FIELDS = frozenset({"argv", "env", "cwd", "timeout", "authgroup", *REMOTE_FIELDS})

# Why: identity comes only from the caller's verified token (or credentials checked against a
# registry). A document that tries to name an owner, groups, lifetimes, a run-as account or a
# token is refused outright (mass assignment), never silently dropped and never applied.
IDENTITY_FIELDS = frozenset(
    {
        "owner",
        "submitter",
        "access_id",
        "sub",
        "groups",
        "exp",
        "iat",
        "nbf",
        "run_as",
        "account",
        "user",
        "token",
        "job_token",
        "iss",
        "realm",
        "aud",
        "jti",
    }
)


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What to run, with which additions to the environment, where, and for how long."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: str | None
    timeout: int
    authgroup: str | None
    remote_host: str | None = None
    credential: str | None = None
    sudo_user: str | None = None
    # ``canonical_json(as_document())``, set by ``parse_spec`` (which encodes it for the size
    # limit anyway); not an init field, so ``dataclasses.replace`` never carries a stale copy.
    canonical: bytes = field(default=b"", init=False, compare=False, repr=False)

    def canonical_bytes(self) -> bytes:
        """The canonical JSON of ``as_document()``: what the job digest covers."""
        return self.canonical or canonical_json(self.as_document())

    def digest(self, job_id: str, node_id: str, job_type: str) -> str:
        """``realms.wire.digest.job_digest`` of this spec, from its canonical bytes."""
        return document_digest(job_id, node_id, job_type, self.canonical_bytes())

    def as_document(self) -> dict[str, Any]:
        """The normalized spec, ``env`` sorted: what the job digest covers.

        The five base members are always present; a remote-job field only when set, so the
        digest of a local job is the same as before these fields existed.
        """
        document: dict[str, Any] = {
            "argv": list(self.argv),
            "env": dict(sorted(self.env.items())),
            "cwd": self.cwd,
            "timeout": self.timeout,
            "authgroup": self.authgroup,
        }
        for name in REMOTE_FIELDS:
            value = getattr(self, name)
            if value is not None:
                document[name] = value
        return document


def invalid(message: str, field: str) -> JobInvalidSpec:
    return JobInvalidSpec(message, field=field)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def text(value: Any, field: str, max_chars: int, *, allow_empty: bool = True) -> str:
    """A string of at most ``max_chars`` characters without NUL (C strings end at NUL)."""
    if not isinstance(value, str):
        raise invalid(f"{field}: must be a string", field)
    if len(value) > max_chars:
        raise invalid(f"{field}: longer than {max_chars} characters", field)
    if not allow_empty and not value:
        raise invalid(f"{field}: must not be empty", field)
    if "\x00" in value:
        raise invalid(f"{field}: contains a NUL character", field)
    # Why: an unpaired surrogate cannot be encoded for argv, the environment or the journal.
    return check_text(value, field, lambda message: invalid(message, field))


def is_text(value: Any, max_chars: int) -> bool:
    """True if ``text`` would accept ``value`` (empty allowed): the check without building a field name."""
    return type(value) is str and len(value) <= max_chars and "\x00" not in value and is_utf8_text(value)


def refuse_identity_fields(document: Mapping[str, Any], where: str) -> None:
    """``job.identity_field`` for the first identity member of ``document``."""
    if IDENTITY_FIELDS.isdisjoint(document):
        return
    found = sorted(IDENTITY_FIELDS & set(document))
    if found:
        raise JobIdentityField(
            f"{where}: identity field {found[0]!r} is not accepted; the job runs as the caller "
            "(or as the credentials given for the node's realm)",
            field=found[0],
        )


def _argv(raw: Any) -> tuple[str, ...]:
    limits = LIMITS
    if not isinstance(raw, list) or not raw:
        raise invalid("spec.argv: must be a non-empty list of strings", "spec.argv")
    if len(raw) > limits.max_argv:
        raise invalid(f"spec.argv: more than {limits.max_argv} items", "spec.argv")
    for i, item in enumerate(raw):
        if not is_text(item, limits.max_arg_chars):
            text(item, f"spec.argv[{i}]", limits.max_arg_chars)  # raises, naming the item
    argv = tuple(raw)
    # Why: the sudo executor runs `env -i NAME=VALUE... ARGV`; a program name containing "="
    # would be read by env(1) as one more assignment instead of the command.
    if not argv[0] or "=" in argv[0]:
        raise invalid("spec.argv[0]: must name a program (without '=')", "spec.argv")
    # A character is at most 4 bytes of UTF-8: only a long argv needs encoding to be measured.
    chars = sum(map(len, argv))
    if chars * 4 > limits.max_argv_bytes and (
        sum(len(arg.encode("utf-8", "surrogatepass")) for arg in argv) > limits.max_argv_bytes
    ):
        raise invalid(f"spec.argv: longer than {limits.max_argv_bytes} bytes in all", "spec.argv")
    return argv


def _env(raw: Any) -> dict[str, str]:
    limits = LIMITS
    if not isinstance(raw, dict):
        raise invalid("spec.env: must be an object of strings", "spec.env")
    if not raw:
        return {}
    if len(raw) > limits.max_env:
        raise invalid(f"spec.env: more than {limits.max_env} variables", "spec.env")
    for name, value in raw.items():
        # Why: only shell-safe names; "BASH_FUNC_x%%" or "A=B" could make a shell import a function.
        if not isinstance(name, str) or len(name) > limits.max_env_name_chars or not ENV_NAME.fullmatch(name):
            raise invalid(f"spec.env: bad variable name {str(name)[:64]!r}", "spec.env")
        if not is_text(value, limits.max_env_value_chars):
            text(value, f"spec.env.{name}", limits.max_env_value_chars)  # raises, naming the variable
    return dict(sorted(raw.items()))


def _remote_name(value: Any, name: str) -> str | None:
    """An optional host, credential key or user name: never an option (no leading '-')."""
    if value is None:
        return None
    pattern = SUDO_USER if name == "sudo_user" else REMOTE_NAME
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise invalid(f"spec.{name}: must match {pattern.pattern}", f"spec.{name}")
    return value


def parse_spec(raw: Any) -> JobSpec:
    """Validate a job spec and fill in its defaults (``env`` {}, ``cwd``/``authgroup`` null, ``timeout``)."""
    limits = LIMITS
    if not isinstance(raw, dict):
        raise invalid("spec: must be an object", "spec")
    refuse_identity_fields(raw, "spec")
    if not SPEC_FIELDS.issuperset(raw):
        unknown = sorted(set(raw) - SPEC_FIELDS)
        raise invalid(f"spec.{unknown[0]}: unknown field", f"spec.{unknown[0]}")
    argv = _argv(raw.get("argv"))
    env = _env(raw.get("env", {}))
    cwd = raw.get("cwd")
    if cwd is not None:
        text(cwd, "spec.cwd", limits.max_cwd_chars, allow_empty=False)
        if not cwd.startswith("/"):
            raise invalid("spec.cwd: must be an absolute path", "spec.cwd")
    timeout = raw.get("timeout", limits.default_timeout)
    if not is_int(timeout) or not 1 <= timeout <= limits.max_timeout:
        raise invalid(f"spec.timeout: must be whole seconds from 1 to {limits.max_timeout}", "spec.timeout")
    authgroup = raw.get("authgroup")
    if authgroup is not None and (not isinstance(authgroup, str) or not AUTHGROUP.fullmatch(authgroup)):
        raise invalid("spec.authgroup: must be an authorization group name", "spec.authgroup")
    # The document as_document() builds, without its second sort of env: canonical JSON sorts keys.
    document: dict[str, Any] = {"argv": list(argv), "env": env, "cwd": cwd, "timeout": timeout, "authgroup": authgroup}
    if REMOTE_FIELD_SET.isdisjoint(raw):
        spec = JobSpec(argv, env, cwd, timeout, authgroup)
    else:
        remote = {name: _remote_name(raw.get(name), name) for name in REMOTE_FIELDS}
        if remote["sudo_user"] is not None and remote["remote_host"] is None:
            raise invalid("spec.sudo_user: needs spec.remote_host (sudo after an SSH login)", "spec.sudo_user")
        spec = JobSpec(argv, env, cwd, timeout, authgroup, **remote)
        document = spec.as_document()
    canonical = canonical_json(document)
    if len(canonical) > limits.max_spec_bytes:
        raise invalid(f"spec: larger than {limits.max_spec_bytes} bytes", "spec")
    object.__setattr__(spec, "canonical", canonical)
    return spec
