"""Job submission: validate, decide the identity, mint the ``job+jwt``, and write the job row
with its encrypted token, its idempotency record and its node's wake-up, all or nothing (on
PostgreSQL one statement, on SQLite one transaction).

The token's claims come from ``realms.wire.claims.job_token_claims``: aud is the node id, nbf
the job's not-before, exp its deadline capped by the realm's ``job_token_max_ttl``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Executable, String, Table, bindparam, exists, insert, select
from sqlalchemy.exc import IntegrityError

from realms.errors import ConfigError, LoginFailed
from realms.identity.access_id import NODE_ID
from realms.tokens import JOB_TOKEN
from realms.tokens.errors import TokenRevoked
from realms.wire.claims import job_token_claims, new_jti
from realms.wire.digest import canonical_json, job_digest
from sts.jobs import wakeup
from sts.jobs.errors import (
    CredentialsRejected,
    JobIdempotencyConflict,
    JobInvalidSpec,
    SubmitRealmUntrusted,
)
from sts.jobs.models import Job, JobIdempotency
from sts.jobs.sealed_credentials import seal_remote_credentials
from sts.jobs.spec import Credentials, Submission
from sts.jobs.states import JobState
from sts.nodes.errors import NodeUnknown
from sts.nodes.models import Node
from sts.oauth.models import RevokedToken
from sts.services import Services

IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")


@dataclass(frozen=True, slots=True)
class Submitter:
    """The verified caller of ``POST /api/v1/jobs`` (from its ``at+jwt``, never from the body)."""

    access_id: str
    realm: str
    groups: tuple[str, ...]
    username: str | None = None


@dataclass(frozen=True, slots=True)
class NodeSnapshot:
    id: str
    realm: str
    authgroups: tuple[str, ...]
    trusted_realms: tuple[str, ...]
    public_jwk: dict[str, Any] | None = None


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


def _replay(env: Services, submitter: Submitter, key: str, digest: str) -> Job | None:
    with env.session() as session:
        row = session.get(JobIdempotency, (submitter.access_id, key))
        if row is None:
            return None
        if row.request_digest != digest:
            raise JobIdempotencyConflict(
                f"Idempotency-Key {key!r} of {submitter.access_id} was used with a different request; "
                "use a new key for a new job",
                key=key,
            )
        return session.get(Job, row.job_id)


def _identity(
    env: Services, submitter: Submitter, node: NodeSnapshot, submission: Submission, address: str
) -> TokenIdentity:
    if submission.credentials is not None:
        return _authenticate(env, node, submission.credentials, address)
    # Why: fail fast when the node is known to refuse the caller's realm; the agent still decides.
    if submitter.realm != node.realm and submitter.realm not in node.trusted_realms:
        raise SubmitRealmUntrusted(
            f"node {node.id} (realm {node.realm}) does not trust realm {submitter.realm}: either add "
            f"{submitter.realm} to the node's trusted realms and import {submitter.access_id} into its "
            f"authorization table, or submit with credentials for realm {node.realm}",
            realm=submitter.realm,
            node=node.id,
        )
    return TokenIdentity(submitter.realm, submitter.access_id, tuple(sorted(submitter.groups)), submitter.username)


def _authenticate(env: Services, node: NodeSnapshot, credentials: Credentials, address: str) -> TokenIdentity:
    if node.realm not in env.registries:
        raise ConfigError(f"node {node.id} is in realm {node.realm}, which this STS does not serve", realm=node.realm)
    try:
        # Why: the same login as the password grant, behind the same throttle, so submitting a
        # job is not a way around the login lock.
        principal = env.login.login(node.realm, credentials.username, credentials.password, address)
    except LoginFailed:
        raise CredentialsRejected(f"invalid username or password for realm {node.realm}", realm=node.realm) from None
    return TokenIdentity(
        node.realm,
        str(principal.access_id),
        tuple(sorted(str(group) for group in principal.groups)),
        principal.username,
    )


def _times(env: Services, submission: Submission, realm: str, now: int) -> tuple[int, int]:
    default_ttl = env.config.jobs.default_job_ttl
    realm_config = env.config.realms.get(realm)
    max_ttl = realm_config.token.job_token_max_ttl if realm_config is not None else default_ttl
    not_before = submission.not_before if submission.not_before is not None else now
    deadline = submission.deadline if submission.deadline is not None else now + min(default_ttl, max_ttl)
    if deadline <= now:
        raise JobInvalidSpec("deadline: is in the past", field="deadline")
    # Why: the token cannot outlive the realm's policy; the job expires with its token.
    deadline = min(deadline, now + max_ttl)
    if not_before >= deadline:
        raise JobInvalidSpec(
            f"not_before: must be before the deadline ({deadline}); realm {realm} job tokens live at most {max_ttl} s",
            field="not_before",
        )
    return not_before, deadline


_NODES: Table = cast(Table, Node.__table__)
_NODE_COLUMNS = (_NODES.c.id, _NODES.c.realm, _NODES.c.authgroups, _NODES.c.trusted_realms, _NODES.c.public_jwk)
JOBS: Table = cast(Table, Job.__table__)
_IDEMPOTENCY: Table = cast(Table, JobIdempotency.__table__)
_INSERT_JOB = insert(JOBS)
_INSERT_IDEMPOTENCY = insert(_IDEMPOTENCY)
_IDEMPOTENCY_COLUMNS = ("submitter", "key", "request_digest", "job_id", "created_at")


_REVOKED = exists().where(RevokedToken.__table__.c.jti == bindparam("b_jti", type_=String))
# Built once: each submit only binds the node id (and the caller's jti).
_READ_NODE = select(*_NODE_COLUMNS).where(_NODES.c.id == bindparam("b_node", type_=String))
_READ_NODE_CHECKED = select(*_NODE_COLUMNS, _REVOKED.label("revoked")).where(
    _NODES.c.id == bindparam("b_node", type_=String)
)
_READ_REVOKED = select(_REVOKED)


def _read_node(conn: Connection, node_id: str, submitter: Submitter, unchecked_jti: str | None) -> NodeSnapshot:
    """The target node, and (``unchecked_jti``) the caller's revocation check, in one statement."""
    values = {"b_node": node_id, "b_jti": (unchecked_jti or "")[:128]}
    row = None
    if NODE_ID.fullmatch(node_id) is not None:
        row = conn.execute(_READ_NODE if unchecked_jti is None else _READ_NODE_CHECKED, values).first()
    if unchecked_jti is not None:
        revoked = row.revoked if row is not None else conn.execute(_READ_REVOKED, values).scalar()
        # Why: the caller's token is checked against the revocation list right before the job
        # is written, before anything else is said about the request.
        if revoked:
            raise TokenRevoked(f"token {unchecked_jti[:64]} was revoked", realm=submitter.realm)
    if row is None:
        raise NodeUnknown(f"node {node_id} is not registered", node=node_id)
    return NodeSnapshot(row.id, row.realm, tuple(row.authgroups), tuple(row.trusted_realms), dict(row.public_jwk))


