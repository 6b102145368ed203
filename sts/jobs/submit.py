"""Job submission (issue 5, "Submit"): validate, decide the identity, mint the ``job+jwt``,
and write the job row with its encrypted token in one transaction.

The token's claims follow design.md "Tokens": iss, sub, groups, realm, aud = node id, job_id,
job_digest, nbf = not-before, exp = deadline capped by the realm's ``job_token_max_ttl``, jti, iat.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError

from realms.errors import ConfigError
from realms.wire.digest import canonical_json, job_digest
from sts.errors import NodeUnknown
from sts.jobs.env import JobEnv, Submitter
from sts.jobs.errors import (
    CredentialsRejected,
    JobIdempotencyConflict,
    JobInvalidSpec,
    SubmitRealmUntrusted,
)
from sts.jobs.models import Job, JobIdempotency
from sts.jobs.spec import Credentials, Submission
from sts.jobs.states import JobState

log = logging.getLogger(__name__)
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")
JOB_TOKEN_TYP = "job+jwt"  # noqa: S105 - a JOSE typ, not a secret


@dataclass(frozen=True, slots=True)
class NodeSnapshot:
    id: str
    realm: str
    authgroups: tuple[str, ...]
    trusted_realms: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TokenIdentity:
    """Whom the job token vouches for, and the realm that signs it."""

    realm: str
    subject: str
    groups: tuple[str, ...]
    username: str | None


def check_idempotency_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not IDEMPOTENCY_KEY.fullmatch(key):
        raise JobInvalidSpec("Idempotency-Key: must be 1 to 255 visible ASCII characters", field="Idempotency-Key")
    return key


def _replay(env: JobEnv, submitter: Submitter, key: str, digest: str) -> Job | None:
    with env.session() as session:
        row = session.get(JobIdempotency, (submitter.access_id, key))
        if row is None:
            return None
        if row.request_digest != digest:
            raise JobIdempotencyConflict(
                f"Idempotency-Key {key!r} of {submitter.access_id} was used with a different request; "
                "use a new key for a new job", key=key,
            )
        return session.get(Job, row.job_id)


def _identity(env: JobEnv, submitter: Submitter, node: NodeSnapshot, submission: Submission,
              address: str) -> TokenIdentity:
    if submission.credentials is not None:
        return _authenticate(env, node, submission.credentials, address)
    # Why: fail fast when the node is known to refuse the caller's realm; the agent still decides.
    if submitter.realm != node.realm and submitter.realm not in node.trusted_realms:
        raise SubmitRealmUntrusted(
            f"node {node.id} (realm {node.realm}) does not trust realm {submitter.realm}: either add "
            f"{submitter.realm} to the node's trusted realms and import {submitter.access_id} into its "
            f"authorization table, or submit with credentials for realm {node.realm}",
            realm=submitter.realm, node=node.id,
        )
    return TokenIdentity(submitter.realm, submitter.access_id, tuple(sorted(submitter.groups)), submitter.username)


def _authenticate(env: JobEnv, node: NodeSnapshot, credentials: Credentials, address: str) -> TokenIdentity:
    registry = env.registries.get(node.realm)
    if registry is None:
        raise ConfigError(f"node {node.id} is in realm {node.realm}, which this STS does not serve", realm=node.realm)
    rejected = CredentialsRejected(f"invalid username or password for realm {node.realm}", realm=node.realm)
    throttle = env.throttle
    counters = throttle.counters(node.realm, credentials.username, address) if throttle else ()
    has_failures = False
    if throttle is not None:
        locked, has_failures = throttle.state(counters)
        if locked:
            # Why: job submission must not be a way around the login throttle; while locked
            # the directory is not asked and the answer is the wrong-password answer.
            log.warning("credentials for realm %s refused: login locked for a user or address", node.realm)
            raise rejected
    # Why: the password is passed straight to the registry bind and dropped; it is never
    # stored, logged, or part of any digest.
    principal = registry.authenticate(credentials.username, credentials.password)
    if principal is None:
        if throttle is not None:
            throttle.failed(counters)
        raise rejected
    if throttle is not None and has_failures:
        throttle.succeeded(node.realm, credentials.username)
    return TokenIdentity(node.realm, str(principal.access_id),
                         tuple(sorted(str(group) for group in principal.groups)), principal.username)


def _times(env: JobEnv, submission: Submission, realm: str, now: int) -> tuple[int, int]:
    realm_config = env.config.realms.get(realm)
    max_ttl = realm_config.token.job_token_max_ttl if realm_config is not None else env.default_job_ttl
    not_before = submission.not_before if submission.not_before is not None else now
    deadline = submission.deadline if submission.deadline is not None else now + min(env.default_job_ttl, max_ttl)
    if deadline <= now:
        raise JobInvalidSpec("deadline: is in the past", field="deadline")
    # Why: the token cannot outlive the realm's policy; the job expires with its token.
    deadline = min(deadline, now + max_ttl)
    if not_before >= deadline:
        raise JobInvalidSpec(
            f"not_before: must be before the deadline ({deadline}); realm {realm} job tokens live at most "
            f"{max_ttl} s", field="not_before",
        )
    return not_before, deadline


def submit(env: JobEnv, submitter: Submitter, submission: Submission,
           idempotency_key: str | None = None, address: str = "unknown") -> tuple[Job, bool]:
    """Create a job; returns ``(job, created)``. ``created`` is False for an idempotent replay.
    ``address`` is the client's address, for the login throttle when credentials are sent."""
    key = check_idempotency_key(idempotency_key)
    if key is not None:
        existing = _replay(env, submitter, key, submission.request_digest)
        if existing is not None:
            return existing, False
    with env.session() as session:
        found = env.get_node(session, submission.node)
        if found is None:
            raise NodeUnknown(f"node {submission.node} is not registered", node=submission.node)
        node = NodeSnapshot(found.id, found.realm, tuple(found.authgroups), tuple(found.trusted_realms))
    authgroup = submission.spec.get("authgroup")
    if authgroup is not None and authgroup not in node.authgroups:
        raise JobInvalidSpec(f"spec.authgroup: {authgroup!r} is not an authorization group of node {node.id}",
                             field="spec.authgroup", node=node.id)
    # Outside any transaction: a directory round trip must never hold a database lock.
    identity = _identity(env, submitter, node, submission, address)
    spec, node_id = submission.spec, node.id
    now = env.now()
    not_before, deadline = _times(env, submission, identity.realm, now)
    job_id = str(uuid.uuid4())
    digest = job_digest(job_id, node_id, submission.type, spec)
    jti = str(uuid.uuid4())
    claims: dict[str, Any] = {
        "iss": env.config.issuer(identity.realm), "sub": identity.subject, "aud": node_id,
        "realm": identity.realm, "groups": list(identity.groups), "job_id": job_id, "job_digest": digest,
        "iat": now, "nbf": not_before, "exp": deadline, "jti": jti,
    }
    if identity.username:
        claims["preferred_username"] = identity.username
    stamp = env.clock()
    job = Job(
        id=job_id, submitter=submitter.access_id, submitter_realm=submitter.realm, subject=identity.subject,
        realm=identity.realm, node_id=node_id, type=submission.type, spec=canonical_json(spec).decode("utf-8"),
        job_digest=digest, not_before=not_before, deadline=deadline, state=JobState.QUEUED.value, attempts=0,
        created_at=stamp, updated_at=stamp, token_jti=jti, token_exp=deadline,
    )
    try:
        # One transaction: the job, its encrypted token and its idempotency record, or nothing.
        with env.session() as session:
            # The signing key's publication bump commits with the job, or not at all.
            token = env.signer.sign(identity.realm, claims, JOB_TOKEN_TYP, session=session)
            job.token_ciphertext = env.cipher.encrypt(token.encode("ascii"), job_id.encode("ascii"))
            session.add(job)
            if key is not None:
                session.flush()
                session.add(JobIdempotency(submitter=submitter.access_id, key=key,
                                           request_digest=submission.request_digest, job_id=job_id,
                                           created_at=stamp))
    except IntegrityError:
        if key is None:
            raise
        replay = _replay(env, submitter, key, submission.request_digest)  # a concurrent twin won
        if replay is None:
            raise
        return replay, False
    log.info("job %s submitted by %s for node %s as %s (realm %s)", job_id, submitter.access_id, node_id,
             identity.subject, identity.realm)
    env.notify_submitted()
    return job, True
