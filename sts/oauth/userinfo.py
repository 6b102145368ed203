"""``/realms/<realm>/userinfo`` (OpenID Connect Core §5.3): the claims about the user behind an
access token of this realm. The token comes only in the Authorization header (RFC 6750 §2.1);
a refusal is a 401 with its ``WWW-Authenticate`` challenge (Core §5.3.3)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from realms.tokens import ACCESS_TOKEN
from realms.tokens.errors import TokenClaimInvalid
from sts.http.auth import bearer_token, verify_bearer
from sts.services import current_services

bp = Blueprint("userinfo", __name__)


@bp.route("/realms/<realm>/userinfo", methods=["GET", "POST"])
def userinfo(realm: str) -> Response:
    current_services().config.hosted_realm(realm)
    verified = verify_bearer(bearer_token(), ACCESS_TOKEN)
    # Why: a token of another realm speaks for a user of that realm, not of this one.
    if verified.realm != realm:
        raise TokenClaimInvalid(f"the access token was issued by realm {verified.realm}, not {realm}", claim="iss")
    claims = verified.claims
    body = {
        "sub": verified.subject,
        "preferred_username": claims.get("preferred_username"),
        "realm": verified.realm,
        "groups": sorted(str(g) for g in verified.vouched_groups()),
    }
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response
