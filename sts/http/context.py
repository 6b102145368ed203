"""What is known about the current request, computed once: the client's address, and (after
bearer authentication) the verified caller or node, for throttling, audit, jobs and nodes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from flask import Flask, g, has_request_context, request

from authz_tables.roles import Role
from realms.identity.access_id import ALL_AUTHENTICATED, EVERYONE, AccessId
from sts.observability import audit
from sts.services import current_services

if TYPE_CHECKING:
    from realms.tokens import VerifiedToken
    from sts.nodes.models import Node

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Caller:
    """The person behind a verified access token."""

    access_id: AccessId
    realm: str
    username: str | None
    groups: frozenset[AccessId]
    token_jti: str
    token_exp: int

    @property
    def principals(self) -> frozenset[AccessId]:
        """{sub} + vouched groups + the special subjects. Every hosted realm is the job
        manager's own, so ALL_AUTHENTICATED applies to a user of any of them."""
        return frozenset({self.access_id, *self.groups, ALL_AUTHENTICATED, EVERYONE})


@dataclass(slots=True)
class RequestContext:
    """One per request (on ``flask.g``). The authentication slots are filled by ``sts.http.auth``."""

    client_address: str
    # Errors of this request are answered in RFC 6749 §5.2 form (set by ``oauth_endpoint``).
    oauth_form: bool = False
    caller: Caller | None = None
    roles: dict[Role, bool] = field(default_factory=dict)
    node: Node | None = None
    agent_token: VerifiedToken | None = None


def request_context() -> RequestContext:
    """This request's context, made on first use."""
    context: RequestContext | None = g.get("jobsts_request")
    if context is None:
        context = RequestContext(
            client_address(
                request.remote_addr, request.headers.get("X-Forwarded-For"), current_services().config.trusted_proxies
            )
        )
        g.jobsts_request = context
    return context


def client_address(remote_addr: str | None, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    """The client's address: ``X-Forwarded-For`` is believed only when the peer is a trusted proxy.

    Walking from the right, the first address not itself a trusted proxy is the client;
    anything further left was written by the client and could be forged.
    """
    peer = remote_addr or "unknown"
    if not forwarded_for or not _is_trusted(peer, trusted):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted):
            return hop if _is_address(hop) else peer
    return hops[0] if hops and _is_address(hops[0]) else peer


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_trusted(text: str, trusted: Sequence[Network]) -> bool:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    return any(address in network for network in trusted)


def _audit_client() -> str | None:
    return request_context().client_address if has_request_context() else None


def init_app(app: Flask) -> None:
    """Give the audit log the client address of the request it is written in."""
    audit.set_client_source(_audit_client)
