"""Node enrollment with one-time join tokens, as Teleport's join tokens and HTCondor's
``condor_token_request``/``approve`` do: the node's public key no longer travels by hand.

An administrator creates a join token for one node name, with the node's realm and
authorization groups; it is shown once, stored only as its hash (``sts.one_time_secrets``), and expires after a short
time (default 15 minutes). The agent presents it with its public key; the first valid use
registers the node (or replaces the key of the registered node of that name) and spends the
token in the same transaction. Registering by hand (``jobsts node register``) stays.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from realms.errors import InputError
from realms.identity.access_id import NODE_ID
from sts.nodes.errors import NodeInvalid
from sts.nodes.models import JoinToken, Node
from sts.nodes.service import register_node, update_node
from sts.one_time_secrets import matches, new_secret, secret_hash

TOKEN_PREFIX = "jstjoin_"  # noqa: S105 (a prefix that makes a leaked token recognisable, not a secret)
DEFAULT_TTL = 15 * 60
MIN_TTL, MAX_TTL = 60, 7 * 86400


class JoinTokenRefused(InputError):
    """A join token that does not enroll: unknown, spent, expired, or for another node."""

    code: ClassVar[str] = "join_token.invalid"
    status: ClassVar[int] = 403


class JoinTokenUsed(JoinTokenRefused):
    code: ClassVar[str] = "join_token.used"


class JoinTokenExpired(JoinTokenRefused):
    code: ClassVar[str] = "join_token.expired"


class JoinTokenWrongNode(JoinTokenRefused):
    code: ClassVar[str] = "join_token.wrong_node"


@dataclass(frozen=True, slots=True)
class IssuedJoinToken:
    token: str
    node_id: str
    realm: str
    expires_at: int


def create_join_token(
    session: Session, body: Mapping[str, Any], node_id: str, hosted_realms: Iterable[str], actor: str
) -> IssuedJoinToken:
    """A new join token for ``node_id`` with the realm and authorization groups of ``body``."""
    if NODE_ID.fullmatch(node_id) is None:
        raise NodeInvalid(f"node id {node_id[:64]!r} must match {NODE_ID.pattern}", node=node_id[:64])
    unknown = set(body) - {"realm", "authgroups", "ttl"}
    if unknown:
        raise NodeInvalid(f"join token: unknown field {sorted(unknown)[0][:40]!r}", node=node_id)
    existing = session.get(Node, node_id)
    realm = body.get("realm", existing.realm if existing is not None else None)
    if realm not in set(hosted_realms):
        raise NodeInvalid(f"node {node_id}: realm {str(realm)[:64]!r} is not hosted by this STS", node=node_id)
    ttl = body.get("ttl", DEFAULT_TTL)
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not MIN_TTL <= ttl <= MAX_TTL:
        raise NodeInvalid(f"join token: ttl must be whole seconds from {MIN_TTL} to {MAX_TTL}", node=node_id)
    groups = body.get("authgroups", list(existing.authgroups) if existing is not None else [])
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise NodeInvalid(f"node {node_id}: authgroups must be a list of names", node=node_id)
    now = int(time.time())
    token = new_secret(TOKEN_PREFIX)
    session.execute(delete(JoinToken).where(JoinToken.expires_at < now))
    session.add(
        JoinToken(
            token_hash=secret_hash(token),
            node_id=node_id,
            realm=realm,
            authgroups=sorted(set(groups)),
            created_at=now,
            created_by=actor,
            expires_at=now + ttl,
        )
    )
    return IssuedJoinToken(token, node_id, realm, now + ttl)


def enroll(session: Session, body: Mapping[str, Any], hosted_realms: Iterable[str]) -> tuple[Node, bool]:
    """Spend the join token of ``body`` and register its node's public key. Returns the node and
    whether it was registered now (``False``: an existing node got a new key)."""
    unknown = set(body) - {"node", "join_token", "public_jwk", "trusted_realms"}
    if unknown:
        raise NodeInvalid(f"enrollment: unknown field {sorted(unknown)[0][:40]!r}")
    node_id, presented = body.get("node"), body.get("join_token")
    if not isinstance(node_id, str) or not isinstance(presented, str) or not presented:
        raise NodeInvalid("enrollment: node and join_token are required strings")
    now = int(time.time())
    row = session.get(JoinToken, secret_hash(presented))
    if row is None or not matches(presented, row.token_hash):
        raise JoinTokenRefused("the join token is unknown; ask an administrator for a new one (jobsts node join-token)")
    # Why: the token admits one named node only; presenting it for another name is refused
    # (and does not spend it) so a leaked token cannot enroll a node the administrator did not name.
    if row.node_id != node_id:
        raise JoinTokenWrongNode(f"the join token is for node {row.node_id}, not {node_id[:64]}", node=node_id[:64])
    if row.used_at is not None:
        raise JoinTokenUsed(f"the join token of node {node_id} was already used", node=node_id)
    if row.expires_at <= now:
        raise JoinTokenExpired(f"the join token of node {node_id} expired; ask for a new one", node=node_id)
    # Why: single use even under concurrent presentations: only the request whose UPDATE
    # changes the row enrolls; the database serialises them.
    spent = session.execute(
        update(JoinToken)
        .where(JoinToken.token_hash == row.token_hash, JoinToken.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if getattr(spent, "rowcount", 0) != 1:
        raise JoinTokenUsed(f"the join token of node {node_id} was already used", node=node_id)
    node_body: dict[str, Any] = {
        "realm": row.realm,
        "authgroups": list(row.authgroups),
        "public_jwk": body.get("public_jwk"),
    }
    if "trusted_realms" in body:
        node_body["trusted_realms"] = body["trusted_realms"]
    actor = f"join-token:{row.created_by}"
    if session.get(Node, node_id) is None:
        return register_node(session, {"id": node_id, **node_body}, hosted_realms, actor), True
    return update_node(session, node_id, node_body, hosted_realms, actor), False
