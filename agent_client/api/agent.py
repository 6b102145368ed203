"""The agent's endpoints: ``/api/v1/agent/lease`` and ``/leases`` (which may carry results), ``/jobs/<id>/start`` and
``/claims``, ``/heartbeat``, ``/result`` and ``/results``, ``/revocations``, and the realms' JWKS.
Documents travel as ``realms.wire`` types."""

from __future__ import annotations

from typing import Any

import httpx

from agent_client.api import oauth
from agent_client.api.auth import AgentAuth
from agent_client.api.client import StsApi
from agent_client.api.problems import malformed, refusal
from realms.tokens.algorithms import PrivateKey
from realms.wire.documents import (
    Claim,
    ItemOutcome,
    Lease,
    LeaseRequest,
    Result,
    parse_lease,
    parse_lease_answer,
    parse_leases,
    parse_outcomes,
    parse_revocations,
    results_document,
)
from realms.wire.errors import JobInvalidSpec

AGENT_TIMEOUT = 10.0
# Seconds a long-polled lease may take beyond its ``wait``.
LEASE_GRACE = 15.0


class AgentApi:
    """One node's session with the STS, authenticated as the node (``AgentAuth``)."""

    def __init__(self, api: StsApi, auth: AgentAuth, waits: StsApi | None = None) -> None:
        self.api, self.auth, self.node_id = api, auth, auth.node_id
        # Where ``wait`` goes: the STS's agent-wait listener when it has one, else ``api``.
        self.waits = waits or api

    @classmethod
    def connect(
        cls,
        base_url: str,
        node_id: str,
        realm: str,
        key: PrivateKey,
        algorithm: str,
        *,
        verify: bool | str = True,
        timeout: float = AGENT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
        audience: str | None = None,
        wait_url: str | None = None,
    ) -> AgentApi:
        auth = AgentAuth(base_url, node_id, realm, key, algorithm, audience=audience)
        caller = f"node {node_id}"
        api = StsApi(base_url, auth, caller=caller, verify=verify, timeout=timeout, transport=transport)
        waits = None
        if wait_url is not None:
            waits = StsApi(wait_url, auth, caller=caller, verify=verify, timeout=timeout, transport=transport)
        return cls(api, auth, waits)

    def close(self) -> None:
        self.api.close()
        if self.waits is not self.api:
            self.waits.close()

    def __enter__(self) -> AgentApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def lease(self, wait: int = 0) -> Lease | None:
        """At most one job (long-polled up to ``wait`` seconds); ``None`` when none came."""
        response = self.api.call(
            "POST", "/api/v1/agent/lease", "a lease", json={"wait": wait}, timeout=wait + LEASE_GRACE
        )
        if response.status_code == 204:
            return None
        try:
            return parse_lease(response.json())
        except (ValueError, JobInvalidSpec) as exc:
            problem = exc.message if isinstance(exc, JobInvalidSpec) else "not JSON"
            raise malformed("lease", self.api.caller, problem) from None

    def wait(self, timeout: int) -> bool | None:
        """Wait up to ``timeout`` seconds until the node may have work (``GET /api/v1/agent/wait``,
        which holds no thread at the STS); then lease. ``None`` when the STS has no such route
        (an older STS): the caller long-polls the lease instead. Sent to the agent-wait listener
        when the configuration names one (``wait_url``)."""
        response = self.waits.call(
            "GET",
            "/api/v1/agent/wait",
            "a wait for work",
            params={"timeout": max(1, timeout)},
            timeout=timeout + LEASE_GRACE,
            check=False,
        )
        if response.status_code in (404, 405):
            return None
        if not response.is_success:
            raise refusal(response, self.waits.base_url, "a wait for work", self.waits.caller)
        try:
            document = response.json()
        except ValueError:
            raise malformed("wait", self.api.caller, "not JSON") from None
        if not isinstance(document, dict) or not isinstance(document.get("work"), bool):
            raise malformed("wait", self.api.caller, "no boolean work member")
        return bool(document["work"])

    def leases(self, max_jobs: int, wait: float = 0) -> list[Lease]:
        """Up to ``max_jobs`` jobs (the free slots), long-polled up to ``wait`` seconds."""
        response = self.api.call(
            "POST",
            "/api/v1/agent/leases",
            "a lease",
            json=LeaseRequest(max_jobs, wait).as_document(),
            timeout=wait + LEASE_GRACE,
        )
        if response.status_code == 204:
            return []
        try:
            return parse_leases(response.json())
        except (ValueError, JobInvalidSpec) as exc:
            problem = exc.message if isinstance(exc, JobInvalidSpec) else "not JSON"
            raise malformed("lease", self.api.caller, problem) from None

    def leases_reporting(
        self, max_jobs: int, results: list[tuple[str, Result]]
    ) -> tuple[list[Lease], list[ItemOutcome] | None]:
        """Up to ``max_jobs`` jobs (no wait), in the call that also reports ``results``: the leases,
        and one outcome per result; ``None`` outcomes when the STS ignored the results (an older
        STS: they must go to ``/results``)."""
        response = self.api.call(
            "POST",
            "/api/v1/agent/leases",
            "a lease",
            json=LeaseRequest(max_jobs, 0, tuple(results)).as_document(),
            timeout=LEASE_GRACE,
        )
        if response.status_code == 204:
            return [], None
        try:
            return parse_lease_answer(response.json())
        except (ValueError, JobInvalidSpec) as exc:
            problem = exc.message if isinstance(exc, JobInvalidSpec) else "not JSON"
            raise malformed("lease", self.api.caller, problem) from None

    def _outcomes(self, path: str, what: str, body: dict[str, Any]) -> list[ItemOutcome]:
        answer = self.api.call_json("POST", path, what, json=body)
        try:
            return parse_outcomes(answer)
        except JobInvalidSpec as exc:
            raise malformed(f"answer to {what}", self.api.caller, exc.message) from None

    def claim(self, claims: list[Claim]) -> list[ItemOutcome]:
        """Start jobs already recorded in the journal; one outcome per job (``code`` when refused)."""
        return self._outcomes("/api/v1/agent/claims", "a claim", {"claims": [claim.as_document() for claim in claims]})

    def results(self, results: list[tuple[str, Result]]) -> list[ItemOutcome]:
        """Report several results at once (the outbox's sender); one outcome per job."""
        return self._outcomes("/api/v1/agent/results", "results", results_document(results))

    def start(self, job_id: str) -> None:
        self.api.call("POST", f"/api/v1/agent/jobs/{job_id}/start", f"job {job_id}", json={})

    def heartbeat(self, job_id: str) -> int:
        """Extends the lease; returns its new end (epoch seconds)."""
        body = self.api.call_json("POST", f"/api/v1/agent/jobs/{job_id}/heartbeat", f"job {job_id}", json={})
        expires = body.get("lease_expires_at", 0)
        return expires if isinstance(expires, int) and not isinstance(expires, bool) else 0

    def result(self, job_id: str, result: Result) -> None:
        self.api.call("POST", f"/api/v1/agent/jobs/{job_id}/result", f"job {job_id}", json=result.as_document())

    def revocations(self) -> dict[str, int]:
        """Revoked job-token ``jti``s -> their ``exp``."""
        return parse_revocations(self.api.call_json("GET", "/api/v1/agent/revocations", "the revocation list"))

    def jwks(self, realm: str) -> tuple[dict[str, Any], int | None]:
        """A ``trust_store.JwksFetcher``: the realm's JWK Set and its max-age."""
        return oauth.jwks(self.api, realm)
