"""The agent's poll loop: lease (up to the free slots) → decide → record → claim → run → report.

Crash-safe ordering:

1. A refused job is reported as ``refused`` from the leased state, without a claim.
2. An allowed job's jti is written to the durable started record (fsync'd) BEFORE the claim
   (``/claims``, the batched ``/start``) and before anything runs. If the agent dies after that
   point, the job, leased again, is refused as ``token.replayed``; if it dies after the claim,
   the job ends ``lost``: a job token never runs twice, at the price of a job that may not run
   at all after a crash (fail closed).
3. Only the jobs the STS confirmed as started are run, each in its own executor child, at
   most ``max_jobs`` at once.
4. Every result goes to the durable outbox first and is delivered from there (batched, oldest
   first, with backoff), so an STS outage never turns a finished job into a forgotten result.
   In the poll loop a finished job's result rides on the next ``/leases`` call (one round trip
   fewer per batch); it goes to ``/results`` at once when the loop is waiting for work or has no
   free slot, and always with an STS that does not take results with a lease.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from agent_client.api.agent import AgentApi
from agent_client.api.auth import load_node_key
from agent_client.backoff import first_wait, jittered
from agent_client.config import AgentConfig
from agent_client.credentials.store import CredentialStore, Secret
from agent_client.decision import AgentDecision, NodeDecider, NodePolicy
from agent_client.errors import ExecUnavailable, TrustUnavailable
from agent_client.executors import EXECUTORS, ExecResult, executor_for, run_job
from agent_client.file_modes import require_safe
from agent_client.journal import StartedJournal
from agent_client.outbox import Outbox
from agent_client.remote.run import EXECUTOR_NAME, run_decided_remote_job
from agent_client.remote.submitted import open_submitted_login
from agent_client.trust_store import TrustStore
from authz_tables.store import AuthzTable
from realms.errors import JobstsError
from realms.sealing import OpeningKey
from realms.wire.documents import MAX_LEASE_WAIT, Claim, ItemOutcome, Lease, Result, tail
from realms.wire.trace import STEP_NAMES, TraceStep

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 20.0
REVOCATIONS_SECONDS = 30.0
REVOCATIONS_MAX_AGE = 300.0
MAX_BACKOFF = 60.0


class RevocationSet:
    """The STS's revocation list (jti → exp), refreshed at most every ``interval`` seconds.

    Membership fails closed: with a fetcher configured, a list not refreshed within
    ``max_age`` seconds raises ``trust.unavailable`` instead of answering "not revoked".
    """

    def __init__(
        self,
        fetch: Callable[[], dict[str, int]] | None,
        interval: float = REVOCATIONS_SECONDS,
        max_age: float = REVOCATIONS_MAX_AGE,
    ) -> None:
        self._fetch, self._interval, self._max_age = fetch, interval, max_age
        self._revoked: dict[str, int] = {}
        self._fetched_at = float("-inf")

    def __contains__(self, jti: object) -> bool:
        # Why: a revocation we could not learn about must not let a revoked job run.
        if self._fetch is not None and time.monotonic() - self._fetched_at > self._max_age:
            raise TrustUnavailable(
                f"the revocation list could not be refreshed for more than {self._max_age:.0f}s; refusing jobs"
            )
        return jti in self._revoked

    def add(self, jti: str, exp: int) -> None:
        self._revoked[jti] = exp

    def refresh(self, *, force: bool = False) -> None:
        if self._fetch is None or (not force and time.monotonic() - self._fetched_at < self._interval):
            return
        try:
            self._revoked.update(self._fetch())
            self._fetched_at = time.monotonic()
        except JobstsError as exc:
            log.warning("revocation list not refreshed: %s", exc.code)
        horizon = time.time() - 3600
        self._revoked = {jti: exp for jti, exp in self._revoked.items() if not exp or exp > horizon}


def refused_result(decision: AgentDecision) -> Result:
    """The result of a refusal: the code, the reason and the trace of steps (a) to (f)."""
    return Result(
        outcome="refused",
        exit_code=None,
        stdout_tail="",
        stderr_tail="",
        code=decision.code,
        reason=decision.reason,
        account=None,
        trace=tuple(decision.trace),
    )


def executed_result(decision: AgentDecision, result: ExecResult, executor: str) -> Result:
    """The result of a job that was started; step (g) is the execution itself."""
    if decision.remote is not None:
        name, via = decision.remote.account, decision.remote.describe()
    else:
        assert decision.account is not None
        name, via = decision.account.name, decision.account.via
    if result.code is not None:
        detail, verdict = f"{result.code}: {result.reason}", "fail"
    else:
        detail, verdict = f"ran as {name} via {executor}: exit {result.exit_code}", "pass"
    if result.dropped_env:
        detail += f"; dropped environment: {', '.join(result.dropped_env)}"
    return Result(
        outcome="succeeded" if result.succeeded else "failed",
        exit_code=result.exit_code,
        stdout_tail=tail(result.stdout_tail),
        stderr_tail=tail(result.stderr_tail),
        code=result.code,
        # Why: the account and how it was chosen (rule, equivalency or fallback) are always
        # reported, so a fallback account is never silent.
        reason=result.reason or f"ran as {name} ({via})",
        account=name,
        trace=(*decision.trace, TraceStep("g", STEP_NAMES["g"], verdict, detail)),
    )


@dataclass(slots=True)
class Prepared:
    """A leased job the decision allowed: recorded in the journal (``Agent.record``) before its claim."""

    lease: Lease
    decision: AgentDecision
    submitted: object


@dataclass(slots=True)
class Agent:
    """One node's agent: its STS client, its decision pipeline, its durable record and outbox."""

    config: AgentConfig
    client: AgentApi
    decider: NodeDecider
    journal: StartedJournal
    revocations: RevocationSet
    cancel: threading.Event
    outbox: Outbox
    credentials: CredentialStore | None = None
    node_key: OpeningKey | None = None  # opens a remote login the STS sealed to this node
    waits: bool = True  # the STS has GET /api/v1/agent/wait (False after an older STS's 404)
    carries_results: bool = True  # the STS takes results with /leases (False after an older STS ignored them)
    draw: Callable[[], float] = random.random  # the jitter of the retry backoff (``agent_client.backoff``)
    spread: Callable[[], float] = random.random  # the first wait's length (``agent_client.backoff.first_wait``)
    _gate: threading.Lock = field(default_factory=threading.Lock)
    _looping: bool = False  # the poll loop runs: it delivers the outbox with its next lease
    _waiting: bool = False  # the poll loop is waiting for work: results must not wait for it
    _scatter: bool = False  # the next wait is the first since the loop started or failed: spread it

    def close(self) -> None:
        self.client.close()
        self.journal.close()
        table = self.decider.table
        if isinstance(table, AuthzTable):
            table.close()

    def _report(self, job_id: str, result: Result) -> None:
        # Why: on disk first, so a result survives an STS outage (and an agent restart) and is
        # delivered later instead of the finished job ending as lost.
        self.outbox.put(job_id, result)
        with self._gate:
            # The loop checks the outbox under this gate before it waits, so a result put before
            # that check rides on its next lease, and one put after it is sent here.
            now = self._waiting or not (self._looping and self.carries_results)
        if now:
            self.outbox.flush(self.client.results)

    def _lease_reporting(self, free: int) -> list[Lease]:
        """Deliver the outbox's oldest batch with a lease of up to ``free`` jobs (one call)."""
        leased: list[Lease] = []

        def send(batch: list[tuple[str, Result]]) -> list[ItemOutcome]:
            found, outcomes = self.client.leases_reporting(free, batch)
            leased.extend(found)
            if outcomes is None:
                log.info("the STS does not take results with a lease; they go to /results")
                self.carries_results = False
                return self.client.results(batch)
            return outcomes

        self.outbox.deliver(send)
        return leased

    def decide(self, lease: Lease) -> Prepared | str:
        """Decide on one leased job; a refusal is reported (``"refused"``), an allowed job is
        returned not yet recorded: ``record`` must make it durable before it is claimed."""
        job_id = lease.job.id
        self.revocations.refresh()
        submitted = open_submitted_login(self.node_key, lease.sealed_credentials, job_id)
        decision = self.decider.decide(lease.job, lease.job_token, submitted=submitted)
        if not decision.allowed:
            log.info("job %s refused: %s", job_id, decision.code)
            self._report(job_id, refused_result(decision))
            return "refused"
        return Prepared(lease, decision, submitted)

    def record(self, allowed: list[Prepared]) -> list[Prepared]:
        """Record the jtis of allowed jobs in the journal in one commit (one sync for the batch);
        returns those recorded. A jti already recorded (or twice in the batch) is reported refused."""
        if not allowed:
            return []
        rows: list[tuple[str, str, int]] = []
        for item in allowed:
            decision = item.decision
            assert decision.job is not None and (decision.account is not None or decision.remote is not None)
            jti, exp = decision.jti, decision.exp
            assert jti is not None and exp is not None
            rows.append((jti, decision.job.id, exp))
        # Why: durable BEFORE the claim (/claims) and before running, so a crash or a second lease
        # of the same token can never make it run twice; the batch's commit returns only once
        # every row is on disk, so each job is as durable as when recorded alone.
        fresh = self.journal.record_many(rows)
        recorded = []
        for item, (jti, job_id, _), new in zip(allowed, rows, fresh, strict=True):
            if new:
                recorded.append(item)
                continue
            decision = item.decision
            decision.allowed, decision.code = False, "token.replayed"
            decision.reason = f"job token {jti[:64]} was already used to start a job"
            self._report(job_id, refused_result(decision))
        return recorded

    def prepare(self, lease: Lease) -> Prepared | str:
        """Decide on one leased job and record it if allowed (``decide`` then ``record``).
        Returns the prepared job, or the outcome reported (``refused``)."""
        found = self.decide(lease)
        if isinstance(found, str):
            return found
        return found if self.record([found]) else "refused"

    def claim(self, prepared: list[Prepared]) -> list[tuple[Prepared, int | None]]:
        """Start the recorded jobs in one call; returns those the STS started, with their lease end."""
        if not prepared:
            return []
        claims = [Claim(item.lease.job.id, getattr(item.lease.job, "attempt", None)) for item in prepared]
        outcomes = {outcome.job_id: outcome for outcome in self.client.claim(claims)}
        started = []
        for item in prepared:
            outcome = outcomes.get(item.lease.job.id)
            if outcome is None or outcome.code is not None:
                reason = outcome.message if outcome is not None else "no answer"
                log.warning("job %s not started: %s", item.lease.job.id, reason)
                continue
            started.append((item, outcome.lease_expires_at))
        return started

    def execute(self, prepared: Prepared, expires: int | None) -> str:
        """Run one claimed job in its own executor child and report its result (via the outbox)."""
        decision, submitted = prepared.decision, prepared.submitted
        assert decision.job is not None
        job_id = decision.job.id
        last_beat = time.monotonic()
        interval = HEARTBEAT_SECONDS
        if expires is not None:
            # Beat at least three times per lease period, so one lost heartbeat never loses the lease.
            interval = min(HEARTBEAT_SECONDS, max(1.0, (expires - time.time()) / 3))

        def heartbeat() -> None:
            nonlocal last_beat
            if time.monotonic() - last_beat >= interval:
                last_beat = time.monotonic()
                try:
                    self.client.heartbeat(job_id)
                except JobstsError as exc:
                    log.warning("heartbeat for job %s failed: %s", job_id, exc.code)

        spec, limits = decision.job.spec, self.config.limits
        if decision.remote is not None:
            log.info("job %s starting as %s via %s", job_id, decision.remote.account, EXECUTOR_NAME)
            login = submitted if isinstance(submitted, Secret) else None
            prepared.submitted = None  # the opened password lives no longer than the job
            result = run_decided_remote_job(
                decision.remote, spec, self.credentials, limits, self.cancel, heartbeat, submitted=login
            )
            del login, submitted
            executor_name = EXECUTOR_NAME
        else:
            assert decision.account is not None
            executor = executor_for(self.config.executor, decision.account)
            log.info("job %s starting as %s via %s", job_id, decision.account.name, executor.name)
            result = run_job(
                executor, decision.account, spec, limits, self.cancel, heartbeat,
                credential=decision.credential, store=self.credentials,
            )  # fmt: skip
            executor_name = executor.name
        report = executed_result(decision, result, executor_name)
        self._report(job_id, report)
        return report.outcome

    def handle(self, lease: Lease) -> str:
        """Decide on and run one leased job; returns the outcome reported (or ``lease_lost``)."""
        prepared = self.prepare(lease)
        if isinstance(prepared, str):
            return prepared
        started = self.claim([prepared])
        if not started:
            return "lease_lost"
        return self.execute(*started[0])

    def _lease(self, free: int) -> list[Lease]:
        """Up to ``free`` jobs. Wait for work on ``GET /api/v1/agent/wait``, which holds no thread
        at the STS, then lease at once; an STS without that route is long-polled on the lease.
        Results in the outbox ride on an immediate lease instead of waiting."""
        with self._gate:
            carry = self._looping and self.carries_results and self.outbox.due()
            self._waiting = not carry
        try:
            if carry:
                return self._lease_reporting(free)
            if self.waits:
                timeout = self.config.poll_wait
                if self._scatter:
                    # Agents that (re)connected together would otherwise re-wait together (see
                    # ``agent_client.backoff.first_wait``); from the second wait on, the full period.
                    self._scatter = False
                    timeout = first_wait(timeout, self.spread)
                work = self.client.wait(timeout)
                if work is not None:
                    return self.client.leases(free, 0) if work else []
                self.waits = False
            return self.client.leases(free, min(self.config.poll_wait, MAX_LEASE_WAIT))
        finally:
            with self._gate:
                self._waiting = False

    def run_once(self) -> str | None:
        """Lease at most one job and handle it; ``None`` when there was none."""
        if self.outbox.due():
            self.outbox.flush(self.client.results)
        leases = self._lease(1)
        if not leases:
            return None
        return self.handle(leases[0])

    def _fill_slots(
        self, free: int, pool: ThreadPoolExecutor, running: set[Future[str]], freed: threading.Event
    ) -> None:
        leases = self._lease(free)
        allowed: list[Prepared] = []
        for lease in leases:
            try:
                found = self.decide(lease)
            except JobstsError as exc:
                # Not recorded and not started: its lease expires and it is handed out again.
                log.warning("job %s left leased: %s: %s", lease.job.id, exc.code, exc.message)
                continue
            if isinstance(found, Prepared):
                allowed.append(found)
        # Group commit: the jobs of one lease (several slots freed together) share one sync.
        for item, expires in self.claim(self.record(allowed)):
            future = pool.submit(self._execute_logged, item, expires)
            future.add_done_callback(lambda _: freed.set())
            running.add(future)

    def _execute_logged(self, prepared: Prepared, expires: int | None) -> str:
        try:
            return self.execute(prepared, expires)
        except Exception:
            log.exception("job %s failed inside the agent; its lease will expire (lost)", prepared.lease.job.id)
            raise

    def run(self, *, once: bool = False) -> None:
        """Poll until cancelled (or one round with ``once``): up to ``max_jobs`` jobs at once, each
        in its own executor child; an unreachable STS is retried with backoff."""
        self.journal.prune()
        if once:
            self.run_once()
            return
        slots = self.config.max_jobs
        running: set[Future[str]] = set()
        freed = threading.Event()
        self._looping = True
        with ThreadPoolExecutor(max_workers=slots, thread_name_prefix="job") as pool:
            try:
                self._poll(slots, pool, running, freed)
            finally:
                # Jobs still running report straight to /results from now on; what waited for
                # a lease goes now (or stays in the outbox for the next start).
                with self._gate:
                    self._looping = False
                with contextlib.suppress(JobstsError):
                    self.outbox.flush(self.client.results)

    def _poll(self, slots: int, pool: ThreadPoolExecutor, running: set[Future[str]], freed: threading.Event) -> None:
        delay = 1.0
        self._scatter = True
        while not self.cancel.is_set():
            running = {future for future in running if not future.done()}
            try:
                # With a free slot the outbox rides on the next lease (``_lease``).
                if self.outbox.due() and (len(running) >= slots or not self.carries_results):
                    self.outbox.flush(self.client.results)
                if len(running) >= slots:
                    freed.wait(1.0)
                    freed.clear()
                    continue
                self._fill_slots(slots - len(running), pool, running, freed)
                delay = 1.0
            except JobstsError as exc:
                # Why: the loop must outlive one bad answer of the STS; it backs off and retries.
                pause = jittered(delay, self.draw)
                log.warning("%s: %s; retrying in %.1fs", exc.code, exc.message, pause)
                self._scatter = True
                self.cancel.wait(pause)
                delay = min(delay * 2, MAX_BACKOFF)


