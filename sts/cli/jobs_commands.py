"""``jobsts submit`` and ``jobsts jobs list|show|cancel``: the job manager from the command line.

They use the login stored by ``jobsts login`` (``sts.cli.session.authorized_client``).
``submit --wait`` follows the job until it ends and exits 0 (succeeded), 1 (failed),
3 (refused) or 4 (lost, expired or cancelled).
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from typing import Any

import click
import httpx

from sts.cli.session import authorized_client, check

URL_OPTION = click.option("--url", default=None, help="STS base URL (default: the last login, or JOBSTS_URL).")
TERMINAL = {"succeeded": 0, "failed": 1, "refused": 3, "lost": 4, "expired": 4, "cancelled": 4}
SUBMIT_ATTEMPTS = 3


def _env_pairs(pairs: tuple[str, ...]) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="--env")
        env[name] = value
    return env


def _credentials(username: str | None) -> dict[str, str]:
    if username is None:
        username = str(click.prompt("Username for the node's realm", err=True))
    if sys.stdin.isatty():
        password = str(click.prompt("Password for the node's realm", hide_input=True, err=True))
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    return {"username": username, "password": password}


def _summary(job: dict[str, Any]) -> str:
    code = f" code={job['code']}" if job.get("code") else ""
    return f"{job['id']}\t{job['state']}\t{job['node']}\t{job['type']}\t{job['submitter']}{code}"


def _post_job(http: httpx.Client, body: dict[str, Any], key: str) -> dict[str, Any]:
    """POST with an Idempotency-Key, retried on transport errors: a retry never makes a second job."""
    for attempt in range(1, SUBMIT_ATTEMPTS + 1):
        try:
            job: dict[str, Any] = check(http.post("/api/v1/jobs", json=body, headers={"Idempotency-Key": key}))
            return job
        except httpx.TransportError:
            if attempt == SUBMIT_ATTEMPTS:
                raise click.ClickException("the STS did not answer; the submission can be retried safely") from None
            time.sleep(attempt)
    raise AssertionError("unreachable")


def follow(http: httpx.Client, job_id: str, interval: float = 1.0) -> dict[str, Any]:
    """Poll a job until it reaches a terminal state."""
    while True:
        job: dict[str, Any] = check(http.get(f"/api/v1/jobs/{job_id}"))
        if job["state"] in TERMINAL:
            return job
        time.sleep(interval)


@click.command(context_settings={"ignore_unknown_options": True})
@URL_OPTION
@click.option("--node", required=True, help="Target node id.")
@click.option("--type", "job_type", required=True, help="Job type (the node maps it to a required role).")
@click.option("--not-before", default=None, help="Epoch seconds or RFC 3339 with a zone.")
@click.option("--deadline", default=None, help="Epoch seconds or RFC 3339 with a zone (capped by realm policy).")
@click.option("--env", "env_pairs", multiple=True, metavar="NAME=VALUE", help="Environment addition (repeatable).")
@click.option("--cwd", default=None, help="Absolute working directory on the node.")
@click.option("--timeout", type=int, default=None, help="Seconds the job may run.")
@click.option("--authgroup", default=None, help="Authorization group of the node.")
@click.option("--credentials-from-prompt", is_flag=True,
              help="Ask for a username and password of the node's realm (stdin when not a tty); never stored.")
@click.option("--credentials-username", default=None, help="Username for --credentials-from-prompt.")
@click.option("--idempotency-key", default=None, help="Default: a fresh random key per invocation.")
@click.option("--wait", is_flag=True, help="Follow the job until it ends; exit with its outcome.")
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
@click.argument("argv", nargs=-1, required=True, type=click.UNPROCESSED)
def submit(url: str | None, node: str, job_type: str, not_before: str | None, deadline: str | None,
           env_pairs: tuple[str, ...], cwd: str | None, timeout: int | None, authgroup: str | None,
           credentials_from_prompt: bool, credentials_username: str | None, idempotency_key: str | None,
           wait: bool, as_json: bool, argv: tuple[str, ...]) -> None:
    """Submit a job: jobsts submit --node N --type T [options] -- ARGV..."""
    spec: dict[str, Any] = {"argv": list(argv), "env": _env_pairs(env_pairs)}
    for name, value in (("cwd", cwd), ("timeout", timeout), ("authgroup", authgroup)):
        if value is not None:
            spec[name] = value
    body: dict[str, Any] = {"node": node, "type": job_type, "spec": spec}
    for name, text in (("not_before", not_before), ("deadline", deadline)):
        if text is not None:
            body[name] = int(text) if text.isdigit() else text
    if credentials_from_prompt:
        body["credentials"] = _credentials(credentials_username)
    with authorized_client(url) as http:
        job = _post_job(http, body, idempotency_key or str(uuid.uuid4()))
        click.echo(json.dumps(job, indent=2) if as_json else _summary(job))
        if not wait:
            return
        final = follow(http, job["id"])
    click.echo(_summary(final))
    result = final.get("result") or {}
    if result.get("stdout_tail"):
        click.echo(result["stdout_tail"], nl=False)
    if result.get("stderr_tail"):
        click.echo(result["stderr_tail"], nl=False, err=True)
    if final.get("code") or result.get("reason"):
        click.echo(f"{final['state']}: {final.get('code') or ''} {result.get('reason') or ''}".rstrip(), err=True)
    sys.exit(TERMINAL[final["state"]])


@click.group()
def jobs() -> None:
    """Job history and cancel."""


@jobs.command("list")
@URL_OPTION
@click.option("--state", default=None)
@click.option("--node", default=None)
@click.option("--submitter", default=None, help="Access ID of the submitter.")
@click.option("--limit", type=int, default=100)
@click.option("--json", "as_json", is_flag=True)
def jobs_list(url: str | None, state: str | None, node: str | None, submitter: str | None, limit: int,
              as_json: bool) -> None:
    """List jobs, newest first (monitors see all; others their own)."""
    params = {k: v for k, v in {"state": state, "node": node, "submitter": submitter, "limit": limit}.items()
              if v is not None}
    with authorized_client(url) as http:
        body = check(http.get("/api/v1/jobs", params=params))
    if as_json:
        click.echo(json.dumps(body["jobs"], indent=2))
        return
    for job in body["jobs"]:
        click.echo(_summary(job))


@jobs.command("show")
@URL_OPTION
@click.argument("job_id")
def jobs_show(url: str | None, job_id: str) -> None:
    """Show one job as JSON (never its token)."""
    with authorized_client(url) as http:
        click.echo(json.dumps(check(http.get(f"/api/v1/jobs/{job_id}")), indent=2))


@jobs.command("cancel")
@URL_OPTION
@click.argument("job_id")
def jobs_cancel(url: str | None, job_id: str) -> None:
    """Cancel a queued or leased job (its submitter or an administrator); revokes its token."""
    with authorized_client(url) as http:
        job = check(http.post(f"/api/v1/jobs/{job_id}/cancel"))
    click.echo(_summary(job))