def _insert_with_notify(with_key: bool) -> Executable:
    """PostgreSQL: the job, its idempotency record (``with_key``) and the wake-up of its node's
    agents in ONE statement, which commits on its own: all of it or nothing, and the
    notification is delivered at that commit (never for a job that was not written)."""
    job = insert(JOBS).values({name: bindparam(name, type_=JOBS.c[name].type) for name in _JOB_VALUES})
    written = job.returning(JOBS.c.id, JOBS.c.node_id, JOBS.c.submitter, JOBS.c.created_at).cte("job")
    statement = select(wakeup.notify_expression(written.c.node_id)).select_from(written)
    if with_key:
        record = select(
            written.c.submitter,
            bindparam("idempotency_key", type_=String),
            bindparam("request_digest", type_=String),
            written.c.id,
            written.c.created_at,
        )
        statement = statement.add_cte(insert(_IDEMPOTENCY).from_select(_IDEMPOTENCY_COLUMNS, record).cte("idempotency"))
    return statement


_JOB_VALUES = (
    "id",
    "submitter",
    "submitter_realm",
    "subject",
    "realm",
    "node_id",
    "type",
    "spec",
    "job_digest",
    "not_before",
    "deadline",
    "state",
    "attempts",
    "created_at",
    "updated_at",
    "token_jti",
    "token_exp",
    "sealed_credentials",
    "token_ciphertext",
)
_INSERT_NOTIFYING = {False: _insert_with_notify(False), True: _insert_with_notify(True)}


def _check_authgroup(submission: Submission, node: NodeSnapshot) -> None:
    authgroup = submission.spec.get("authgroup")
    if authgroup is not None and authgroup not in node.authgroups:
        raise JobInvalidSpec(
            f"spec.authgroup: {authgroup!r} is not an authorization group of node {node.id}",
            field="spec.authgroup",
            node=node.id,
        )


