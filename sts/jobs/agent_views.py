"""``/api/v1/agent/*``: what an agent calls with its ``agent+jwt`` (the STS <-> agent contract).

lease (long-poll, one job per call) and leases (up to the agent's free slots, optionally carrying
finished jobs' results), start and claims (start, batched), heartbeat, result and results
(idempotent, batched; late results for lost jobs), revocations; and the job document an agent
receives with a lease.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, jsonify, request
from sqlalchemy.orm import Session

from realms.tokens.profiles import MAX_LEEWAY_SECONDS
from realms.wire.documents import (
    MAX_BATCH,
    MAX_LEASE_WAIT,
    ItemOutcome,
    parse_claims,
    parse_lease_request,
    parse_result,
    parse_results,
)
from realms.wire.spec import LIMITS
from sts.http.auth import agent_node, authenticated_node, require_agent
from sts.http.context import request_context
from sts.jobs.dispatch import (
    Lease,
    LeasedJob,
    claim_many,
    heartbeat,
    lease_many,
    start,
)
from sts.jobs.errors import JobInvalidSpec
from sts.jobs.reaper import REAP_DUE, reap_due_params
from sts.jobs.results import Recorded, record_and_lease, record_results, report, report_many
from sts.jobs.views import maybe_reap
from sts.nodes.models import Node
from sts.oauth.revocation import list_active
from sts.observability import audit
from sts.observability.metrics import DISPATCH, LEASES, REFUSALS, code_label
from sts.services import Services, current_services

bp = Blueprint("agent", __name__, url_prefix="/api/v1/agent")
# Two 64 KiB tails (up to 4 bytes per character as UTF-8, more when JSON-escaped) plus the trace.
RESULT_MAX_BYTES = 12 * LIMITS.max_tail_chars + 256 * 1024


def job_document(job: LeasedJob) -> dict[str, Any]:
    """The contract's ``job`` object, exactly what the agent hashes and checks."""
    return {
        "id": job.id,
        "node": job.node_id,
        "type": job.type,
        "spec": json.loads(job.spec),
        "submitter": job.subject,
        "realm": job.realm,
        "not_before": job.not_before,
        "deadline": job.deadline,
        "attempt": job.attempts,
    }


def _body() -> dict[str, Any]:
    if not request.get_data(cache=True):
        return {}
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise JobInvalidSpec("body: must be a JSON object", field="body")
    return body


def _lease_document(node: Node, found: Lease) -> dict[str, Any]:
    audit.record(
        "job.leased",
        actor=f"node:{node.id}",
        realm=node.realm,
        node=node.id,
        job=found.job.id,
        attempt=found.job.attempts,
        jti=found.job.token_jti,
    )
    body = {"job": job_document(found.job), "job_token": found.job_token, "lease_expires_at": found.lease_expires_at}
    if found.job.sealed_credentials is not None:
        body["sealed_credentials"] = found.job.sealed_credentials  # opens only with this node's key
    return body


def _json(body: dict[str, Any]) -> Response:
    # json.dumps, not jsonify: Flask's provider sorts the keys, for nothing an agent needs, and a
    # lease answer is ten job documents with their tokens.
    return Response(json.dumps(body, separators=(",", ":")), mimetype="application/json")


def _no_store(body: dict[str, Any]) -> Response:
    response = _json(body)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/lease")
@require_agent
def lease_job() -> Response | tuple[str, int]:
    """At most one job for the calling node, with its job token; 204 when none came in ``wait`` s."""
    wanted = parse_lease_request({"wait": _body().get("wait", 0)}, MAX_LEASE_WAIT)
    services, node = current_services(), authenticated_node()
    maybe_reap(services)
    found = lease_many(services, node.id, 1, wanted.wait)
    if not found:
        LEASES.labels("empty").inc()
        return "", 204
    LEASES.labels("leased").inc()
    return _no_store(_lease_document(node, found[0]))


def _node_and_reap_due(services: Services) -> tuple[Node, bool]:
    """``require_agent``'s check, reading in the same statement whether the node has a job to reap."""
    context = request_context()
    node, verified, due = agent_node(
        services,
        request.headers.get("Authorization", ""),
        (REAP_DUE, lambda node_id: reap_due_params(services, node_id)),
    )
    context.node, context.agent_token = node, verified
    return node, bool(due)


