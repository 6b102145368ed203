"""The stored login of ``jobsts login``: tokens in ``$XDG_CONFIG_HOME/jobsts/tokens.json`` (0600).

One session per STS URL (realm, username, access and refresh token, expiry) and a default URL.
The file is only ever replaced whole, created 0600 in a 0700 directory.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent_client.api.oauth import TokenResponse
from agent_client.errors import SessionMissing


@dataclass(frozen=True, slots=True)
class StoredLogin:
    """One session of the tokens file."""

    url: str
    realm: str
    username: str
    access_token: str
    refresh_token: str | None
    expires_at: int
    lifetime: int = 300

    def refresh_margin(self, most: int) -> int:
        """Seconds before expiry to refresh: ``most``, but at most a quarter of the token's lifetime
        (a 3-second token is used for 3 seconds, not refreshed on every request)."""
        return min(most, self.lifetime // 4)


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
    if isinstance(data, dict) and isinstance(data.get("sessions"), dict):
        return data
    return {"default": None, "sessions": {}}


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


def store_session(url: str, realm: str, username: str, tokens: TokenResponse) -> None:
    """Store (or replace) the login for ``url`` and make it the default."""
    store = load_store()
    store["sessions"][url] = {
        "realm": realm,
        "username": username,
        "access_token": tokens.access_token,
        "refresh_token": tokens.refresh_token,
        "expires_at": int(time.time()) + tokens.expires_in,
        "lifetime": tokens.expires_in,
    }
    store["default"] = url
    save_store(store)


def forget_session(url: str) -> StoredLogin | None:
    """Remove the login for ``url``; returns it (to revoke its tokens), or None."""
    store = load_store()
    found = stored_login(store, url)
    store["sessions"].pop(url, None)
    if store.get("default") == url:
        store["default"] = next(iter(store["sessions"]), None)
    save_store(store)
    return found


def stored_login(store: dict[str, Any], url: str) -> StoredLogin | None:
    session = store["sessions"].get(url)
    if not isinstance(session, dict):
        return None
    try:
        return StoredLogin(
            url,
            str(session["realm"]),
            str(session["username"]),
            str(session["access_token"]),
            session.get("refresh_token"),
            int(session.get("expires_at", 0)),
            int(session.get("lifetime", 300)),
        )
    except (KeyError, TypeError, ValueError):
        raise SessionMissing(f"the login for {url} in {tokens_path()} is damaged; run jobsts login again") from None


def current_login(url: str) -> StoredLogin:
    """The stored login for ``url``, or ``session.missing``."""
    found = stored_login(load_store(), url)
    if found is None:
        raise SessionMissing(f"not logged in to {url}; run jobsts login --url {url} --realm R --username U")
    return found


def resolve_url(url: str | None) -> str:
    """``url``, else ``JOBSTS_URL``, else the last login's URL."""
    chosen = url or os.environ.get("JOBSTS_URL") or load_store().get("default")
    if not chosen:
        raise SessionMissing("no STS URL: run jobsts login --url URL first, or pass --url")
    return str(chosen).rstrip("/")
