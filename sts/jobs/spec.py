"""The body of ``POST /api/v1/jobs``: node, type, spec, times and optional credentials.

The spec itself is the wire contract's (``realms.wire.spec.parse_spec``, the same parser and
limits the agent applies); the normalized spec is exactly what the agent receives and hashes
with ``realms.wire.digest.job_digest``, so defaults are filled in before the digest is taken.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from realms.identity.access_id import NODE_ID
from realms.wire.digest import canonical_json
from realms.wire.spec import JOB_TYPE, invalid, is_int, parse_spec, refuse_identity_fields, text
from realms.wire.spec import SUDO_USER as REMOTE_USER

SUBMIT_FIELDS = frozenset({"node", "type", "spec", "not_before", "deadline", "credentials", "remote_credentials"})


@dataclass(frozen=True, slots=True)
class Credentials:
    """A username and password for the node's realm. Used once; never stored or logged."""

    username: str
    password: str

    def __repr__(self) -> str:
        # Why: keep the password out of any repr that reaches a log or a traceback.
        return f"Credentials(username={self.username!r}, password=<hidden>)"


@dataclass(frozen=True, slots=True)
class RemoteCredentials:
    """An operating-system user and password for the job's remote host. Sealed to the node's key
    at once; never stored in the clear and never logged."""

    user: str
    password: str

    def __repr__(self) -> str:
        # Why: keep the password out of any repr that reaches a log or a traceback.
        return f"RemoteCredentials(user={self.user!r}, password=<hidden>)"


@dataclass(frozen=True, slots=True)
class Submission:
    node: str
    type: str
    spec: dict[str, Any]
    not_before: int | None
    deadline: int | None
    credentials: Credentials | None
    request_digest: str  # for Idempotency-Key comparison; excludes the password
    remote_credentials: RemoteCredentials | None = None


def epoch_seconds(value: Any, field: str) -> int:
    """An epoch integer, or an RFC 3339 date-time with a zone offset."""
    if is_int(value):
        if not 0 <= value <= 253402300799:
            raise invalid(f"{field}: out of range", field)
        return int(value)
    if isinstance(value, str) and len(value) <= 64:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None:
            return int(moment.timestamp())
    raise invalid(f"{field}: must be epoch seconds or an RFC 3339 date-time with a zone", field)


def parse_submission(body: Any) -> Submission:
    """Validate a ``POST /api/v1/jobs`` body. Identity fields give ``job.identity_field`` first."""
    if not isinstance(body, dict):
        raise invalid("body: must be a JSON object", "body")
    refuse_identity_fields(body, "body")
    unknown = sorted(set(body) - SUBMIT_FIELDS)
    if unknown:
        raise invalid(f"{unknown[0]}: unknown field", unknown[0])
    node = body.get("node")
    if not isinstance(node, str) or not NODE_ID.fullmatch(node):
        raise invalid("node: must be a node id", "node")
    job_type = body.get("type")
    if not isinstance(job_type, str) or not JOB_TYPE.fullmatch(job_type):
        raise invalid("type: must match [A-Za-z0-9][A-Za-z0-9._-]{0,63}", "type")
    spec = parse_spec(body.get("spec")).as_document()
    not_before = None if body.get("not_before") is None else epoch_seconds(body["not_before"], "not_before")
    deadline = None if body.get("deadline") is None else epoch_seconds(body["deadline"], "deadline")
    credentials = None
    raw_credentials = body.get("credentials")
    if raw_credentials is not None:
        if not isinstance(raw_credentials, dict) or set(raw_credentials) != {"username", "password"}:
            raise invalid("credentials: must be {username, password}", "credentials")
        credentials = Credentials(
            text(raw_credentials["username"], "credentials.username", 256, allow_empty=False),
            text(raw_credentials["password"], "credentials.password", 1024, allow_empty=False),
        )
    remote_credentials = _remote_credentials(body.get("remote_credentials"), spec)
    # Why: the idempotency digest is stored; hashing the password into it would keep an
    # unsalted, guessable hash of the password in the database. Only the username counts.
    digest_source = {
        "node": node,
        "type": job_type,
        "spec": spec,
        "not_before": not_before,
        "deadline": deadline,
        "credentials_username": credentials.username if credentials else None,
        "remote_user": remote_credentials.user if remote_credentials else None,
    }
    return Submission(
        node,
        job_type,
        spec,
        not_before,
        deadline,
        credentials,
        hashlib.sha256(canonical_json(digest_source)).hexdigest(),
        remote_credentials,
    )


def _remote_credentials(raw: Any, spec: dict[str, Any]) -> RemoteCredentials | None:
    """``remote_credentials``: {user, password} for the spec's remote host, instead of a credential key."""
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) != {"user", "password"}:
        raise invalid("remote_credentials: must be {user, password}", "remote_credentials")
    if spec.get("remote_host") is None:
        raise invalid("remote_credentials: need spec.remote_host (they are for an SSH login)", "remote_credentials")
    if spec.get("credential") is not None:
        raise invalid("remote_credentials: give either these or spec.credential, not both", "remote_credentials")
    user = raw["user"]
    if not isinstance(user, str) or REMOTE_USER.fullmatch(user) is None:
        raise invalid(f"remote_credentials.user: must match {REMOTE_USER.pattern}", "remote_credentials.user")
    return RemoteCredentials(user, text(raw["password"], "remote_credentials.password", 1024, allow_empty=False))
