"""``GET /realms/<realm>/jwks``: a realm's published public keys, as a JWK Set (RFC 7517 §5)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from sts.services import current_services

bp = Blueprint("jwks", __name__)


@bp.get("/realms/<realm>/jwks")
def jwks(realm: str) -> Response:
    services = current_services()
    services.config.hosted_realm(realm)
    response = jsonify(services.keys.jwks(realm))
    # Why: a cache may serve this copy for max-age; it is at most half the pre-publication
    # time, so every cache holds a new key before that key signs (RFC 9111 §5.2.2.1).
    response.headers["Cache-Control"] = f"public, max-age={services.keys.jwks_max_age(realm)}"
    response.content_type = "application/jwk-set+json"
    return response
