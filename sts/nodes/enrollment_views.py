"""``POST /api/v1/nodes/<node>/join-tokens`` (administrator) and ``POST /api/v1/nodes/enroll``
(the agent, with a join token): node enrollment (``sts.nodes.enrollment``)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from authz_tables.roles import Role
from realms.errors import JobstsError
from sts.http.auth import authenticated_caller, require_role
from sts.nodes.enrollment import create_join_token, enroll
from sts.nodes.errors import NodeInvalid
from sts.nodes.views import node_view
from sts.observability import audit
from sts.services import current_services

bp = Blueprint("node_enrollment", __name__, url_prefix="/api/v1/nodes")


def _json_body() -> dict[str, object]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise NodeInvalid("the body must be a JSON object")
    return body


@bp.post("/<node_id>/join-tokens")
@require_role(Role.ADMINISTRATOR)
def new_join_token(node_id: str) -> tuple[Response, int]:
    services = current_services()
    body = _json_body()
    actor = str(authenticated_caller().access_id)
    with services.db.session(immediate=True) as session:
        issued = create_join_token(session, body, node_id, services.config.realms, actor)
    audit.record("node.join_token.created", actor=actor, realm=issued.realm, node=node_id, expires_at=issued.expires_at)
    response = jsonify(
        {"join_token": issued.token, "node": issued.node_id, "realm": issued.realm, "expires_at": issued.expires_at}
    )
    # Why: the token is a credential shown once; no cache may keep a copy (RFC 9111 §5.2.2.5).
    response.headers["Cache-Control"] = "no-store"
    return response, 201


@bp.post("/enroll")
def enroll_node() -> tuple[Response, int]:
    services = current_services()
    body = _json_body()
    node_id = str(body.get("node"))[:64]
    try:
        with services.db.session(immediate=True) as session:
            node, created = enroll(session, body, services.config.realms)
            view = node_view(node)
    except JobstsError as exc:
        audit.record("node.enrolled", outcome="refused", node=node_id, code=exc.code)
        raise
    audit.record("node.enrolled", realm=node.realm, node=node.id, created=created, kid=view["public_jwk"].get("kid"))
    return jsonify(view), 201 if created else 200