def _write(
    env: Services,
    conn: Connection,
    submitter: Submitter,
    node: NodeSnapshot,
    identity: TokenIdentity,
    submission: Submission,
    key: str | None,
) -> Job:
    """Mint the job token and write the job (and its idempotency record) on ``conn``: one
    statement with the wake-up on PostgreSQL, the INSERTs of a transaction on SQLite."""
    spec, node_id = submission.spec, node.id
    now = env.now()
    not_before, deadline = _times(env, submission, identity.realm, now)
    job_id = str(uuid.uuid4())
    digest = job_digest(job_id, node_id, submission.type, spec)
    jti = new_jti()
    claims = job_token_claims(
        issuer=env.config.issuer(identity.realm),
        subject=identity.subject,
        node_id=node_id,
        realm=identity.realm,
        groups=identity.groups,
        job_id=job_id,
        job_digest=digest,
        issued_at=now,
        not_before=not_before,
        expires_at=deadline,
        jti=jti,
        username=identity.username,
    )
    sealed = seal_remote_credentials(submission.remote_credentials, node.public_jwk, node.id, job_id)
    stamp = env.clock()
    token = env.keys.sign(identity.realm, claims, JOB_TOKEN.typ)
    values: dict[str, Any] = {
        "id": job_id,
        "submitter": submitter.access_id,
        "submitter_realm": submitter.realm,
        "subject": identity.subject,
        "realm": identity.realm,
        "node_id": node_id,
        "type": submission.type,
        "spec": canonical_json(spec).decode("utf-8"),
        "job_digest": digest,
        "not_before": not_before,
        "deadline": deadline,
        "state": JobState.QUEUED.value,
        "attempts": 0,
        "created_at": stamp,
        "updated_at": stamp,
        "token_jti": jti,
        "token_exp": deadline,
        "sealed_credentials": sealed,
        "token_ciphertext": env.master_key.encrypt(token.encode("ascii"), job_id.encode("ascii")),
    }
    if conn.dialect.name == "postgresql":
        conn.execute(
            _INSERT_NOTIFYING[key is not None],
            {**values, "idempotency_key": key, "request_digest": submission.request_digest},
        )
    else:
        # Core INSERTs (no unit of work); the caller wakes this process's waiters after the commit.
        conn.execute(_INSERT_JOB, values)
        if key is not None:
            idempotency = (submitter.access_id, key, submission.request_digest, job_id, stamp)
            conn.execute(_INSERT_IDEMPOTENCY, dict(zip(_IDEMPOTENCY_COLUMNS, idempotency, strict=True)))
    # The Job returned is a detached copy, for the answer.
    return Job(**values)


@contextmanager
def _reading(env: Services) -> Iterator[Connection]:
    """For a read alone: one autocommit statement on PostgreSQL, a deferred transaction on SQLite
    (no write lock taken)."""
    if env.db.is_sqlite:
        with env.session() as session:
            yield session.connection()
    else:
        with env.statements() as conn:
            yield conn


def submit(
    env: Services,
    submitter: Submitter,
    submission: Submission,
    idempotency_key: str | None = None,
    address: str = "unknown",
    unchecked_jti: str | None = None,
) -> tuple[Job, bool]:
    """Create a job; returns ``(job, created)``. ``created`` is False for an idempotent replay.
    ``address`` is the client's address, for the login throttle when credentials are sent.

    ``unchecked_jti``: the caller's access-token jti, not yet checked against the revocation list.
    Without credentials and idempotency key, that check rides on the node read, right before
    the write (PostgreSQL: two statements, no BEGIN/COMMIT; SQLite: one transaction); otherwise
    the check comes first, on its own."""
    key = check_idempotency_key(idempotency_key)
    if unchecked_jti is not None and (key is not None or submission.credentials is not None):
        # Why: a replay answers from stored rows and credentials mean a directory login: the
        # caller's revocation is checked before either, as for any other request.
        with _reading(env) as conn:
            _read_node(conn, submission.node, submitter, unchecked_jti)
        unchecked_jti = None
    if key is not None:
        existing = _replay(env, submitter, key, submission.request_digest)
        if existing is not None:
            return existing, False
    try:
        if submission.credentials is None:
            # PostgreSQL: two statements, each its own round trip and the second its own commit.
            # SQLite: one BEGIN IMMEDIATE transaction (it reads, then writes, and a deferred one
            # cannot upgrade while a lease holds the write lock: SQLITE_BUSY at once, no wait).
            with env.statements() as conn:
                node = _read_node(conn, submission.node, submitter, unchecked_jti)
                _check_authgroup(submission, node)
                identity = _identity(env, submitter, node, submission, address)
                job = _write(env, conn, submitter, node, identity, submission, key)
        else:
            with _reading(env) as conn:
                node = _read_node(conn, submission.node, submitter, None)
            _check_authgroup(submission, node)
            # Outside any transaction: a directory round trip must never hold a database lock.
            identity = _identity(env, submitter, node, submission, address)
            # One statement or transaction: the job, its encrypted token and its idempotency record, or nothing.
            with env.statements() as conn:
                job = _write(env, conn, submitter, node, identity, submission, key)
    except IntegrityError:
        if key is None:
            raise
        replay = _replay(env, submitter, key, submission.request_digest)  # a concurrent twin won
        if replay is None:
            raise
        return replay, False
    if env.db.is_sqlite:
        wakeup.wake_local(job.node_id)  # committed now; PostgreSQL's INSERT notified every process
    # No log line here: the view's audit record job.submitted names the same job, node, subject and realm.
    env.notify_submitted()
    return job, True
