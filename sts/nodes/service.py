"""Registered nodes: the OAuth2 clients that authenticate with ``private_key_jwt`` (RFC 7523 §2.2).

A node has an id, a realm (one of this STS's realms: its agent tokens are issued there),
authorization groups, its public key as a JWK, and the trusted-realm list it reports.
Registering, updating and unregistering need the job manager's ``administrator`` role.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from realms.identity.access_id import NODE_ID, REALM_NAME
from realms.tokens.keys import PRIVATE_MEMBERS, VerificationKey, public_jwk, verification_key_from_jwk
from realms.tokens.profiles import SIGNING_ALGORITHMS
from sts.nodes.errors import NodeExists, NodeInvalid, NodeUnknown
from sts.nodes.models import Node

MAX_LIST = 64


def get_node(session: Session, node_id: str) -> Node | None:
    """The registered node, or ``None``."""
    if not isinstance(node_id, str) or NODE_ID.fullmatch(node_id) is None:
        return None
    return session.get(Node, node_id)


def list_nodes(session: Session) -> list[Node]:
    return list(session.scalars(select(Node).order_by(Node.id)))


def node_key(node: Node) -> VerificationKey:
    """The node's stored public key, pinned to its algorithm."""
    key = verification_key_from_jwk(dict(node.public_jwk), frozenset(SIGNING_ALGORITHMS))
    if key is None:
        raise NodeInvalid(f"node {node.id}: stored public key is unusable", node=node.id)
    return key


def _names(node_id: str, field: str, value: Any) -> list[str]:
    if not isinstance(value, list) or len(value) > MAX_LIST:
        raise NodeInvalid(f"node {node_id}: {field} must be a list of at most {MAX_LIST} names", node=node_id)
    for item in value:
        if not isinstance(item, str) or REALM_NAME.fullmatch(item) is None:
            raise NodeInvalid(f"node {node_id}: {field} entry {str(item)[:64]!r} is not a valid name", node=node_id)
    return sorted(set(value))


def _public_key(node_id: str, value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise NodeInvalid(f"node {node_id}: public_jwk must be a JWK object", node=node_id)
    # Why: a private key sent here would be stored and echoed; refuse it outright so an
    # operator notices the mistake (and rotates that key) instead of leaking it further.
    if PRIVATE_MEMBERS & value.keys():
        raise NodeInvalid(f"node {node_id}: public_jwk contains private key members", node=node_id)
    candidate = {**value, "kid": value.get("kid") or "pending"}
    key = verification_key_from_jwk(candidate, frozenset(SIGNING_ALGORITHMS))
    if key is None:
        raise NodeInvalid(
            f"node {node_id}: public_jwk must be a public EC P-256, Ed25519 or RSA>=2048 key with alg "
            f"{', '.join(SIGNING_ALGORITHMS)}",
            node=node_id,
        )
    return public_jwk(key.public_key, key.algorithm)


def _validated(
    node_id: str, body: Mapping[str, Any], hosted_realms: Iterable[str], current: Node | None
) -> dict[str, Any]:
    unknown = set(body) - {"id", "realm", "authgroups", "public_jwk", "trusted_realms"}
    if unknown:
        raise NodeInvalid(f"node {node_id}: unknown field {sorted(unknown)[0][:40]!r}", node=node_id)
    realm = body.get("realm", current.realm if current else None)
    if realm not in set(hosted_realms):
        raise NodeInvalid(f"node {node_id}: realm {str(realm)[:64]!r} is not hosted by this STS", node=node_id)
    if "public_jwk" not in body and current is None:
        raise NodeInvalid(f"node {node_id}: public_jwk is required", node=node_id)
    return {
        "realm": realm,
        "authgroups": _names(node_id, "authgroups", body.get("authgroups", current.authgroups if current else [])),
        "trusted_realms": _names(
            node_id, "trusted_realms", body.get("trusted_realms", current.trusted_realms if current else [])
        ),
        "public_jwk": _public_key(node_id, body["public_jwk"])
        if "public_jwk" in body
        else current.public_jwk
        if current
        else {},
    }


def register_node(session: Session, body: Mapping[str, Any], hosted_realms: Iterable[str], actor: str) -> Node:
    node_id = body.get("id")
    if not isinstance(node_id, str) or NODE_ID.fullmatch(node_id) is None:
        raise NodeInvalid(f"node id {str(node_id)[:64]!r} must match {NODE_ID.pattern}", node=str(node_id)[:64])
    values = _validated(node_id, body, hosted_realms, None)
    if session.get(Node, node_id) is not None:
        raise NodeExists(f"node {node_id} is already registered", node=node_id)
    now = int(time.time())
    node = Node(id=node_id, created_at=now, created_by=actor, updated_at=now, updated_by=actor, **values)
    session.add(node)
    session.flush()
    return node


def update_node(
    session: Session, node_id: str, body: Mapping[str, Any], hosted_realms: Iterable[str], actor: str
) -> Node:
    node = get_node(session, node_id)
    if node is None:
        raise NodeUnknown(f"node {node_id[:64]} is not registered", node=node_id[:64])
    if "id" in body and body["id"] != node_id:
        raise NodeInvalid(f"node {node_id}: the id cannot change", node=node_id)
    for name, value in _validated(node_id, body, hosted_realms, node).items():
        setattr(node, name, value)
    node.updated_at, node.updated_by = int(time.time()), actor
    return node


def unregister_node(session: Session, node_id: str) -> None:
    node = get_node(session, node_id)
    if node is None:
        raise NodeUnknown(f"node {node_id[:64]} is not registered", node=node_id[:64])
    session.delete(node)
