"""The console's pages: the job list, a job, cancel, nodes, realms and the activity chart.

Who sees what is the API's rule, through the API's own code: the session's caller becomes the
request's caller (``sts.console.sessions``), ``caller_has`` reads the job manager's table, and
``sts.jobs.history`` decides visibility (a job one may not see is ``job.not_found``, 404, the
same as a missing one) and who may cancel.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from flask import g, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from authz_tables.roles import Role
from realms.wire.trace import STEP_NAMES
from sts.console.blueprint import bp, page, signed_in
from sts.console.chart import refusals_chart, states_chart
from sts.console.error_docs import explain
from sts.http.auth import authenticated_caller, caller_has
from sts.jobs.history import Viewer, cancel_job, get_job
from sts.jobs.listing import Cursor, ListingFilter, activity, list_page
from sts.jobs.models import Job
from sts.jobs.states import JobState
from sts.jobs.views import maybe_reap
from sts.nodes.service import list_nodes
from sts.observability.views import directory_checks
from sts.services import current_services

WINDOWS = {"1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
CANCELLABLE = frozenset({JobState.QUEUED.value, JobState.LEASED.value})


def when(stamp: float | None) -> str:
    """A time stamp for people: UTC, to the second."""
    if stamp is None:
        return ""
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _viewer() -> Viewer:
    # The same Viewer the API builds for /api/v1/jobs (sts.jobs.views).
    caller = authenticated_caller()
    return Viewer(str(caller.access_id), sees_all=caller_has(Role.MONITOR), is_admin=caller_has(Role.ADMINISTRATOR))


def _arg(name: str) -> str | None:
    value = request.args.get(name, "").strip()
    return value or None


def _filters() -> tuple[ListingFilter, dict[str, Any]]:
    window = _arg("window")
    since = time.time() - WINDOWS[window] if window in WINDOWS else None
    cursor = _arg("cursor")
    filters = ListingFilter(
        state=_arg("state"),
        node=_arg("node"),
        submitter=_arg("submitter"),
        type=_arg("type"),
        since=since,
        cursor=Cursor.decode(cursor) if cursor else None,
    )
    kept: dict[str, Any] = {
        k: v for k in ("state", "node", "submitter", "type", "window") if (v := request.args.get(k, "").strip())
    }
    return filters, kept


@bp.get("/jobs")
@signed_in
def jobs() -> BaseResponse:
    services = current_services()
    maybe_reap(services)
    viewer = _viewer()
    filters, kept = _filters()
    # One URL built, then extended per row: building 50 URLs through the router was a third of
    # the page's server time (bench/console.py). Job ids are UUIDs, safe in a path.
    job_base = url_for("console.job", job_id="-")[:-1]
    with services.session() as session:
        found = list_page(session, viewer, filters)
        rows = [
            {
                "id": job.id,
                "href": job_base + job.id,
                "state": job.state,
                "node": job.node_id,
                "type": job.type,
                "submitter": job.submitter,
                "created": when(job.created_at),
                "code": job.result_code,
            }
            for job in found.jobs
        ]
    next_url = None
    if found.next_cursor is not None:
        next_url = url_for("console.jobs", cursor=found.next_cursor.encode(), **kept)
    return page(
        "console/jobs.html",
        jobs=rows,
        filters=kept,
        states=[s.value for s in JobState],
        windows=list(WINDOWS),
        next_url=next_url,
        first_url=url_for("console.jobs", **kept) if filters.cursor else None,
        sees_all=viewer.sees_all,
    )


def _trace(job: Job) -> list[dict[str, str]]:
    steps: list[dict[str, Any]] = json.loads(job.trace) if job.trace else []
    return [
        {
            "step": str(s.get("step", "")),
            "name": str(s.get("name") or STEP_NAMES.get(str(s.get("step")), "")),
            "verdict": str(s.get("verdict", "")),
            "detail": str(s.get("detail", "")),
        }
        for s in steps
    ]


@bp.get("/jobs/<job_id>")
@signed_in
def job(job_id: str) -> BaseResponse:
    services = current_services()
    viewer = _viewer()
    found = get_job(services, viewer, job_id)
    trace = _trace(found)
    mapping = next((s for s in trace if s["step"] == "f"), None)
    timeline = [
        ("submitted", when(found.created_at)),
        ("leased", when(found.leased_at)),
        ("started", when(found.started_at)),
        ("finished", when(found.finished_at)),
    ]
    return page(
        "console/job.html",
        job=found,
        spec=json.dumps(json.loads(found.spec), indent=2, sort_keys=True),
        timeline=timeline,
        trace=trace,
        mapping=mapping,
        doc=explain(found.result_code),
        can_cancel=found.state in CANCELLABLE and found.submitter == viewer.access_id,
        csrf=g.console_signed_in.csrf,
        not_before=when(found.not_before),
        deadline=when(found.deadline),
    )


@bp.post("/jobs/<job_id>/cancel")
@signed_in
def cancel(job_id: str) -> BaseResponse:
    """Cancel one's own queued (or leased, not started) job; the API's rules and token revocation."""
    cancelled = cancel_job(current_services(), _viewer(), job_id)
    return BaseResponse(status=303, headers={"Location": url_for("console.job", job_id=cancelled.id)})


@bp.get("/nodes")
@signed_in
def nodes() -> BaseResponse:
    services = current_services()
    with services.session() as session:
        rows = [
            {
                "id": node.id,
                "realm": node.realm,
                "trusted": list(node.trusted_realms),
                "authgroups": list(node.authgroups),
                # Presence is recorded by the fleet's node tracking where it exists.
                "last_seen": when(getattr(node, "last_seen_at", None) or getattr(node, "last_seen", None)),
                "connected": getattr(node, "connected", None),
            }
            for node in list_nodes(session)
        ]
    return page("console/nodes.html", nodes=rows)


@bp.get("/realms")
@signed_in
def realms() -> BaseResponse:
    services = current_services()
    health = directory_checks(services.registries)
    rows = []
    for name in sorted(services.config.realms):
        # Every key ring of the realm: its own (all its tokens) and, where it exists, the RS256
        # ring of its ID tokens; each key with whatever state the key store gives it.
        keys = [
            {
                **key,
                "signs": "tokens" if ring == name else "ID tokens",
                "published_until": when(key["published_until"]),
                "created_at": when(key["created_at"]),
            }
            for ring in services.keys.rings(name)
            for key in services.keys.describe(ring)
        ]
        rows.append(
            {
                "name": name,
                "issuer": services.config.issuer(name),
                "signing_keys": keys,
                "directory": health.get(f"directory:{name}", "unknown"),
            }
        )
    return page("console/realms.html", realms=rows)


@bp.get("/activity")
@signed_in
def overview() -> BaseResponse:
    services = current_services()
    viewer = _viewer()
    with services.session() as session:
        data = activity(session, viewer, time.time())
    totals: dict[str, int] = {}
    for (_, state), count in data.per_hour.items():
        totals[state] = totals.get(state, 0) + count
    return page(
        "console/activity.html",
        states=states_chart(data),
        refusals=refusals_chart(data),
        totals=sorted(totals.items()),
        refusal_codes=sorted(data.refusals.items(), key=lambda item: -item[1]),
        sees_all=viewer.sees_all,
    )
