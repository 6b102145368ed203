"""``/api/v1/jobs``: submit, history, cancel (issue 5). Problems are RFC 9457 with a ``code``."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, jsonify, request, url_for

from authz_tables.roles import Role
from realms.errors import JobstsError
from sts import audit
from sts.auth import authenticated_caller, caller_has, require_role
from sts.jobs.env import Submitter
from sts.jobs.errors import JobInvalidSpec
from sts.jobs.history import JobFilter, Viewer, cancel_job, get_job, list_jobs
from sts.jobs.manager import job_env, maybe_reap
from sts.jobs.spec import parse_submission
from sts.jobs.submit import submit
from sts.jobs.views import history_view
from sts.metrics import SUBMISSIONS
from sts.throttle import client_address

log = logging.getLogger(__name__)
bp = Blueprint("jobs", __name__, url_prefix="/api/v1/jobs")


def _json_body() -> Any:
    body = request.get_json(silent=True)
    if body is None:
        raise JobInvalidSpec("body: must be a JSON object (Content-Type: application/json)", field="body")
    return body


def _viewer() -> Viewer:
    caller = authenticated_caller()
    return Viewer(str(caller.access_id), sees_all=caller_has(Role.MONITOR),
                  is_admin=caller_has(Role.ADMINISTRATOR))


@bp.post("")
@require_role(Role.OPERATOR)
def create() -> tuple[Response, int]:
    """Submit a job. ``Idempotency-Key`` makes a retry return the original job (200)."""
    caller = authenticated_caller()
    env = job_env()
    maybe_reap(env)
    submission = parse_submission(_json_body())
    submitter = Submitter(str(caller.access_id), caller.realm, tuple(sorted(str(g) for g in caller.groups)),
                          caller.username)
    address = client_address(request.remote_addr, request.headers.get("X-Forwarded-For"),
                             env.config.trusted_proxies)
    try:
        job, created = submit(env, submitter, submission, request.headers.get("Idempotency-Key"), address)
    except JobstsError as exc:
        SUBMISSIONS.labels("refused").inc()
        audit.record("job.submitted", outcome="refused", actor=submitter.access_id, node=submission.node,
                     code=exc.code)
        raise
    SUBMISSIONS.labels("created" if created else "replayed").inc()
    audit.record("job.submitted", outcome="created" if created else "replayed", actor=submitter.access_id,
                 realm=job.realm, node=job.node_id, job=job.id, type=job.type, subject=job.subject,
                 jti=job.token_jti)
    response = jsonify(history_view(job))
    response.headers["Location"] = url_for("jobs.show", job_id=job.id)
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return response, 201 if created else 200


def _int_arg(name: str, default: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or len(raw) > 6:
        raise JobInvalidSpec(f"{name}: must be a whole number", field=name)
    return int(raw)


def _float_arg(name: str) -> float | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        raise JobInvalidSpec(f"{name}: must be a number", field=name) from None


@bp.get("")
def index() -> Response:
    """Job history, newest first. Monitors see every job; others only their own."""
    viewer = _viewer()
    env = job_env()
    maybe_reap(env)
    filters = JobFilter(state=request.args.get("state"), node=request.args.get("node"),
                        submitter=request.args.get("submitter"), limit=_int_arg("limit", 100),
                        before=_float_arg("before"))
    jobs = list_jobs(env, viewer, filters)
    return jsonify({"jobs": [history_view(job) for job in jobs]})


@bp.get("/<job_id>")
def show(job_id: str) -> Response:
    return jsonify(history_view(get_job(job_env(), _viewer(), job_id)))


@bp.post("/<job_id>/cancel")
def cancel(job_id: str) -> Response:
    """Cancel a queued or leased job (its submitter or an administrator); revokes its token."""
    return jsonify(history_view(cancel_job(job_env(), _viewer(), job_id)))