@bp.post("/leases")
def lease_jobs() -> Response | tuple[str, int]:
    """Up to ``max_jobs`` jobs (the agent's free slots) in one statement; 204 when none came in ``wait`` s.
    Results carried along are recorded first, in the same transaction, and answered in ``outcomes``."""
    services = current_services()
    node, reap_due = _node_and_reap_due(services)
    wanted = parse_lease_request(_body(), MAX_LEASE_WAIT)
    maybe_reap(services)
    recorded: list[Recorded] = []

    def record(session: Session) -> None:
        recorded.extend(record_results(services, session, node.id, list(wanted.results)))

    both = None
    if wanted.results and not wanted.wait and not reap_due:
        # What an agent sends when a batch finished: on PostgreSQL, one statement records and leases.
        both = record_and_lease(services, node.id, wanted.max_jobs, list(wanted.results))
    if both is not None:
        found, recorded = both
    else:
        before = record if wanted.results else None
        found = lease_many(services, node.id, wanted.max_jobs, wanted.wait, before, reap_due)
    for item in recorded:
        _audit_result(node, item)
    LEASES.labels("leased" if found else "empty").inc(len(found) or 1)
    body: dict[str, Any] = {"leases": [_lease_document(node, lease) for lease in found]}
    if wanted.results:
        body["outcomes"] = [item.outcome.as_document() for item in recorded]
    elif not found:
        return "", 204
    return _no_store(body)


def _audit_started(node: Node, outcome: ItemOutcome) -> None:
    DISPATCH.labels("running", "").inc()
    audit.record("job.started", actor=f"node:{node.id}", realm=node.realm, node=node.id, job=outcome.job_id)


@bp.post("/jobs/<job_id>/start")
@require_agent
def start_job(job_id: str) -> Response:
    attempt = _body().get("attempt")
    if attempt is not None and (isinstance(attempt, bool) or not isinstance(attempt, int)):
        raise JobInvalidSpec("attempt: must be an integer", field="attempt")
    node = authenticated_node()
    _audit_started(node, start(current_services(), node.id, job_id, attempt))
    return jsonify({"state": "running"})


@bp.post("/claims")
@require_agent
def claim_jobs() -> Response:
    """Start the listed leased jobs (each recorded in the agent's journal first); one outcome each."""
    claims = parse_claims(_body())
    node = authenticated_node()
    outcomes = claim_many(current_services(), node.id, claims)
    for outcome in outcomes:
        if outcome.code is None:
            _audit_started(node, outcome)
    return _json({"outcomes": [outcome.as_document() for outcome in outcomes]})


@bp.post("/jobs/<job_id>/heartbeat")
@require_agent
def heartbeat_job(job_id: str) -> Response:
    return jsonify({"lease_expires_at": heartbeat(current_services(), authenticated_node().id, job_id)})


def _audit_result(node: Node, recorded: Recorded) -> None:
    reported = recorded.result
    if reported is None or not recorded.new:
        return
    code = code_label(reported.code)
    DISPATCH.labels(recorded.outcome.state or "", code).inc()
    if reported.outcome == "refused":
        REFUSALS.labels(code).inc()
    # The agent's decision (its trace verdicts) and the result; never the output tails.
    audit.record(
        "job.late_result" if recorded.outcome.late else "job.result",
        actor=f"node:{node.id}",
        realm=node.realm,
        node=node.id,
        job=recorded.outcome.job_id,
        outcome=reported.outcome,
        code=reported.code,
        exit_code=reported.exit_code,
        account=reported.account,
        subject=recorded.subject,
        decision=[f"{step.step}:{step.verdict}" for step in reported.trace],
    )


@bp.post("/jobs/<job_id>/result")
@require_agent
def result(job_id: str) -> Response:
    reported = parse_result(_body())
    node = authenticated_node()
    recorded = report(current_services(), node.id, job_id, reported)
    _audit_result(node, recorded)
    body: dict[str, Any] = {"state": recorded.outcome.state}
    if recorded.outcome.late:
        body["late"] = True
    return jsonify(body)


@bp.post("/results")
@require_agent
def results() -> Response:
    """Several results in one transaction; one outcome each (a refused item leaves the others)."""
    items = parse_results(_body())
    node = authenticated_node()
    recorded = report_many(current_services(), node.id, items)
    for item in recorded:
        _audit_result(node, item)
    return _json({"outcomes": [item.outcome.as_document() for item in recorded]})


# Results carry two output tails: a larger body than the app's default (read by sts.http.text_inputs).
result.max_body_bytes = RESULT_MAX_BYTES  # type: ignore[attr-defined]
results.max_body_bytes = MAX_BATCH * RESULT_MAX_BYTES  # type: ignore[attr-defined]
lease_jobs.max_body_bytes = MAX_BATCH * RESULT_MAX_BYTES  # type: ignore[attr-defined]


@bp.get("/revocations")
@require_agent
def revocations() -> Response:
    """Revoked jtis whose tokens have not expired yet, for the agent's replay/revocation check."""
    services = current_services()
    maybe_reap(services)
    with services.session() as session:
        # Verifiers accept a token up to MAX_LEEWAY_SECONDS past its exp, so its revocation
        # must stay listed that long too.
        horizon = services.now() - MAX_LEEWAY_SECONDS
        revoked = [{"jti": jti, "exp": exp} for jti, exp in list_active(session, horizon)]
    response = jsonify({"revoked": revoked})
    response.headers["Cache-Control"] = "no-store"
    return response
