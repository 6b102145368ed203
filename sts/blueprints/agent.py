"""``/api/v1/agent/*``: what an agent calls with its ``agent+jwt`` (the STS <-> agent contract).

lease (long-poll, one job per call), start, heartbeat, result (idempotent), revocations.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, jsonify, request

from realms.tokens.profiles import MAX_LEEWAY_SECONDS
from realms.wire.documents import parse_result
from realms.wire.spec import LIMITS
from sts import audit
from sts.auth import require_agent
from sts.jobs.dispatch import MAX_WAIT_SECONDS, heartbeat, lease, report, start
from sts.jobs.errors import JobInvalidSpec
from sts.jobs.manager import job_env, maybe_reap
from sts.jobs.views import job_document
from sts.metrics import DISPATCH, LEASES, REFUSALS, code_label

bp = Blueprint("agent", __name__, url_prefix="/api/v1/agent")
# Two 64 KiB tails (up to 4 bytes per character as UTF-8, more when JSON-escaped) plus the trace.
RESULT_MAX_BYTES = 12 * LIMITS.max_tail_chars + 256 * 1024


@bp.before_request
def _result_body_limit() -> None:
    if request.endpoint == "agent.result":
        request.max_content_length = RESULT_MAX_BYTES


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
    env = job_env()
    maybe_reap(env)
    found = lease(env, g.node.id, float(wait))
    if found is None:
        LEASES.labels("empty").inc()
        return "", 204
    LEASES.labels("leased").inc()
    audit.record("job.leased", actor=f"node:{g.node.id}", realm=g.node.realm, node=g.node.id, job=found.job.id,
                 attempt=found.job.attempts, jti=found.job.token_jti)
    response = jsonify({"job": job_document(found.job), "job_token": found.job_token,
                        "lease_expires_at": found.lease_expires_at})
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/jobs/<job_id>/start")
@require_agent
def start_job(job_id: str) -> Response:
    attempt = _body().get("attempt")
    if attempt is not None and (isinstance(attempt, bool) or not isinstance(attempt, int)):
        raise JobInvalidSpec("attempt: must be an integer", field="attempt")
    job = start(job_env(), g.node.id, job_id, attempt)
    DISPATCH.labels("running", "").inc()
    audit.record("job.started", actor=f"node:{g.node.id}", realm=g.node.realm, node=g.node.id, job=job.id,
                 attempt=job.attempts)
    return jsonify({"state": "running"})


@bp.post("/jobs/<job_id>/heartbeat")
@require_agent
def heartbeat_job(job_id: str) -> Response:
    return jsonify({"lease_expires_at": heartbeat(job_env(), g.node.id, job_id)})


@bp.post("/jobs/<job_id>/result")
@require_agent
def result(job_id: str) -> Response:
    reported = parse_result(_body())
    job = report(job_env(), g.node.id, job_id, reported)
    code = code_label(reported.code)
    DISPATCH.labels(job.state, code).inc()
    if reported.outcome == "refused":
        REFUSALS.labels(code).inc()
    # The agent's decision (its trace verdicts) and the result; never the output tails.
    audit.record("job.result", actor=f"node:{g.node.id}", realm=g.node.realm, node=g.node.id, job=job.id,
                 outcome=reported.outcome, code=reported.code, exit_code=reported.exit_code,
                 account=reported.account, subject=job.subject,
                 decision=[f"{step.step}:{step.verdict}" for step in reported.trace])
    return jsonify({"state": job.state})


@bp.get("/revocations")
@require_agent
def revocations() -> Response:
    """Revoked jtis whose tokens have not expired yet, for the agent's replay/revocation check."""
    env = job_env()
    maybe_reap(env)
    with env.session() as session:
        # Verifiers accept a token up to MAX_LEEWAY_SECONDS past its exp, so its revocation
        # must stay listed that long too.
        horizon = env.now() - MAX_LEEWAY_SECONDS
        revoked = [{"jti": jti, "exp": exp} for jti, exp in env.list_revocations(session, horizon)]
    response = jsonify({"revoked": revoked})
    response.headers["Cache-Control"] = "no-store"
    return response
