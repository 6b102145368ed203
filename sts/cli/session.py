"""The stored login of ``jobsts login``: tokens in ``$XDG_CONFIG_HOME/jobsts/tokens.json`` (0600).

Other client commands (``submit``, ``jobs``, ``node``, ...) call ``authorized_client()``
for an ``httpx.Client`` whose bearer token is fresh: an expired access token is refreshed
with the stored refresh token (which rotates) before the client is returned.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import click
import httpx

from sts.errors import SessionMissing

REFRESH_MARGIN_SECONDS = 30
TIMEOUT = httpx.Timeout(30.0, connect=10.0)


class _Transport(httpx.HTTPTransport):
    """Turns a network failure into one line for the user instead of a traceback."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return super().handle_request(request)
        except httpx.TransportError as exc:
            raise click.ClickException(f"sts.unreachable: cannot reach {request.url.copy_with(query=None)}: "
                                       f"{exc or type(exc).__name__}") from None


def http_client(**kwargs: Any) -> httpx.Client:
    """An ``httpx.Client`` for talking to the STS (timeouts set; network errors are one line)."""
    return httpx.Client(timeout=TIMEOUT, transport=_Transport(), **kwargs)


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "jobsts"


def tokens_path() -> Path:
    return config_dir() / "tokens.json"


def load_store() -> dict[str, Any]:
    path = tokens_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"default": None, "sessions": {}}
    except (OSError, ValueError):
        raise SessionMissing(f"{path} is unreadable; run jobsts login again") from None
    return data if isinstance(data, dict) and isinstance(data.get("sessions"), dict) else {"default": None,
                                                                                          "sessions": {}}


def save_store(store: dict[str, Any]) -> None:
    """Write atomically; the file is created 0600 in a 0700 directory, never wider, not even briefly."""
    directory = config_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=directory, prefix=".tokens-", suffix=".json")  # mkstemp creates 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(store, handle, indent=2)
        os.chmod(temp, 0o600)
        os.replace(temp, tokens_path())
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def store_session(url: str, realm: str, username: str, body: dict[str, Any]) -> None:
    store = load_store()
    store["sessions"][url] = {"realm": realm, "username": username, "access_token": body["access_token"],
                              "refresh_token": body.get("refresh_token"),
                              "expires_at": int(time.time()) + int(body.get("expires_in", 0))}
    store["default"] = url
    save_store(store)


def forget_session(url: str) -> dict[str, Any] | None:
    store = load_store()
    session = store["sessions"].pop(url, None)
    if store.get("default") == url:
        store["default"] = next(iter(store["sessions"]), None)
    save_store(store)
    return session if isinstance(session, dict) else None


def resolve_url(url: str | None) -> str:
    chosen = url or os.environ.get("JOBSTS_URL") or load_store().get("default")
    if not chosen:
        raise SessionMissing("no STS URL: run jobsts login --url URL first, or pass --url")
    return str(chosen).rstrip("/")


def check(response: httpx.Response) -> Any:
    """The JSON body of a successful response; otherwise a one-line error naming the code."""
    if response.is_success:
        return response.json() if response.content else None
    try:
        body = response.json()
    except ValueError:
        body = {}
    code = body.get("code") or body.get("error") or f"http.{response.status_code}"
    detail = body.get("detail") or body.get("error_description") or response.reason_phrase
    raise click.ClickException(f"{code}: {detail}")


def _refresh(url: str, session: dict[str, Any]) -> dict[str, Any]:
    if not session.get("refresh_token"):
        raise SessionMissing(f"the login for {url} expired; run jobsts login again")
    with http_client() as http:
        response = http.post(f"{url}/realms/{session['realm']}/token", data={
            "grant_type": "refresh_token", "refresh_token": session["refresh_token"]})
    if response.status_code == 400:
        forget_session(url)
        raise SessionMissing(f"the login for {url} can no longer be refreshed; run jobsts login again")
    body = check(response)
    store_session(url, session["realm"], session["username"], body)
    return dict(load_store()["sessions"][url])


def current_session(url: str | None = None) -> tuple[str, dict[str, Any]]:
    """The base URL and a fresh stored session for it (refreshed when about to expire)."""
    base = resolve_url(url)
    session = load_store()["sessions"].get(base)
    if not isinstance(session, dict):
        raise SessionMissing(f"not logged in to {base}; run jobsts login --url {base} --realm R --username U")
    if int(session.get("expires_at", 0)) - REFRESH_MARGIN_SECONDS <= time.time():
        session = _refresh(base, session)
    return base, session


def authorized_client(url: str | None = None) -> httpx.Client:
    """An ``httpx.Client`` on the STS with a fresh ``Authorization: Bearer`` header. Close it."""
    base, session = current_session(url)
    return http_client(base_url=base, headers={"Authorization": f"Bearer {session['access_token']}"})
