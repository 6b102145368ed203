"""The administrator's endpoints: ``/api/v1/nodes`` and ``/api/v1/access-ids``."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from agent_client.api.client import StsApi


def _node_path(node_id: str) -> str:
    return f"/api/v1/nodes/{quote(node_id, safe='')}"


def register_node(api: StsApi, body: dict[str, Any]) -> dict[str, Any]:
    return api.call_json("POST", "/api/v1/nodes", f"the registration of node {body.get('id')}", json=body)


def update_node(api: StsApi, node_id: str, body: dict[str, Any]) -> dict[str, Any]:
    return api.call_json("PATCH", _node_path(node_id), f"the update of node {node_id}", json=body)


def unregister_node(api: StsApi, node_id: str) -> None:
    api.call("DELETE", _node_path(node_id), f"the removal of node {node_id}")


def list_nodes(api: StsApi) -> list[dict[str, Any]]:
    nodes = api.call_json("GET", "/api/v1/nodes", "the node list").get("nodes")
    return [node for node in nodes if isinstance(node, dict)] if isinstance(nodes, list) else []


def show_node(api: StsApi, node_id: str) -> dict[str, Any]:
    return api.call_json("GET", _node_path(node_id), f"node {node_id}")


def access_id(api: StsApi, realm: str, username: str) -> dict[str, Any]:
    """A user's access ID and groups, as the realm's directory has them (monitor role)."""
    path = f"/api/v1/access-ids/{quote(realm, safe='')}/{quote(username, safe='')}"
    return api.call_json("GET", path, f"the access ID of {username} in realm {realm}")
