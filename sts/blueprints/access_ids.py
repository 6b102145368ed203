"""``GET /api/v1/access-ids/<realm>/<username>`` (monitor): a user's access ID and groups,
looked up in the realm's directory: what an admin imports into another realm's tables."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from authz_tables.roles import Role
from sts.access_ids import access_id_view
from sts.auth import require_role
from sts.blueprints.discovery import hosted_realm
from sts.errors import UserUnknown
from sts.services import current_services

bp = Blueprint("access_ids", __name__, url_prefix="/api/v1/access-ids")


@bp.get("/<realm>/<username>")
@require_role(Role.MONITOR)
def show(realm: str, username: str) -> Response:
    principal = current_services().registries[hosted_realm(realm)].lookup(username)
    if principal is None:
        raise UserUnknown(f"realm {realm}: no user {username[:80]!r}", realm=realm)
    return jsonify(access_id_view(principal))
