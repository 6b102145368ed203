"""Who is calling ``/api/v1``, and may they? Bearer ``at+jwt`` for people, ``agent+jwt`` for nodes.

RFC 6750: the token comes only from the ``Authorization: Bearer`` header (never the query
string), and a refusal is a 401 with ``WWW-Authenticate`` (§3; rendered by ``sts.http.errors``).
Roles come from the job manager's own authorization table (authz_tables), plus
``bootstrap_admins`` from the configuration, which are administrators. The verified caller or
node is kept in the request context, so each request verifies its token once.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar, cast

from flask import request
from sqlalchemy import Engine

from authz_tables.errors import AuthzDenied
from authz_tables.roles import Role
from realms.errors import AccessIdInvalid
from realms.identity.access_id import NODE_ID, AccessId, AccessIdKind
from realms.tokens import ACCESS_TOKEN, AGENT_TOKEN, TokenClaimInvalid, TokenMalformed, TokenProfile, VerifiedToken
from realms.tokens import verify as verify_token
from realms.tokens.errors import TokenRevoked
from realms.tokens.known_keys import jwk_thumbprint
from sts.errors import AuthRequired
from sts.http.context import Caller, request_context
from sts.nodes.auth_cache import NodeAuth
from sts.nodes.errors import NodeUnknown
from sts.nodes.models import Node
from sts.oauth.revocation import is_revoked
from sts.services import Services, current_services

F = TypeVar("F", bound=Callable[..., Any])
MAX_AUTHORIZATION_HEADER = 17 * 1024


class NodeNotRegistered(NodeUnknown):
    """An agent token whose node is not registered (in its realm): a refused bearer credential."""

    status: ClassVar[int] = 401


def _bearer() -> str:
    return bearer_of(request.headers.get("Authorization", ""))


def bearer_of(header: str) -> str:
    """The token of an ``Authorization: Bearer`` header value (RFC 6750 §2.1), or ``auth.required``."""
    scheme, _, token = header.partition(" ")
    if not header or scheme.lower() != "bearer" or not token.strip():
        raise AuthRequired("a bearer token is required (Authorization: Bearer <token>)")
    if len(header) > MAX_AUTHORIZATION_HEADER:
        raise TokenMalformed("bearer token is too long")
    return token.strip()


def bearer_token() -> str:
    """The bearer token of this request (RFC 6750 §2.1), or ``auth.required``."""
    return _bearer()


def _verify_signed(token: str, profile: TokenProfile, services: Services | None = None) -> VerifiedToken:
    services = services or current_services()
    # The leeway is the issuing realm's own, carried by its IssuerTrust.
    return verify_token(token, profile, services.keys.trust_resolver(), audience=services.config.audience)


def verify_bearer(token: str, profile: TokenProfile) -> VerifiedToken:
    """Verify a token this STS issued, as ``profile``, and refuse a revoked one."""
    verified = _verify_signed(token, profile)
    with current_services().db.session() as session:
        if is_revoked(session, verified.claims["jti"]):
            raise _revoked(verified)
    return verified


def _revoked(verified: VerifiedToken) -> TokenRevoked:
    return TokenRevoked(f"token {verified.claims['jti'][:64]} was revoked", realm=verified.realm)


def _node_and_revocation(
    services: Services, node_id: str, jti: str, engine: Engine | None, extra: Any, version: int | None = None
) -> NodeAuth:
    """The registered node and whether ``jti`` is revoked: from this process's cache when the
    authentication version has not moved (one primary-key read, or ``version`` read by the
    caller), else in one statement."""
    if NODE_ID.fullmatch(node_id) is None:
        with services.db.session() as session:
            return NodeAuth(None, is_revoked(session, jti))
    expression, params = extra if extra is not None else (None, {})
    return services.node_auth.lookup(
        engine or services.db.engine, node_id, jti, extra=expression, params=params, version=version
    )


def _caller_of(verified: VerifiedToken) -> Caller:
    username = verified.claims.get("preferred_username")
    return Caller(
        access_id=AccessId.parse(verified.subject),
        realm=verified.realm,
        username=username if isinstance(username, str) else None,
        groups=verified.vouched_groups(),
        token_jti=verified.claims["jti"],
        token_exp=int(verified.claims["exp"]),
    )


def authenticated_caller() -> Caller:
    """The verified caller of this request (kept in the request context)."""
    context = request_context()
    if context.caller is None:
        context.caller = _caller_of(verify_bearer(_bearer(), ACCESS_TOKEN))
    return context.caller


def _holds(caller: Caller, wanted: Role) -> bool:
    roles = request_context().roles
    if wanted not in roles:
        services = current_services()
        # Why: bootstrap admins exist so that a fresh install has a first administrator
        # before any table entry; they are administrators, which implies every other role.
        if caller.principals & set(services.config.bootstrap_admins):
            roles[wanted] = True
        else:
            roles[wanted] = services.authz.snapshot().decide(caller.principals, wanted).allowed
    return roles[wanted]


def caller_has(role: Role | str) -> bool:
    """Whether the authenticated caller holds ``role`` (or a role implying it) on the job manager."""
    return _holds(authenticated_caller(), role if isinstance(role, Role) else Role(role))


def _denied(caller: Caller, wanted: Role) -> AuthzDenied:
    return AuthzDenied(
        f"{caller.access_id} does not hold {wanted} on the job manager",
        principal=str(caller.access_id),
        role=wanted.value,
        scope="*",
    )


def caller_pending_revocation(role: Role) -> Caller:
    """The caller of this request, holding ``role``, verified except for the revocation check of
    its token, which the view does in its own transaction (``sts.jobs.submit``) and then reports
    with ``caller_confirmed``. This caller is NOT kept in the request context until then."""
    context = request_context()
    if context.caller is not None:
        caller = context.caller
    else:
        caller = _caller_of(_verify_signed(_bearer(), ACCESS_TOKEN))
    if not _holds(caller, role):
        # Why: a refused caller learns nothing more than before: a revoked token is answered
        # as revoked (401) before the role refusal (403), as on every other route.
        authenticated_caller()
        raise _denied(caller, role)
    return caller


def caller_confirmed(caller: Caller) -> None:
    """The view checked ``caller``'s token against the revocation list: keep it for this request."""
    request_context().caller = caller


