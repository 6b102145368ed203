"""``GET /api/v1/access-ids/<realm>/<username>`` (monitor): a user's access ID and groups,
looked up in the realm's directory: what an admin imports into another realm's tables."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from authz_tables.roles import Role
from realms.errors import UserUnknown
from realms.identity.principal import access_id_view
from sts.http.auth import require_role
from sts.services import current_services

bp = Blueprint("access_ids", __name__, url_prefix="/api/v1/access-ids")


@bp.get("/<realm>/<username>")
@require_role(Role.MONITOR)
def show(realm: str, username: str) -> Response:
    services = current_services()
    services.config.hosted_realm(realm)
    principal = services.registries[realm].lookup(username)
    if principal is None:
        raise UserUnknown(f"realm {realm}: no user {username[:80]!r}", realm=realm)
    return jsonify(access_id_view(principal))
