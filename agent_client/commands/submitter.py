"""The submitter's commands: ``login``, ``logout``, ``submit`` and ``jobs list|show|logs|cancel``.

``login`` stores the tokens (``agent_client.api.login_store``); the other commands use them
through ``agent_client.api.user_api``, whose ``httpx.Auth`` flow refreshes them on expiry or a
401 (RFC 6749 §6), so a wait outlives any number of access-token lifetimes. ``submit --wait``
follows the job, printing each state change with the elapsed time, and exits 0 (succeeded),
1 (failed), 3 (refused) or 4 (lost, expired or cancelled); a CLI or transport error exits 2.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from agent_client.api import jobs as jobs_api
from agent_client.api import oauth
from agent_client.api.client import StsApi
from agent_client.api.login_store import current_login, forget_session, resolve_url, store_session
from agent_client.api.user import user_api
from agent_client.commands.api_command import JSON_OPTION, URL_OPTION, ApiCommand, ApiGroup
from realms.text import is_ascii_number

EXIT_CODES = {"succeeded": 0, "failed": 1, "refused": 3, "lost": 4, "expired": 4, "cancelled": 4}


def _read_password(password_stdin: bool) -> str:
    if password_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    return str(click.prompt("Password", hide_input=True))


@click.command(cls=ApiCommand)
@click.option("--url", required=True, help="STS base URL, e.g. https://sts.example.")
@click.option("--realm", required=True, help="Your realm (its directory checks the password).")
@click.option("--username", required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin (default when not a tty).")
def login(url: str, realm: str, username: str, password_stdin: bool) -> None:
    """Log in with a password (OAuth2 password grant) and store the tokens (mode 0600)."""
    url = url.rstrip("/")
    password = _read_password(password_stdin)
    with StsApi(url) as api:
        tokens = oauth.password_grant(api, realm, username, password)
    store_session(url, realm, username, tokens)
    click.echo(f"logged in to {url} as {username} ({realm}); token valid for {tokens.expires_in}s")


@click.command(cls=ApiCommand)
@URL_OPTION
def logout(url: str | None) -> None:
    """Revoke the stored tokens at the STS (RFC 7009) and delete them."""
    base = resolve_url(url)
    session = forget_session(base)
    if session is None:
        click.echo(f"not logged in to {base}")
        return
    with StsApi(base) as api:
        for token in (session.refresh_token, session.access_token):
            if token:
                oauth.revoke(api, session.realm, token)
    click.echo(f"logged out of {base}")


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


def _remote_login(user: str, password_file: Path | None, stdin_taken: bool) -> dict[str, str]:
    """``remote_credentials`` for the spec's remote host: the password from a file, the terminal
    or standard input, never from the command line (ps shows those)."""
    if password_file is not None:
        password = password_file.read_text(encoding="utf-8").split("\n", 1)[0].rstrip("\r")
    elif sys.stdin.isatty():
        password = str(click.prompt(f"Password of {user} on the remote host", hide_input=True, err=True))
    elif stdin_taken:
        raise click.UsageError("--credentials-from-prompt already reads stdin; give --remote-password-file FILE")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise click.UsageError("the remote host's password is empty")
    return {"user": user, "password": password}


def _summary(job: dict[str, Any]) -> str:
    code = f" code={job['code']}" if job.get("code") else ""
    return f"{job['id']}\t{job['state']}\t{job['node']}\t{job['type']}\t{job['submitter']}{code}"


@click.command(cls=ApiCommand, context_settings={"ignore_unknown_options": True})
@URL_OPTION
@click.option("--node", required=True, help="Target node id.")
@click.option("--type", "job_type", required=True, help="Job type (the node maps it to a required role).")
@click.option("--not-before", default=None, help="Epoch seconds or RFC 3339 with a zone.")
@click.option("--deadline", default=None, help="Epoch seconds or RFC 3339 with a zone (capped by realm policy).")
@click.option("--env", "env_pairs", multiple=True, metavar="NAME=VALUE", help="Environment addition (repeatable).")
@click.option("--cwd", default=None, help="Absolute working directory on the node.")
@click.option("--timeout", type=int, default=None, help="Seconds the job may run.")
@click.option("--authgroup", default=None, help="Authorization group of the node.")
@click.option(
    "--credentials-from-prompt",
    is_flag=True,
    help="Ask for a username and password of the node's realm (stdin when not a tty); never stored.",
)
@click.option("--credentials-username", default=None, help="Username for --credentials-from-prompt.")
@click.option("--remote-host", default=None, help="Run on this remote host of the node (over SSH).")
@click.option("--credential", default=None, help="Credential key of the agent's store (remote login or sudo password).")
@click.option("--sudo-user", default=None, help="On the remote host, sudo to this user after login.")
@click.option(
    "--remote-user",
    default=None,
    help="Log in to --remote-host as USER; the password comes from --remote-password-file, the terminal or stdin "
    "(sealed by the STS to the node's key).",
)
@click.option(
    "--remote-password-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Read the --remote-user password from the first line of FILE.",
)
@click.option("--idempotency-key", default=None, help="Default: a fresh random key per invocation.")
@click.option("--wait", is_flag=True, help="Follow the job until it ends; exit with its outcome.")
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
@click.argument("argv", nargs=-1, required=True, type=click.UNPROCESSED)
def submit(
    url: str | None,
    node: str,
    job_type: str,
    not_before: str | None,
    deadline: str | None,
    env_pairs: tuple[str, ...],
    cwd: str | None,
    timeout: int | None,
    authgroup: str | None,
    credentials_from_prompt: bool,
    credentials_username: str | None,
    remote_host: str | None,
    credential: str | None,
    sudo_user: str | None,
    remote_user: str | None,
    remote_password_file: Path | None,
    idempotency_key: str | None,
    wait: bool,
    as_json: bool,
    argv: tuple[str, ...],
) -> None:
    """Submit a job: jobsts submit --node N --type T [options] -- ARGV..."""
    spec: dict[str, Any] = {"argv": list(argv), "env": _env_pairs(env_pairs)}
    named = (("cwd", cwd), ("timeout", timeout), ("authgroup", authgroup), ("remote_host", remote_host),
             ("credential", credential), ("sudo_user", sudo_user))  # fmt: skip
    for name, value in named:
        if value is not None:
            spec[name] = value
    body: dict[str, Any] = {"node": node, "type": job_type, "spec": spec}
    for name, text in (("not_before", not_before), ("deadline", deadline)):
        if text is not None:
            body[name] = int(text) if is_ascii_number(text) else text
    if credentials_from_prompt:
        body["credentials"] = _credentials(credentials_username)
    if remote_password_file is not None and remote_user is None:
        raise click.UsageError("--remote-password-file needs --remote-user")
    if remote_user is not None:
        body["remote_credentials"] = _remote_login(remote_user, remote_password_file, credentials_from_prompt)
    with user_api(url) as api:
        job = jobs_api.submit(api, body, idempotency_key or str(uuid.uuid4()))
        click.echo(json.dumps(job, indent=2) if as_json else _summary(job))
        if not wait:
            return
        final = jobs_api.follow(api, job["id"], on_change=_progress(time.monotonic()))
    click.echo(_summary(final))
    _print_outcome(final)
    status = EXIT_CODES[final["state"]]
    exit_code = (final.get("result") or {}).get("exit_code")
    shown = f"job exit code {exit_code}; " if exit_code is not None else ""
    click.echo(f"{final['state']}: {shown}jobsts exits {status}", err=True)
    sys.exit(status)


def _progress(started: float) -> Callable[[dict[str, Any]], None]:
    """Print each state change on stderr with the seconds since the wait began."""

    def show(job: dict[str, Any]) -> None:
        click.echo(f"[{time.monotonic() - started:6.1f}s] {job['id']} {job['state']}", err=True)

    return show


def _print_outcome(job: dict[str, Any]) -> None:
    """The captured output tails (stdout, stderr) and any refusal code and reason."""
    result = job.get("result") or {}
    if result.get("stdout_tail"):
        click.echo(result["stdout_tail"], nl=False)
    if result.get("stderr_tail"):
        click.echo(result["stderr_tail"], nl=False, err=True)
    if job.get("code") or result.get("reason"):
        said = " ".join(str(part) for part in (job.get("code"), result.get("reason")) if part)
        click.echo(f"{job['state']}: {said}", err=True)


@click.group(cls=ApiGroup)
def jobs() -> None:
    """Job history, output and cancel."""


@jobs.command("list")
@URL_OPTION
@click.option("--state", default=None)
@click.option("--node", default=None)
@click.option("--submitter", default=None, help="Access ID of the submitter.")
@click.option("--limit", type=int, default=100)
@click.option("--json", "as_json", is_flag=True)
def jobs_list(
    url: str | None, state: str | None, node: str | None, submitter: str | None, limit: int, as_json: bool
) -> None:
    """List jobs, newest first (monitors see all; others their own)."""
    filters = {"state": state, "node": node, "submitter": submitter, "limit": limit}
    with user_api(url) as api:
        found = jobs_api.list_jobs(api, {name: value for name, value in filters.items() if value is not None})
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    for job in found:
        click.echo(_summary(job))


@jobs.command("show")
@URL_OPTION
@JSON_OPTION
@click.argument("job_id")
def jobs_show(url: str | None, as_json: bool, job_id: str) -> None:
    """Show one job (never its token): a summary, or the whole document with --json."""
    with user_api(url) as api:
        job = jobs_api.show(api, job_id)
    if as_json:
        click.echo(json.dumps(job, indent=2))
        return
    click.echo(_summary(job))
    for name in ("created_at", "started_at", "finished_at"):
        if job.get(name) is not None:
            click.echo(f"{name}\t{job[name]}")
    exit_code = (job.get("result") or {}).get("exit_code")
    if exit_code is not None:
        click.echo(f"exit_code\t{exit_code}")


@jobs.command("logs")
@URL_OPTION
@click.option("-f", "--follow", "follow", is_flag=True, help="Wait until the job ends, showing state changes.")
@click.argument("job_id")
def jobs_logs(url: str | None, follow: bool, job_id: str) -> None:
    """Print a job's captured output: stdout tail on stdout, stderr tail on stderr (64 KiB each).

    The agent reports output when the job ends; ``-f`` waits for that."""
    with user_api(url) as api:
        if follow:
            job = jobs_api.follow(api, job_id, on_change=_progress(time.monotonic()))
        else:
            job = jobs_api.show(api, job_id)
    if job.get("state") not in jobs_api.TERMINAL_STATES:
        click.echo(f"{job_id} is {job.get('state')}: no output yet (use -f to wait)", err=True)
        return
    _print_outcome(job)


@jobs.command("cancel")
@URL_OPTION
@click.argument("job_id")
def jobs_cancel(url: str | None, job_id: str) -> None:
    """Cancel a queued or leased job (its submitter or an administrator); revokes its token."""
    with user_api(url) as api:
        job = jobs_api.cancel(api, job_id)
    click.echo(_summary(job))


@click.command(cls=ApiCommand)
@URL_OPTION
def token(url: str | None) -> None:
    """Print the current access token (refreshed first if needed), e.g. for curl:

    curl -H "Authorization: Bearer $(jobsts token)" ..."""
    with user_api(url) as api:
        api.call_json("GET", "/api/v1/me", "the token check")  # refreshes an expiring or refused token
        click.echo(current_login(api.base_url).access_token)


@click.command(cls=ApiCommand)
@URL_OPTION
@JSON_OPTION
def whoami(url: str | None, as_json: bool) -> None:
    """Show who the STS says you are: realm, access ID, groups and the job manager's roles you hold."""
    with user_api(url) as api:
        me = api.call_json("GET", "/api/v1/me", "whoami")
    if as_json:
        click.echo(json.dumps(me, indent=2))
        return
    click.echo(f"realm\t{me.get('realm')}\naccess_id\t{me.get('access_id')}")
    for group in me.get("groups") or []:
        click.echo(f"group\t{group}")
    click.echo(f"roles\t{', '.join(me.get('roles') or []) or '(none)'}")
