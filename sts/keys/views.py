"""``GET /realms/<realm>/jwks``: a realm's published public keys, as a JWK Set (RFC 7517 §5)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from sts.services import current_services

bp = Blueprint("jwks", __name__)
JWKS_MAX_AGE = 300


@bp.get("/realms/<realm>/jwks")
def jwks(realm: str) -> Response:
    services = current_services()
    services.config.hosted_realm(realm)
    response = jsonify(services.keys.jwks(realm))
    response.headers["Cache-Control"] = f"public, max-age={JWKS_MAX_AGE}"
    response.content_type = "application/jwk-set+json"
    return response
