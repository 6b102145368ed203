"""A person's session with the STS: the stored login of ``jobsts login`` as the bearer token."""

from __future__ import annotations

from agent_client.api.auth import UserAuth
from agent_client.api.client import StsApi
from agent_client.api.login_store import current_login, resolve_url


def user_api(url: str | None = None) -> StsApi:
    """An ``StsApi`` on ``url`` (default: ``JOBSTS_URL``, else the last login) with its stored login. Close it."""
    base = resolve_url(url)
    current_login(base)  # fail here, before any request, when there is no login at all
    return StsApi(base, UserAuth(base))
