"""The token endpoint (RFC 6749 §3.2; the grant class is picked by ``grant_type``) and per-realm
discovery (OpenID Connect Discovery 1.0 §4, RFC 8414).

Every URL is built from the configured ``base_url``; the request's Host header is never used.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from realms.tokens.profiles import SIGNING_ALGORITHMS
from sts.http.context import request_context
from sts.http.errors import oauth_endpoint
from sts.keys.store import ID_TOKEN_ALGORITHM
from sts.oauth.authorization_request import SUPPORTED_SCOPES
from sts.oauth.errors import GrantInvalid, GrantTypeUnsupported
from sts.oauth.grants import GRANTS
from sts.oauth.public_clients import refuse_basic_authentication
from sts.services import current_services

bp = Blueprint("oauth", __name__)
DISCOVERY_MAX_AGE = 3600


def read_form() -> dict[str, str]:
    """The form body, refusing what RFC 6749 forbids: other media types, repeated parameters
    (§3.2), and parameters in the query string, where they would end up in logs."""
    if request.mimetype != "application/x-www-form-urlencoded":
        raise GrantInvalid("the body must be application/x-www-form-urlencoded")
    if request.args:
        raise GrantInvalid("parameters must be sent in the body, not the query string")
    form = request.form
    repeated = [name for name in form if len(form.getlist(name)) > 1]
    if repeated:
        raise GrantInvalid(f"parameter {repeated[0][:40]!r} is repeated")
    return {name: form[name] for name in form}


@bp.post("/realms/<realm>/token")
@oauth_endpoint
def token(realm: str) -> Response:
    services = current_services()
    services.config.hosted_realm(realm)
    refuse_basic_authentication()
    form = read_form()
    grant_type = form.get("grant_type")
    grant_class = GRANTS.get(grant_type or "")
    if grant_class is None:
        raise GrantTypeUnsupported(f"grant_type {str(grant_type)[:60]!r} is not supported")
    body = grant_class(services, realm, form, request_context().client_address).issue()
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    services.housekeeper.maybe_run()
    return response


def oauth_metadata(realm: str) -> dict[str, Any]:
    """The realm's authorization server metadata (RFC 8414 §2): exactly what is served."""
    services = current_services()
    issuer = services.config.issuer(realm)
    algorithm = services.config.hosted_realm(realm).token.algorithm
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "jwks_uri": f"{issuer}/jwks",
        "introspection_endpoint": f"{issuer}/introspect",
        "revocation_endpoint": f"{issuer}/revoke",
        "scopes_supported": list(SUPPORTED_SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": list(GRANTS),
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": list(SIGNING_ALGORITHMS),
        # Why: introspection callers authenticate with a bearer token, which has no name in the IANA
        # registry of endpoint auth methods (RFC 8414 §2), so introspection_endpoint_auth_methods_
        # supported is left out rather than filled with an unregistered name.
        "revocation_endpoint_auth_methods_supported": ["none"],
        "authorization_response_iss_parameter_supported": True,
        "access_token_signing_alg_values_supported": [algorithm],
    }


def metadata(realm: str) -> dict[str, Any]:
    """OpenID Provider Metadata (OpenID Connect Discovery 1.0 §3): RFC 8414's plus the OpenID
    members. ID tokens are always signed with RS256, the one algorithm every relying party
    must support (Core §15.1), by the realm's RS256 key (its own, or a second ID-token key)."""
    services = current_services()
    issuer = services.config.issuer(realm)
    return {
        **oauth_metadata(realm),
        "userinfo_endpoint": f"{issuer}/userinfo",
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [ID_TOKEN_ALGORITHM],
        "claims_supported": [
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "azp",
            "at_hash",
            "preferred_username",
            "realm",
            "groups",
        ],
    }


def _cached_json(document: dict[str, Any]) -> Response:
    response = jsonify(document)
    response.headers["Cache-Control"] = f"public, max-age={DISCOVERY_MAX_AGE}"
    return response


@bp.get("/realms/<realm>/.well-known/openid-configuration")
def openid_configuration(realm: str) -> Response:
    return _cached_json(metadata(realm))


@bp.get("/.well-known/oauth-authorization-server/realms/<realm>")
def authorization_server_metadata(realm: str) -> Response:
    """RFC 8414 §3.1: the well-known suffix goes between the host and the issuer's path."""
    return _cached_json(oauth_metadata(realm))
