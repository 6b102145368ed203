"""Per-realm discovery (OpenID Connect Discovery 1.0 §4, RFC 8414) and the JWK Set (RFC 7517).

Every URL is built from the configured ``base_url``; the request's Host header is never used.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from realms.tokens.profiles import SIGNING_ALGORITHMS
from sts.errors import RealmUnknown
from sts.services import current_services

bp = Blueprint("discovery", __name__)
JWKS_MAX_AGE = 300
DISCOVERY_MAX_AGE = 3600


def hosted_realm(realm: str) -> str:
    if realm not in current_services().config.realms:
        raise RealmUnknown(f"realm {realm[:80]!r} is not hosted by this STS", realm=realm[:80])
    return realm


def metadata(realm: str) -> dict[str, Any]:
    services = current_services()
    issuer = services.config.issuer(realm)
    algorithm = services.config.realms[realm].token.algorithm
    return {
        "issuer": issuer,
        "token_endpoint": f"{issuer}/token",
        "jwks_uri": f"{issuer}/jwks",
        "introspection_endpoint": f"{issuer}/introspect",
        "revocation_endpoint": f"{issuer}/revoke",
        "grant_types_supported": ["password", "refresh_token", "client_credentials",
                                  "urn:ietf:params:oauth:grant-type:token-exchange"],
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [algorithm],
        "token_endpoint_auth_methods_supported": ["none", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": list(SIGNING_ALGORITHMS),
        "introspection_endpoint_auth_methods_supported": ["bearer"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "access_token_signing_alg_values_supported": [algorithm],
    }


def _cached(body: dict[str, Any], max_age: int) -> Response:
    response = jsonify(body)
    response.headers["Cache-Control"] = f"public, max-age={max_age}"
    return response


@bp.get("/realms/<realm>/.well-known/openid-configuration")
def openid_configuration(realm: str) -> Response:
    return _cached(metadata(hosted_realm(realm)), DISCOVERY_MAX_AGE)


@bp.get("/realms/<realm>/jwks")
def jwks(realm: str) -> Response:
    response = _cached(current_services().keys.jwks(hosted_realm(realm)), JWKS_MAX_AGE)
    response.content_type = "application/jwk-set+json"
    return response
