"""``/api/v1/nodes``: register, update, unregister (administrator) and read (monitor) nodes."""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Response, jsonify, request

from authz_tables.roles import Role
from sts.http.auth import authenticated_caller, require_role
from sts.nodes.errors import NodeInvalid, NodeUnknown
from sts.nodes.models import Node
from sts.nodes.presence import is_connected
from sts.nodes.service import get_node, list_nodes, register_node, unregister_node, update_node
from sts.observability import audit
from sts.services import current_services

bp = Blueprint("nodes", __name__, url_prefix="/api/v1/nodes")


def node_view(node: Node) -> dict[str, Any]:
    """A registered node as the API shows it."""
    return {
        "id": node.id,
        "realm": node.realm,
        "authgroups": list(node.authgroups),
        "public_jwk": dict(node.public_jwk),
        "trusted_realms": list(node.trusted_realms),
        "created_at": node.created_at,
        "created_by": node.created_by,
        "updated_at": node.updated_at,
        "updated_by": node.updated_by,
        "last_seen_at": node.last_seen_at,
        "connected": is_connected(node.last_seen_at, int(time.time())),
    }


def _json_body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise NodeInvalid("the body must be a JSON object")
    return body


@bp.get("")
@require_role(Role.MONITOR)
def list_all() -> Response:
    with current_services().db.session() as session:
        return jsonify({"nodes": [node_view(n) for n in list_nodes(session)]})


@bp.post("")
@require_role(Role.ADMINISTRATOR)
def register() -> tuple[Response, int]:
    services = current_services()
    body = _json_body()
    actor = str(authenticated_caller().access_id)
    # Why: a read-then-write transaction; on SQLite it must hold the write lock from BEGIN, or a
    # concurrent writer in another process makes its upgrade fail at once (WAL busy snapshot).
    with services.db.session(immediate=True) as session:
        node = register_node(session, body, services.config.realms, actor)
        view = node_view(node)
    audit.record(
        "node.registered",
        actor=actor,
        realm=node.realm,
        node=node.id,
        trusted_realms=list(node.trusted_realms),
        authgroups=list(node.authgroups),
    )
    return jsonify(view), 201


@bp.get("/<node_id>")
@require_role(Role.MONITOR)
def show(node_id: str) -> Response:
    with current_services().db.session() as session:
        node = get_node(session, node_id)
        if node is None:
            raise NodeUnknown(f"node {node_id[:64]} is not registered", node=node_id[:64])
        return jsonify(node_view(node))


@bp.route("/<node_id>", methods=["PUT", "PATCH"])
@require_role(Role.ADMINISTRATOR)
def update(node_id: str) -> Response:
    services = current_services()
    body = _json_body()
    actor = str(authenticated_caller().access_id)
    with services.db.session(immediate=True) as session:
        node = update_node(session, node_id, body, services.config.realms, actor)
        view = node_view(node)
    audit.record(
        "node.updated",
        actor=actor,
        realm=node.realm,
        node=node.id,
        trusted_realms=list(node.trusted_realms),
        authgroups=list(node.authgroups),
    )
    return jsonify(view)


@bp.delete("/<node_id>")
@require_role(Role.ADMINISTRATOR)
def unregister(node_id: str) -> tuple[str, int]:
    with current_services().db.session(immediate=True) as session:
        unregister_node(session, node_id)
    audit.record("node.unregistered", actor=str(authenticated_caller().access_id), node=node_id[:64])
    return "", 204
