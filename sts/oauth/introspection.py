"""Token introspection (RFC 7662) and revocation (RFC 7009), per realm.

Introspection callers must authenticate (§2.1). Introspection is for resource servers (§1, §4):
a registered node with its agent token (job tokens only when addressed to it), and a person
holding ``administrator`` on the job manager. Any other person may introspect only their own
tokens; every other token answers ``{"active": false}`` (§2.2), so nothing about it leaks.
Revocation needs only the token itself, as for any public client: whoever holds a token may
end it. Revoked access-token jtis are kept
until the token expires and are served to agents as the revocation list.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from authz_tables.roles import Role
from realms.errors import JobstsError
from realms.tokens import ACCESS_TOKEN, AGENT_TOKEN, JOB_TOKEN, TokenProfile, VerifiedToken, verify
from realms.tokens.jws import parse_compact
from sts.errors import AuthRequired
from sts.http.auth import authenticated_caller, authenticated_node, caller_has
from sts.http.context import Caller
from sts.http.errors import oauth_endpoint
from sts.oauth import refresh_tokens
from sts.oauth.errors import GrantInvalid
from sts.oauth.revocation import is_revoked, revoke_jti
from sts.oauth.views import read_form
from sts.observability import audit
from sts.services import current_services

bp = Blueprint("introspection", __name__)
INACTIVE: dict[str, Any] = {"active": False}
OPTIONAL_CLAIMS = ("groups", "preferred_username", "client_id", "job_id")


def _introspector() -> tuple[str | None, Caller | None]:
    """(node id, None) for an agent caller, (None, person) for a person who may introspect only
    their own tokens, (None, None) for an administrator; a refusal is a 401 (RFC 7662 §2.1)."""
    try:
        return authenticated_node().id, None
    except AuthRequired:
        raise
    except JobstsError:
        pass  # not an agent token: perhaps a person's access token
    caller = authenticated_caller()
    # Why: monitor is held by every operator through the lattice; introspection answers who holds
    # a token (usernames, groups), which only resource servers and administrators may learn.
    if caller_has(Role.ADMINISTRATOR):
        return None, None
    return None, caller


def _verified(realm: str, token: str, node_id: str | None) -> VerifiedToken | None:
    services = current_services()
    resolver = services.keys.trust_resolver()
    try:
        peeked = parse_compact(token)  # only to pick the profile; verify() checks everything
        typ = str(peeked.header.get("typ", "")).lower()
        audience = services.config.audience
        profile: TokenProfile = {"agent+jwt": AGENT_TOKEN, "job+jwt": JOB_TOKEN}.get(typ, ACCESS_TOKEN)
        if profile is JOB_TOKEN:
            audience = str(peeked.claims.get("aud", ""))
            # Why: a node may introspect only the job tokens addressed to it.
            if node_id is not None and audience != node_id:
                return None
        verified = verify(token, profile, resolver, audience=audience)
    except JobstsError:
        return None
    return verified if verified.realm == realm else None


@bp.post("/realms/<realm>/introspect")
def introspect(realm: str) -> Response:
    services = current_services()
    services.config.hosted_realm(realm)
    node_id, person = _introspector()
    token = read_form().get("token", "")
    if not token:
        raise GrantInvalid("the token parameter is required (RFC 7662 §2.1)")
    body: dict[str, Any] = INACTIVE
    if token.count(".") == 2:
        verified = _verified(realm, token, node_id)
        if verified is not None and person is not None and verified.claims["sub"] != str(person.access_id):
            verified = None  # Why: someone else's token; RFC 7662 §4 lets us answer inactive.
        if verified is not None:
            with services.db.session() as session:
                revoked = is_revoked(session, verified.claims["jti"])
            if not revoked:
                claims = verified.claims
                body = {
                    "active": True,
                    "token_type": verified.header.get("typ"),
                    "iss": claims["iss"],
                    "sub": claims["sub"],
                    "aud": claims["aud"],
                    "exp": claims["exp"],
                    "iat": claims["iat"],
                    "nbf": claims["nbf"],
                    "jti": claims["jti"],
                    "realm": verified.realm,
                    **{k: claims[k] for k in OPTIONAL_CLAIMS if k in claims},
                }
                if "preferred_username" in claims:
                    body["username"] = claims["preferred_username"]
    elif node_id is None:
        body = _refresh_view(realm, token, person)
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response


def _refresh_view(realm: str, token: str, person: Caller | None) -> dict[str, Any]:
    with current_services().db.session() as session:
        try:
            row = refresh_tokens.check(session, realm, token)
        except JobstsError:
            return INACTIVE
        if person is not None and (person.realm != realm or person.username != row.username):
            return INACTIVE  # someone else's refresh token
        return {
            "active": True,
            "token_type": "refresh_token",
            "username": row.username,
            "realm": realm,
            "iat": row.issued_at,
            "exp": row.expires_at,
        }


@bp.post("/realms/<realm>/revoke")
@oauth_endpoint
def revoke(realm: str) -> Response:
    services = current_services()
    services.config.hosted_realm(realm)
    token = read_form().get("token", "")
    if not token:
        # RFC 7009 §2.1: ``token`` is REQUIRED; its absence is an invalid_request (§2.2.1).
        raise GrantInvalid(f"realm {realm}: parameter token is required")
    if token.count(".") == 2:
        verified = _revocable(realm, token)
        if verified is not None:
            with services.db.session() as session:
                revoke_jti(session, verified.claims["jti"], int(verified.claims["exp"]), "revoked by holder")
            audit.record("token.revoked", actor=verified.subject, realm=realm, jti=verified.claims["jti"])
    elif token:
        with services.db.session() as session:
            row = refresh_tokens.find(session, realm, token)
            if row is not None:
                # RFC 7009 §2.1: revoking a refresh token ends its whole grant.
                refresh_tokens.revoke_family(session, row.family_id)
                audit.record("token.revoked", actor=None, realm=realm, profile="refresh_token", username=row.username)
    # RFC 7009 §2.2: the answer is 200 whether or not the token was valid, with no content.
    response = Response(status=200)
    del response.headers["Content-Type"]
    response.headers["Cache-Control"] = "no-store"
    return response


def _revocable(realm: str, token: str) -> VerifiedToken | None:
    services = current_services()
    for profile in (ACCESS_TOKEN, AGENT_TOKEN):
        try:
            verified = verify(token, profile, services.keys.trust_resolver(), audience=services.config.audience)
        except JobstsError:
            continue
        if verified.realm == realm:
            return verified
    return None