def open_agent(config: AgentConfig, *, check_modes: bool = True, cancel: threading.Event | None = None) -> Agent:
    """Build the agent from its configuration; refuses to start on unsafe file modes."""
    config.require_key()
    if check_modes:
        require_safe(config.protected_files(), private=[config.key_file, *config.credential_files()])
    problems = EXECUTORS[config.executor]().problems()
    if problems:
        # Why: fail at start, not after a job was leased and marked started.
        raise ExecUnavailable(problems[0])
    key = load_node_key(config.key_file, config.key_algorithm)
    with contextlib.ExitStack() as opened:
        client = opened.enter_context(
            AgentApi.connect(
                config.sts_url,
                config.node_id,
                config.realm,
                key,
                config.key_algorithm,
                verify=config.verify_tls,
                audience=config.assertion_audience,
                wait_url=config.wait_url,
            )
        )
        trust = TrustStore(
            realms=config.realms,
            issuer_of=config.issuer,
            cache_dir=config.jwks_cache_dir,
            fetch=client.jwks,
            bundles=config.trust.bundles,
            algorithms=config.trust.algorithms,
            max_age=config.trust.max_age,
            refetch_interval=config.trust.refetch_interval,
        )
        table = opened.enter_context(AuthzTable(f"sqlite:///{config.authz_table}"))
        journal = opened.enter_context(StartedJournal(config.journal_file))
        if check_modes:
            # Why: whoever can delete rows of the record can make a used token look new.
            require_safe([config.journal_file])
        revocations = RevocationSet(client.revocations)
        outbox = Outbox(config.outbox_dir, check_modes=check_modes)
        store = CredentialStore(config.credentials) if config.credentials is not None else None
        decider = NodeDecider(
            NodePolicy.from_config(config), trust, table, revoked=revocations, journal=journal,
            credentials=store.infos if store is not None else None,
        )  # fmt: skip
        opened.pop_all()
    return Agent(config, client, decider, journal, revocations, cancel or threading.Event(), outbox, store, key)
