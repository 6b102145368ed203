"""The job manager's endpoints for submitters: ``/api/v1/jobs`` (submit, list, show, cancel)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from agent_client.api.client import StsApi
from agent_client.errors import StsUnavailable

# Job states after which nothing changes any more.
TERMINAL_STATES = frozenset({"succeeded", "failed", "refused", "lost", "expired", "cancelled"})
SUBMIT_ATTEMPTS = 3


def _job_path(job_id: str) -> str:
    return f"/api/v1/jobs/{quote(job_id, safe='')}"


def submit(
    api: StsApi, body: dict[str, Any], idempotency_key: str, *, pause: Callable[[float], None] = time.sleep
) -> dict[str, Any]:
    """``POST /api/v1/jobs`` with an ``Idempotency-Key``, retried when the STS did not answer: the
    same key makes a retry return the first job, never a second one."""
    for attempt in range(1, SUBMIT_ATTEMPTS + 1):
        try:
            return api.call_json(
                "POST", "/api/v1/jobs", "the submission", json=body, headers={"Idempotency-Key": idempotency_key}
            )
        except StsUnavailable as exc:
            if attempt == SUBMIT_ATTEMPTS or exc.data.get("http_status") is not None:
                raise
            pause(attempt)
    raise AssertionError("unreachable")


def list_jobs(api: StsApi, filters: dict[str, str | int]) -> list[dict[str, Any]]:
    jobs = api.call_json("GET", "/api/v1/jobs", "the job list", params=filters).get("jobs")
    return [job for job in jobs if isinstance(job, dict)] if isinstance(jobs, list) else []


def show(api: StsApi, job_id: str) -> dict[str, Any]:
    return api.call_json("GET", _job_path(job_id), f"job {job_id}")


def cancel(api: StsApi, job_id: str) -> dict[str, Any]:
    return api.call_json("POST", f"{_job_path(job_id)}/cancel", f"the cancel of job {job_id}")


def follow(
    api: StsApi,
    job_id: str,
    interval: float = 1.0,
    *,
    pause: Callable[[float], None] = time.sleep,
    on_change: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Poll a job until it reaches a terminal state (the access token is refreshed as needed by
    the client's ``httpx.Auth`` flow); ``on_change`` sees the job each time its state changes."""
    seen: str | None = None
    while True:
        job = show(api, job_id)
        state = job.get("state")
        if on_change is not None and state != seen:
            on_change(job)
        seen = state if isinstance(state, str) else None
        if state in TERMINAL_STATES:
            return job
        pause(interval)
