"""The whole agent decision, steps (a) to (f), with a trace of every step.

``NodeDecider.decide(job, token)`` never raises: every refusal (and any unexpected
error) becomes an ``AgentDecision`` with ``allowed=False``, a stable ``code``, a one-line
``reason`` and the trace. The same object feeds ``jobsts agent explain`` and the result
the agent reports to the STS.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass, field
from typing import Any

from agent_client.authorization import Decider, Principals, authorize, principals_of, required_role, scopes_for
from agent_client.config import AgentConfig, MappingConfig
from agent_client.credentials.access import check_credential_use, describe_grant
from agent_client.credentials.local_use import check_local_credential, describe_local
from agent_client.credentials.store import CredentialInfo, Secret
from agent_client.errors import AgentInternalError, TrustUnavailable
from agent_client.journal import StartedJournal
from agent_client.mapping import Account, groups_text, map_account
from agent_client.privileged_groups import MapPrivilegedGroup
from agent_client.remote.hosts import RemoteHost
from agent_client.remote.job import RemoteJob, remote_host_for, remote_job, remote_scope, submitted_credential
from agent_client.validation import check_binding, check_jti, leased_job
from authz_tables.errors import AuthzDenied
from authz_tables.roles import Role
from realms.errors import JobstsError
from realms.tokens.errors import RealmUntrusted
from realms.tokens.jws import parse_compact
from realms.tokens.profiles import JOB_TOKEN
from realms.tokens.verify import TrustResolver, VerifiedToken, verify
from realms.wire.documents import JobDocument, MalformedJob
from realms.wire.trace import STEP_NAMES, TraceStep

log = logging.getLogger(__name__)

# The decision's steps; (g), the execution, is added to the trace by the loop.
STEPS = {step: STEP_NAMES[step] for step in "abcdef"}


@dataclass(slots=True)
class AgentDecision:
    """The verdict on one job, and everything the executor and the report need."""

    allowed: bool = False
    code: str | None = None
    reason: str | None = None
    # Each step as recorded, (letter, verdict, detail); ``trace`` makes them ``TraceStep``s when
    # first read (most traces are read only when a result is reported, or never).
    steps: list[tuple[str, str, str | Callable[[], str]]] = field(default_factory=list)
    _trace: list[TraceStep] = field(default_factory=list, repr=False)
    job: JobDocument | None = None
    verified: VerifiedToken | None = None
    principals: Principals | None = None
    account: Account | None = None
    remote: RemoteJob | None = None  # set instead of ``account`` for a job on a remote host
    credential: CredentialInfo | None = None  # a local job's sudo password key (never the secret)

    @property
    def trace(self) -> list[TraceStep]:
        """The steps (a)-(f) recorded so far, in order."""
        built, steps = self._trace, self.steps
        if len(built) < len(steps):
            built.extend(TraceStep(step, STEPS[step], verdict, detail) for step, verdict, detail in steps[len(built) :])
        return built

    @property
    def jti(self) -> str | None:
        return None if self.verified is None else str(self.verified.claims["jti"])

    @property
    def exp(self) -> int | None:
        return None if self.verified is None else int(self.verified.claims["exp"])

    def explain(self) -> str:
        """One line per step, then the verdict (``jobsts agent explain``)."""
        lines = [f"({s.step}) {s.name:<22} {s.verdict:<4}  {s.detail}" for s in self.trace]
        if self.allowed and self.remote is not None:
            lines.append(f"verdict: run on remote host {self.remote.host.name} as {self.remote.account} over SSH")
        elif self.allowed:
            assert self.account is not None
            lines.append(f"verdict: run as {self.account.name} (uid {self.account.uid}) via {self.account.via}")
        else:
            lines.append(f"verdict: refused: {self.code}: {self.reason}")
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class NodePolicy:
    """The parts of the agent configuration a decision reads."""

    node_id: str
    realm: str
    trusted_realms: frozenset[str]
    authgroups: frozenset[str]
    job_types: Mapping[str, Role]
    mapping: MappingConfig
    leeway: int
    remote_hosts: Mapping[str, RemoteHost] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: AgentConfig) -> NodePolicy:
        return cls(
            config.node_id, config.realm, config.trusted_realms, config.authgroups, config.job_types,
            config.mapping, config.leeway, config.remote_hosts,
        )  # fmt: skip


class NodeDecider:
    """Steps (a)-(f) for one node: trust store, revocations, durable record, table and mapping."""

    def __init__(
        self,
        policy: NodePolicy,
        resolver: TrustResolver,
        table: Decider,
        *,
        revoked: Container[str] = frozenset(),
        journal: StartedJournal | None = None,
        credentials: Callable[[], Mapping[str, CredentialInfo]] | None = None,
    ) -> None:
        self.policy = policy
        self.resolver = resolver
        self.table = table
        self.revoked = revoked
        self.journal = journal
        # The credential store's keys, users and owners (never secrets), read at each decision
        # so a key added or removed while the agent runs counts at once.
        self.credentials = credentials or dict

    def _step(self, decision: AgentDecision, step: str, verdict: str, detail: str | Callable[[], str]) -> None:
        decision.steps.append((step, verdict, detail))

    def _refuse(self, decision: AgentDecision, step: str, error: JobstsError) -> AgentDecision:
        detail = f"{error.code}: {error.message}"
        groups = error.data.get("account_groups") or error.data.get("groups")
        if isinstance(error, MapPrivilegedGroup) and groups:
            # Why: the refusal depended on the groups the job would have run with; name them
            # all, so the admin sees what an allow would have granted.
            detail += f"; the job's groups would be: {', '.join(map(str, groups))}"
        self._step(decision, step, "fail", detail)
        for later in STEPS:
            if later > step:
                self._step(decision, later, "skip", "not reached")
        decision.allowed, decision.code, decision.reason = False, error.code, error.message
        log.info("job refused", extra={"code": error.code, "step": step, "node": self.policy.node_id})
        return decision

    def _issuer_verdict(self, token: str) -> tuple[bool, str]:
        """On a failed verification: was the issuer trusted? (only to tell steps a and b apart)."""
        try:
            issuer = parse_compact(token).claims.get("iss")
            trust = self.resolver.issuer_trust(issuer) if isinstance(issuer, str) else None
        except JobstsError:
            return False, "token could not be read"
        if trust is None:
            return False, f"issuer {str(issuer)[:120]!r} is not trusted"
        return True, f"issuer {issuer} is realm {trust.realm}"

    def decide(
        self,
        job: JobDocument | MalformedJob | Any,
        token: str,
        *,
        now: float | None = None,
        submitted: Secret | JobstsError | None = None,
    ) -> AgentDecision:
        """The whole decision (a)-(f); never raises. ``submitted``: a remote login opened from the lease."""
        decision = AgentDecision()
        try:
            return self._decide(decision, job, token, now, submitted)
        except Exception as exc:
            # Why: a decision must fail closed; an unexpected error refuses the job, never runs it.
            log.exception("unexpected error while deciding")
            error = AgentInternalError(f"unexpected {type(exc).__name__} while deciding on node {self.policy.node_id}")
            step = next((s for s in STEPS if s not in {t[0] for t in decision.steps}), "f")
            return self._refuse(decision, step, error)

    def _decide(
        self,
        decision: AgentDecision,
        job_data: Any,
        token: str,
        now: float | None,
        submitted: Secret | JobstsError | None,
    ) -> AgentDecision:
        policy = self.policy
        passed = decision.steps.append  # each step that passes; ``_refuse`` records a failure
        # (a) + (b): the shared verifier resolves trust from the issuer before any key is used.
        try:
            leased = leased_job(job_data)
            decision.job = leased
            verified = verify(token, JOB_TOKEN, self.resolver, audience=policy.node_id, leeway=policy.leeway, now=now)
        except (RealmUntrusted, TrustUnavailable) as exc:
            return self._refuse(decision, "a", exc)
        except JobstsError as exc:
            trusted, detail = self._issuer_verdict(token)
            if not trusted:
                return self._refuse(decision, "a", exc)
            passed(("a", "pass", detail))
            return self._refuse(decision, "b", exc)
        decision.verified = verified
        where = "own realm" if verified.realm == policy.realm else "trusted realm"
        passed(("a", "pass", lambda: f"issuer {verified.issuer} is realm {verified.realm} ({where})"))
        try:
            check_binding(verified, leased, policy.node_id)
            jti = check_jti(verified, self.revoked, self.journal)
        except JobstsError as exc:
            return self._refuse(decision, "b", exc)
        passed(
            (
                "b",
                "pass",
                lambda: f"job+jwt {jti[:36]} signed by key {verified.kid[:16]}, bound to job {leased.id}",
            )
        )

        principals = principals_of(verified, policy.realm, policy.trusted_realms)
        decision.principals = principals
        passed(("c", "pass", principals.describe))

        try:
            role = required_role(leased.type, policy.job_types, policy.node_id)
        except JobstsError as exc:
            return self._refuse(decision, "d", exc)
        passed(("d", "pass", lambda: f"job type {leased.type} requires {role}"))

        spec = leased.spec
        host: RemoteHost | None = None
        try:
            scopes = scopes_for(spec.authgroup, policy.authgroups, policy.node_id)
            if spec.remote_host is not None:
                # Why: the remote host is a scope of its own, so a table entry can allow a role
                # on one remote host only; an unknown host is refused before any table lookup.
                host = remote_host_for(spec.remote_host, policy.remote_hosts, policy.node_id)
                scopes = (*scopes, remote_scope(host))
            verdict = authorize(self.table, principals, role, scopes)
        except JobstsError as exc:
            return self._refuse(decision, "e", exc)
        if not verdict.allowed:
            message = f"node {policy.node_id}: {verdict.reason}"
            denied = AuthzDenied(message, principal=verdict.subject, role=role.value, scope=verdict.scope)
            return self._refuse(decision, "e", denied)
        passed(("e", "pass", verdict.reason))
        credential: CredentialInfo | None = None
        if spec.credential is not None:
            # Why: a stored secret is usable only by those the table grants it to, by name;
            # otherwise every authorized submitter could use every secret the agent holds.
            try:
                credential = check_credential_use(self.table, principals, role, spec.credential, self.credentials())
            except JobstsError as exc:
                return self._refuse(decision, "e", exc)
            passed(("e", "pass", describe_grant(credential, principals, role)))

        if submitted is not None:
            # Why: a login given at submit is for a remote host only, and never mixes with a key.
            try:
                credential = submitted_credential(submitted, host, credential)
            except JobstsError as exc:
                return self._refuse(decision, "f", exc)
        if host is not None:
            try:
                decision.remote = remote_job(host, credential, spec.sudo_user)
            except JobstsError as exc:
                return self._refuse(decision, "f", exc)
            passed(("f", "pass", decision.remote.describe()))
            decision.allowed = True
            return decision
        try:
            account = map_account(principals, policy.mapping, self.table, scopes)
            if credential is not None:
                decision.credential = check_local_credential(credential, account)
        except JobstsError as exc:
            return self._refuse(decision, "f", exc)
        decision.account = account
        local = f"; {describe_local(credential)}" if credential is not None else ""
        passed(("f", "pass", lambda: _account_detail(account) + local))
        decision.allowed = True
        return decision


def _account_detail(account: Account) -> str:
    """Step (f)'s detail: the account, and every group the job gets (the trace must show them)."""
    return f"{account.name} (uid {account.uid}, gid {account.gid}, groups {groups_text(account)}) via {account.via}"
