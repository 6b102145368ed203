"""Node enrollment over the API: an administrator's join token, and the agent's enrollment with it."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from agent_client.api.client import StsApi


def create_join_token(api: StsApi, node_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """``POST /api/v1/nodes/<node>/join-tokens`` (administrator): a one-time token for ``node_id``."""
    path = f"/api/v1/nodes/{quote(node_id, safe='')}/join-tokens"
    return api.call_json("POST", path, f"a join token for node {node_id}", json=body)


def enroll(
    base_url: str,
    node_id: str,
    join_token: str,
    public_jwk: dict[str, str],
    trusted_realms: list[str],
    *,
    verify: bool | str = True,
) -> dict[str, Any]:
    """``POST /api/v1/nodes/enroll``: register this node's public key with a join token.

    ``verify`` is the configured TLS trust (a CA file, or the system's): the join token is a
    credential, sent only to an STS whose certificate that trust accepts."""
    body = {"node": node_id, "join_token": join_token, "public_jwk": public_jwk, "trusted_realms": trusted_realms}
    with StsApi(base_url, caller=f"node {node_id}", verify=verify) as api:
        return api.call_json(
            "POST", "/api/v1/nodes/enroll", f"the enrollment of node {node_id}", json=body, anonymous=True
        )
