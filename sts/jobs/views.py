"""``/api/v1/jobs``: submit, history, cancel; how a job is shown to people; and the reaper's trigger.

Problems are RFC 9457 with a ``code``. The reaper runs without a thread of its own: every lease
reaps its node first, and any job or agent request runs a full pass at most every
``reap_interval`` seconds (docs/architecture.md says why).
"""

from __future__ import annotations

import json
import logging
import math
import time
from typing import Any

from flask import Blueprint, Response, jsonify, request, url_for

from authz_tables.roles import Role
from realms.errors import JobstsError, UnavailableError
from realms.text import is_ascii_number
from sts.http.auth import authenticated_caller, caller_confirmed, caller_has, caller_pending_revocation
from sts.http.context import request_context
from sts.jobs.errors import JobInvalidSpec
from sts.jobs.history import JobFilter, Viewer, cancel_job, get_job, list_jobs
from sts.jobs.models import Job
from sts.jobs.reaper import reap_all
from sts.jobs.spec import parse_submission
from sts.jobs.submit import Submitter, submit
from sts.observability import audit
from sts.observability.metrics import SUBMISSIONS
from sts.services import Services, current_services

log = logging.getLogger(__name__)
bp = Blueprint("jobs", __name__, url_prefix="/api/v1/jobs")


def maybe_reap(services: Services) -> None:
    """A full reaper pass if the last one in this process is older than ``reap_interval``."""
    now = time.monotonic()
    if now - services.last_reap < services.config.jobs.reap_interval:
        return
    services.last_reap = now
    try:
        changed = reap_all(services)
    except UnavailableError as exc:
        log.warning("job reaper skipped: %s", exc.message)
        return
    if changed:
        log.info("job reaper: %d job(s) requeued, lost or expired", changed)


def spec_of(job: Job) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(job.spec)
    return spec


def history_view(job: Job) -> dict[str, Any]:
    """A job for ``GET /api/v1/jobs``. Why no token: the job token is a bearer credential for the
    node; only the node it was minted for receives it, through a lease."""
    result = None
    if job.result_digest is not None:
        result = {
            "exit_code": job.exit_code,
            "stdout_tail": job.stdout_tail,
            "stderr_tail": job.stderr_tail,
            "code": job.result_code,
            "reason": job.reason,
            "account": job.account,
            "trace": json.loads(job.trace) if job.trace else [],
            # A result that arrived after the job was marked lost: what it reported (state stays lost).
            "late": job.late_outcome is not None,
        }
    return {
        "id": job.id,
        "node": job.node_id,
        "type": job.type,
        "spec": spec_of(job),
        "state": job.state,
        "submitter": job.submitter,
        "submitter_realm": job.submitter_realm,
        "subject": job.subject,
        "realm": job.realm,
        "job_digest": job.job_digest,
        "not_before": job.not_before,
        "deadline": job.deadline,
        "attempts": job.attempts,
        "lease_expires_at": job.lease_expires_at,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "leased_at": job.leased_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "code": job.result_code,
        "result": result,
    }


def _json_body() -> Any:
    body = request.get_json(silent=True)
    if body is None:
        raise JobInvalidSpec("body: must be a JSON object (Content-Type: application/json)", field="body")
    return body


def _viewer() -> Viewer:
    caller = authenticated_caller()
    return Viewer(str(caller.access_id), sees_all=caller_has(Role.MONITOR), is_admin=caller_has(Role.ADMINISTRATOR))


@bp.post("")
def create() -> tuple[Response, int]:
    """Submit a job. ``Idempotency-Key`` makes a retry return the original job (200).

    The caller's revocation check is made by ``submit``, in the job's own transaction."""
    caller = caller_pending_revocation(Role.OPERATOR)
    services = current_services()
    maybe_reap(services)
    submission = parse_submission(_json_body())
    submitter = Submitter(
        str(caller.access_id), caller.realm, tuple(sorted(str(g) for g in caller.groups)), caller.username
    )
    try:
        job, created = submit(
            services,
            submitter,
            submission,
            request.headers.get("Idempotency-Key"),
            request_context().client_address,
            unchecked_jti=None if request_context().caller is caller else caller.token_jti,
        )
        caller_confirmed(caller)
    except JobstsError as exc:
        SUBMISSIONS.labels("refused").inc()
        audit.record("job.submitted", outcome="refused", actor=submitter.access_id, node=submission.node, code=exc.code)
        raise
    SUBMISSIONS.labels("created" if created else "replayed").inc()
    audit.record(
        "job.submitted",
        outcome="created" if created else "replayed",
        actor=submitter.access_id,
        realm=job.realm,
        node=job.node_id,
        job=job.id,
        type=job.type,
        subject=job.subject,
        jti=job.token_jti,
    )
    response = jsonify(history_view(job))
    response.headers["Location"] = url_for("jobs.show", job_id=job.id)
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return response, 201 if created else 200


def _int_arg(name: str, default: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not is_ascii_number(raw) or len(raw) > 6:
        raise JobInvalidSpec(f"{name}: must be a whole number", field=name)
    return int(raw)


def _float_arg(name: str) -> float | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    # Why finite: float() also reads "nan", "inf" and "1e999", which compare as no time at all.
    if not math.isfinite(value):
        raise JobInvalidSpec(f"{name}: must be a number", field=name)
    return value


@bp.get("")
def index() -> Response:
    """Job history, newest first. Monitors see every job; others only their own."""
    viewer = _viewer()
    services = current_services()
    maybe_reap(services)
    filters = JobFilter(
        state=request.args.get("state"),
        node=request.args.get("node"),
        submitter=request.args.get("submitter"),
        limit=_int_arg("limit", 100),
        before=_float_arg("before"),
    )
    jobs = list_jobs(services, viewer, filters)
    return jsonify({"jobs": [history_view(job) for job in jobs]})


@bp.get("/<job_id>")
def show(job_id: str) -> Response:
    return jsonify(history_view(get_job(current_services(), _viewer(), job_id)))


@bp.post("/<job_id>/cancel")
def cancel(job_id: str) -> Response:
    """Cancel a queued or leased job (its submitter or an administrator); revokes its token."""
    return jsonify(history_view(cancel_job(current_services(), _viewer(), job_id)))
