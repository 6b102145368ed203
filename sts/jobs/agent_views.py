"""``/api/v1/agent/*``: what an agent calls with its ``agent+jwt`` (the STS <-> agent contract).

lease (long-poll, one job per call), start, heartbeat, result (idempotent), revocations; and
the job document an agent receives with a lease.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from realms.tokens.profiles import MAX_LEEWAY_SECONDS
from realms.wire.documents import parse_result
from realms.wire.spec import LIMITS
from sts.http.auth import authenticated_node, require_agent
from sts.jobs.dispatch import MAX_WAIT_SECONDS, heartbeat, lease, report, start
from sts.jobs.errors import JobInvalidSpec
from sts.jobs.models import Job
from sts.jobs.views import maybe_reap, spec_of
from sts.oauth.revocation import list_active
from sts.observability import audit
from sts.observability.metrics import DISPATCH, LEASES, REFUSALS, code_label
from sts.services import current_services

bp = Blueprint("agent", __name__, url_prefix="/api/v1/agent")
# Two 64 KiB tails (up to 4 bytes per character as UTF-8, more when JSON-escaped) plus the trace.
RESULT_MAX_BYTES = 12 * LIMITS.max_tail_chars + 256 * 1024


def job_document(job: Job) -> dict[str, Any]:
    """The contract's ``job`` object, exactly what the agent hashes and checks."""
    return {
        "id": job.id,
        "node": job.node_id,
        "type": job.type,
        "spec": spec_of(job),
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


@bp.post("/lease")
@require_agent
def lease_job() -> Response | tuple[str, int]:
    """At most one job for the calling node, with its job token; 204 when none came in ``wait`` s."""
    wait = _body().get("wait", 0)
    if isinstance(wait, bool) or not isinstance(wait, int | float) or not 0 <= wait <= MAX_WAIT_SECONDS:
        raise JobInvalidSpec(f"wait: must be 0 to {MAX_WAIT_SECONDS} seconds", field="wait")
    services, node = current_services(), authenticated_node()
    maybe_reap(services)
    found = lease(services, node.id, float(wait))
    if found is None:
        LEASES.labels("empty").inc()
        return "", 204
    LEASES.labels("leased").inc()
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
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/jobs/<job_id>/start")
@require_agent
def start_job(job_id: str) -> Response:
    attempt = _body().get("attempt")
    if attempt is not None and (isinstance(attempt, bool) or not isinstance(attempt, int)):
        raise JobInvalidSpec("attempt: must be an integer", field="attempt")
    node = authenticated_node()
    job = start(current_services(), node.id, job_id, attempt)
    DISPATCH.labels("running", "").inc()
    audit.record(
        "job.started", actor=f"node:{node.id}", realm=node.realm, node=node.id, job=job.id, attempt=job.attempts
    )
    return jsonify({"state": "running"})


@bp.post("/jobs/<job_id>/heartbeat")
@require_agent
def heartbeat_job(job_id: str) -> Response:
    return jsonify({"lease_expires_at": heartbeat(current_services(), authenticated_node().id, job_id)})


@bp.post("/jobs/<job_id>/result")
@require_agent
def result(job_id: str) -> Response:
    reported = parse_result(_body())
    node = authenticated_node()
    job = report(current_services(), node.id, job_id, reported)
    code = code_label(reported.code)
    DISPATCH.labels(job.state, code).inc()
    if reported.outcome == "refused":
        REFUSALS.labels(code).inc()
    # The agent's decision (its trace verdicts) and the result; never the output tails.
    audit.record(
        "job.result",
        actor=f"node:{node.id}",
        realm=node.realm,
        node=node.id,
        job=job.id,
        outcome=reported.outcome,
        code=reported.code,
        exit_code=reported.exit_code,
        account=reported.account,
        subject=job.subject,
        decision=[f"{step.step}:{step.verdict}" for step in reported.trace],
    )
    return jsonify({"state": job.state})


# Results carry two output tails: a larger body than the app's default (read by sts.http.text_inputs).
result.max_body_bytes = RESULT_MAX_BYTES  # type: ignore[attr-defined]


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
