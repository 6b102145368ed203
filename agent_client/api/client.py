"""``StsApi``: the one HTTP client of the STS, over httpx, for the submitter's CLI and the agent.

The bearer token comes from an ``httpx.Auth`` flow (``agent_client.api.auth``): the stored
login of ``jobsts login`` for people, client credentials for an agent. Every answer that is
not a success becomes an error (``agent_client.api.problems``); no caller sees an httpx error.
"""

from __future__ import annotations

from typing import Any

import httpx

from agent_client.api.problems import malformed, refusal, unreachable

TIMEOUT = httpx.Timeout(30.0, connect=10.0)


class StsApi:
    """A session with one STS. ``caller`` names who calls (``node n1``) in error messages."""

    def __init__(
        self,
        base_url: str,
        auth: httpx.Auth | None = None,
        *,
        caller: str = "",
        verify: bool | str = True,
        timeout: httpx.Timeout | float = TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self.caller = caller
        self._http = httpx.Client(
            base_url=self.base_url,
            auth=auth,
            verify=verify,
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> StsApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(
        self, method: str, path: str, what: str, *, anonymous: bool = False, check: bool = True, **kwargs: Any
    ) -> httpx.Response:
        """One request; ``anonymous`` sends no token (token endpoint, JWKS); ``check`` turns a
        refusal into an error. ``what`` names the request in messages ("job 1234", "a lease")."""
        if anonymous:
            kwargs["auth"] = None
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise unreachable(self.base_url, exc) from None
        if check and not response.is_success:
            raise refusal(response, self.base_url, what, self.caller)
        return response

    def call_json(self, method: str, path: str, what: str, **kwargs: Any) -> dict[str, Any]:
        """``call`` for an answer that must be a JSON object."""
        response = self.call(method, path, what, **kwargs)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise malformed(f"answer to {what}", self.caller, "not a JSON object")
        return body