def require_role(role: Role | str) -> Callable[[F], F]:
    """Decorator: 401 without a valid access token, 403 ``authz.denied`` without ``role``."""
    wanted = role if isinstance(role, Role) else Role(role)

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            caller = authenticated_caller()
            if not caller_has(wanted):
                raise _denied(caller, wanted)
            return view(*args, **kwargs)

        return cast(F, wrapper)

    return decorate


def authenticated_node() -> Node:
    """The registered node behind a verified agent token (kept in the request context)."""
    context = request_context()
    if context.node is not None:
        return context.node
    node, verified, _ = agent_node(current_services(), request.headers.get("Authorization", ""))
    context.node, context.agent_token = node, verified
    return node


def agent_node(
    services: Services,
    authorization: str,
    extra: tuple[Any, Callable[[str], dict[str, Any]]] | None = None,
    engine: Engine | None = None,
    version: int | None = None,
) -> tuple[Node, VerifiedToken, Any]:
    """The registered node behind the agent token of an ``Authorization`` header value, without a
    Flask request (the wait route calls it on its own threads). ``extra``, a scalar SQL
    expression and its bound values for the node id, is read in the same statement as the
    authentication (``NodeAuthCache.lookup``) and returned third; ``engine`` replaces the
    services' one; ``version``, the authentication version read after the request arrived,
    serves a cache hit without a statement. Refusals raise ``JobstsError``."""
    verified = _verify_signed(bearer_of(authorization), AGENT_TOKEN, services)
    try:
        subject = AccessId.parse(verified.subject)
    except AccessIdInvalid:
        raise TokenClaimInvalid("agent token subject is not node:<id>", claim="sub") from None
    if subject.kind is not AccessIdKind.NODE:
        raise TokenClaimInvalid("agent token subject is not node:<id>", claim="sub")
    found = _node_and_revocation(
        services,
        subject.name,
        verified.claims["jti"],
        engine,
        None if extra is None else (extra[0], extra[1](subject.name)),
        version,
    )
    node = found.node
    if found.revoked:
        raise _revoked(verified)
    # Why: a node may only act through the realm it was registered in; an agent token
    # from another realm for the same id is someone else's node.
    if node is None or node.realm != verified.realm:
        raise NodeNotRegistered(f"node {subject.name} is not registered in realm {verified.realm}", node=subject.name)
    # Why: the token is bound to the node key that obtained it (cnf.jkt); once an administrator
    # re-keys the node (say, its key leaked), a token got with the old key stops working at once,
    # not at its exp. The agent gets a new token with its new key on the 401.
    bound = _bound_key(verified)
    if bound is None or bound != _thumbprint(node.public_jwk):
        raise TokenRevoked(
            f"agent token {verified.claims['jti'][:64]} was issued for a key node {subject.name} no longer has "
            "(the node was re-keyed); get a new token with the node's current key",
            realm=verified.realm,
        )
    return node, verified, found.extra


def _bound_key(verified: VerifiedToken) -> str | None:
    confirmation = verified.claims.get("cnf")
    thumbprint = confirmation.get("jkt") if isinstance(confirmation, dict) else None
    return thumbprint if isinstance(thumbprint, str) else None


@functools.lru_cache(maxsize=4096)
def _thumbprint_of(canonical: str) -> str:
    return jwk_thumbprint(json.loads(canonical))


def _thumbprint(jwk: dict[str, Any]) -> str | None:
    """The RFC 7638 thumbprint of a registered node's JWK (memoised on its exact members); None
    for a JWK without its required members, which no token can be bound to."""
    try:
        return _thumbprint_of(json.dumps(jwk, sort_keys=True, separators=(",", ":")))
    except (KeyError, ValueError, TypeError):
        return None


def verify_agent_signature() -> None:
    """This request's bearer token verifies as an ``agent+jwt`` of this STS (signature, issuer,
    audience, lifetime; not yet its node or revocation): the gate before a large body is read."""
    _verify_signed(_bearer(), AGENT_TOKEN)


def require_agent(view: F) -> F:
    """Decorator for ``/api/v1/agent/*``: a valid agent token of a registered node, which is then
    ``request_context().node``."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        authenticated_node()
        return view(*args, **kwargs)

    return cast(F, wrapper)
